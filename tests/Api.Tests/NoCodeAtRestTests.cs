using System.Data.Common;
using System.Net;
using System.Text;
using Dapper;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests;

/// <summary>
/// Invariant 1 of DESIGN.md: no issued code is ever written in clear. After sends on every channel, every text,
/// binary and numeric value of every table (and, on SQLite, every byte of the database files) is searched for
/// every code.
/// </summary>
/// <remarks>
/// The application uses 10-digit codes, so a false positive needs a given run of 10 ASCII digits to appear by
/// chance: in a random blob that is 256^-10 (about 1e-24) per offset, in a base62 id 62^-10 per offset, in a
/// 13-digit millisecond time 4e-10 per value — far below anything a test run could hit. Codes are compared as
/// their ASCII/UTF-8 bytes and their UTF-16 bytes.
/// </remarks>
public sealed class NoCodeAtRestTests(SystemClockServers servers) : IClassFixture<SystemClockServers>
{
    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task After_sends_on_every_channel_no_table_holds_any_issued_code(Db db)
    {
        // Given an enterprise application issuing 10-digit codes
        var server = await servers.GetAsync(db);
        var (_, key) = await server.CreateApplicationWithKeyAsync("Long Codes", "enterprise", new { code_length = 10 });
        var email = TestUsers.NewEmail("atrest");
        var sms = TestUsers.NewPhone();
        var whatsapp = TestUsers.NewPhone();
        var call = TestUsers.NewPhone();
        var dual = $"{TestUsers.NewEmail("atrest")}:{TestUsers.NewPhone()}";

        // When it sends EMAIL, SMS, WHATSAPP, CALL and DUAL, and one code is verified and one guessed wrong
        var sent = new List<(string User, string Type, string Channel)>
        {
            (email, "EMAIL", "EMAIL"), (sms, "SMS", "SMS"), (whatsapp, "WHATSAPP", "WHATSAPP"), (call, "CALL", "CALL"),
            (dual, "DUAL", "EMAIL"), (dual, "DUAL", "SMS"),
        };
        foreach (var (user, type, _) in sent.DistinctBy(s => s.User))
        {
            await server.SendAcceptedAsync(user, type, key);
        }

        var codes = new List<string>();
        foreach (var (user, _, channel) in sent)
        {
            codes.Add(await server.LatestCodeAsync(user, channel, key));
        }

        Assert.All(codes, c => Assert.Matches("^[0-9]{10}$", c));
        using (var ok = await server.VerifyCodeAsync(email, "EMAIL", codes[0], key))
        {
            await ok.AssertJsonAsync(HttpStatusCode.OK, "verification");
        }

        using (var wrong = await server.VerifyCodeAsync(sms, "PHONE", ApiTestExtensions.WrongCode(codes[1]), key))
        {
            await wrong.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        }

        // Then no value in any table contains any code
        await using var connection = await server.OpenDatabaseAsync();
        var tables = (await connection.QueryAsync<string>(db == Db.Sqlite
            ? "SELECT name FROM sqlite_master WHERE type = 'table'"
            : "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")).ToList();
        Assert.Contains("challenges", tables);
        Assert.Contains("outbox", tables);
        var scanned = 0;
        foreach (var table in tables)
        {
            scanned += await AssertNoCodeInTableAsync(connection, table, codes);
        }

        Assert.True(scanned > 20, $"only {scanned} values scanned");

        // And on SQLite no byte of the database files (freed pages, WAL included) holds one either
        if (db == Db.Sqlite)
        {
            foreach (var file in Directory.GetFiles(server.DataDirectory, "devrift.db*"))
            {
                await using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                using var bytes = new MemoryStream();
                await stream.CopyToAsync(bytes);
                AssertNoCode(bytes.ToArray(), codes, Path.GetFileName(file));
            }
        }
    }

    private static async Task<int> AssertNoCodeInTableAsync(DbConnection connection, string table, IReadOnlyList<string> codes)
    {
        var values = 0;
        await using var reader = await connection.ExecuteReaderAsync($"SELECT * FROM \"{table}\"");
        while (await reader.ReadAsync())
        {
            for (var i = 0; i < reader.FieldCount; i++)
            {
                var where = $"{table}.{reader.GetName(i)}";
                switch (reader.IsDBNull(i) ? null : reader.GetValue(i))
                {
                    case null:
                        continue;
                    case byte[] blob:
                        AssertNoCode(blob, codes, where);
                        break;
                    case string text:
                        AssertNoCode(Encoding.UTF8.GetBytes(text), codes, where);
                        break;
                    case var other:
                        AssertNoCode(Encoding.UTF8.GetBytes(Convert.ToString(other, System.Globalization.CultureInfo.InvariantCulture) ?? ""), codes, where);
                        break;
                }

                values++;
            }
        }

        return values;
    }

    private static void AssertNoCode(byte[] haystack, IReadOnlyList<string> codes, string where)
    {
        foreach (var code in codes)
        {
            Assert.False(haystack.AsSpan().IndexOf(Encoding.ASCII.GetBytes(code)) >= 0, $"a code was found in {where}");
            Assert.False(haystack.AsSpan().IndexOf(Encoding.Unicode.GetBytes(code)) >= 0, $"a code was found (UTF-16) in {where}");
        }
    }
}
