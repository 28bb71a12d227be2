using System.Text;
using DevRift.Hsm.Api.Tests.Infrastructure;
using Npgsql;

namespace DevRift.Hsm.Api.Tests.Factors;

/// <summary>Test 6: no seed and no backup code is stored in clear, in any form, on SQLite or PostgreSQL.</summary>
public sealed class SecretsAtRestTests
{
    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task The_database_holds_neither_the_seed_nor_any_backup_code(Db db)
    {
        // Given enrolment, verification, backup generation and a backup use
        await using var server = await ApplianceServer.StartAsync(db, fakeClock: true);
        var user = FactorApi.NewUser("at-rest");
        var e = await server.EnrolActiveAsync(user);
        server.Clock!.Advance(TimeSpan.FromSeconds(30));
        await server.VerifyAppAsync(user, Rfc6238.CodeAt(e.Seed, server.Now())).ExpectVerifiedAsync("APP");
        await server.GenerateBackupAsync(user);
        var codes = await server.LatestBackupCodesAsync(user);
        await server.VerifyBackupAsync(user, codes[0]).ExpectVerifiedAsync("BACKUP");
        Assert.Equal(20, e.Seed.Length);
        Assert.Equal(10, codes.Count);

        var needles = new List<(string What, byte[] Bytes)>
        {
            ("raw seed", e.Seed),
            ("base32 seed", Encoding.ASCII.GetBytes(e.Secret)),
            ("base32 seed, lowercase", Encoding.ASCII.GetBytes(e.Secret.ToLowerInvariant())),
            ("hex seed", Encoding.ASCII.GetBytes(Convert.ToHexString(e.Seed))),
            ("hex seed, lowercase", Encoding.ASCII.GetBytes(Convert.ToHexStringLower(e.Seed))),
            ("base64 seed", Encoding.ASCII.GetBytes(Convert.ToBase64String(e.Seed))),
        };
        foreach (var code in codes)
        {
            needles.Add(($"backup code {code[..2]}…, grouped", Encoding.ASCII.GetBytes(code)));
            needles.Add(($"backup code {code[..2]}…, normalised", Encoding.ASCII.GetBytes(FactorApi.Normalised(code))));
        }

        // When every byte the database holds is read
        var haystacks = db == Db.Sqlite ? ReadSqliteFiles(server) : await ReadPostgresColumnsAsync(server);
        Assert.NotEmpty(haystacks);

        // Then no needle is found anywhere
        foreach (var (where, bytes) in haystacks)
        {
            foreach (var (what, needle) in needles)
            {
                Assert.False(bytes.AsSpan().IndexOf(needle) >= 0, $"{what} found in {where}");
            }
        }

        // and the scan would have seen them: the user's own identity is there in clear
        Assert.Contains(haystacks, h => h.Bytes.AsSpan().IndexOf(Encoding.UTF8.GetBytes(user)) >= 0);
    }

    private static List<(string Where, byte[] Bytes)> ReadSqliteFiles(ApplianceServer server)
    {
        var db = Path.Combine(server.DataDirectory, "devrift.db");
        var files = new[] { db, db + "-wal" };
        Assert.True(File.Exists(db + "-wal"), "the SQLite database is expected in WAL mode, with a -wal file");
        var result = new List<(string, byte[])>();
        foreach (var file in files.Concat(Directory.GetFiles(server.DataDirectory, "devrift.db*")).Distinct())
        {
            // The server has the files open: share everything.
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            result.Add((Path.GetFileName(file), buffer.ToArray()));
        }

        Assert.Contains(result, r => r.Item1.EndsWith("-wal", StringComparison.Ordinal) && r.Item2.Length > 0);
        return result;
    }

    private static async Task<List<(string Where, byte[] Bytes)>> ReadPostgresColumnsAsync(ApplianceServer server)
    {
        var result = new List<(string, byte[])>();
        await using var connection = new NpgsqlConnection(server.ConnectionString);
        await connection.OpenAsync();
        var columns = new List<(string Table, string Column, string Type)>();
        await using (var command = new NpgsqlCommand(
            """
            SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c
            JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
            WHERE c.table_schema = 'public' AND c.data_type IN ('text', 'bytea', 'character varying', 'character', 'json', 'jsonb')
            ORDER BY c.table_name, c.ordinal_position
            """, connection))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                columns.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2)));
            }
        }

        Assert.Contains(columns, c => c is { Table: "totp_factors", Column: "wrapped_seed", Type: "bytea" });
        Assert.Contains(columns, c => c is { Table: "backup_codes", Column: "verifier", Type: "bytea" });
        foreach (var (table, column, type) in columns)
        {
            await using var command = new NpgsqlCommand($"SELECT \"{column}\"{(type == "bytea" ? "" : "::text")} FROM \"{table}\" WHERE \"{column}\" IS NOT NULL", connection);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                var bytes = type == "bytea" ? (byte[])reader.GetValue(0) : Encoding.UTF8.GetBytes(reader.GetString(0));
                result.Add(($"{table}.{column}", bytes));
            }
        }

        return result;
    }
}
