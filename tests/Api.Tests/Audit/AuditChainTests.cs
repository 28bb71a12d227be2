using System.Net;
using System.Text.Json;
using DevRift.Hsm.Api.Tests.Factors;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Crypto;
using Microsoft.Extensions.DependencyInjection;

namespace DevRift.Hsm.Api.Tests.Audit;

/// <summary>The HMAC chain: verification on both databases, each kind of tampering, key rotation, paging, fail-closed appends.</summary>
public sealed class AuditChainTests
{
    /// <summary>Six records on a fresh server: seq 1 … 6.</summary>
    private static StringContent Enrolment(string user) => new($"User={user}", System.Text.Encoding.UTF8, "application/x-www-form-urlencoded");

    private static async Task<ApplianceServer> ServerWithSixRecordsAsync(Db db)
    {
        var server = await ApplianceServer.StartAsync(db);
        for (var i = 0; i < 6; i++)
        {
            // An enrolment is audited (a read is not: it changes nothing).
            using var response = await server.Client.PostAsync("/v1/mfa/app", Enrolment($"audit{i}@example.com"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal(Enumerable.Range(1, 6).Select(i => (long)i), (await server.AuditRowsAsync()).Select(r => r.Seq));
        return server;
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task An_untouched_chain_verifies_through_the_API_and_the_command_line(Db db)
    {
        // Given records of several kinds
        await using var server = await ServerWithSixRecordsAsync(db);
        var user = FactorApi.NewUser("chain");
        await server.SendAcceptedAsync(user, "EMAIL");
        using (var bad = server.NewClient("sk_test_ZZZZZZZZZZabcdefghijklmnopqrstuvwxyz012345"))
        {
            (await bad.GetAsync("/v1/mfa/factors?user=a@example.com")).Dispose();
        }

        await server.CreateApplicationAsync("Chained", "standard");
        var rows = await server.AuditRowsAsync();
        Assert.Equal(9, rows.Count);

        // When the chain is checked, then it is valid, counts every record and names the head
        var result = await server.VerifyChainAsync();
        Assert.True(result.GetProperty("valid").GetBoolean());
        Assert.Equal(9, result.GetProperty("records").GetInt64());
        Assert.Equal(JsonValueKind.Null, result.GetProperty("first_bad").ValueKind);
        Assert.Equal(9, result.GetProperty("last_seq").GetInt64());
        Assert.Equal(Convert.ToHexStringLower(rows[^1].Mac), result.GetProperty("last_mac").GetString());
        Assert.All(rows, r => Assert.Equal((1L, 32), (r.KeyVersion, r.Mac.Length)));

        var cli = await server.CliAsync("audit", "verify");
        Assert.Equal(0, cli.Exit);
        Assert.True(JsonDocument.Parse(cli.Stdout).RootElement.GetProperty("valid").GetBoolean());
    }

    public static TheoryData<Db, string, long> Tamperings()
    {
        var data = new TheoryData<Db, string, long>();
        foreach (var db in (Db[])[Db.Sqlite, Db.Postgres])
        {
            data.Add(db, "edit field", 3);
            data.Add(db, "edit mac", 3);
            data.Add(db, "delete middle row", 3);
            data.Add(db, "swap two rows", 2);
            data.Add(db, "insert forged row", 7);
            data.Add(db, "truncate tail", 5);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Tamperings))]
    public async Task Each_kind_of_tampering_is_detected_at_the_first_bad_seq(Db db, string tampering, long firstBad)
    {
        // Given six chained records
        await using var server = await ServerWithSixRecordsAsync(db);
        Assert.True((await server.VerifyChainAsync()).GetProperty("valid").GetBoolean());

        // When someone with write access to the database tampers with them
        switch (tampering)
        {
            case "edit field":
                await server.ExecuteAsync("UPDATE audit_log SET outcome = 'valid', subject = 'mallory@example.com' WHERE seq = 3");
                break;
            case "edit mac":
                await server.ExecuteAsync("UPDATE audit_log SET mac = (SELECT mac FROM audit_log WHERE seq = 2) WHERE seq = 3");
                break;
            case "delete middle row":
                await server.ExecuteAsync("DELETE FROM audit_log WHERE seq = 3");
                break;
            case "swap two rows":
                await server.ExecuteAsync("UPDATE audit_log SET seq = -4 WHERE seq = 4");
                await server.ExecuteAsync("UPDATE audit_log SET seq = 4 WHERE seq = 2");
                await server.ExecuteAsync("UPDATE audit_log SET seq = 2 WHERE seq = -4");
                break;
            case "insert forged row":
                // A copy of the last row with the next seq, and the head moved to it, as a careful forger would.
                await server.ExecuteAsync(
                    "INSERT INTO audit_log (seq, at, event, actor, application_id, mode, subject, outcome, detail, key_version, mac) SELECT 7, at, 'api_key.create', 'operator', application_id, mode, subject, outcome, detail, key_version, mac FROM audit_log WHERE seq = 6");
                await server.ExecuteAsync("UPDATE audit_head SET last_seq = 7 WHERE id = 1");
                break;
            case "truncate tail":
                await server.ExecuteAsync("DELETE FROM audit_log WHERE seq >= 5");
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(tampering));
        }

        // Then the API reports the chain invalid at the first bad seq
        var result = await server.VerifyChainAsync();
        Assert.False(result.GetProperty("valid").GetBoolean());
        Assert.Equal(firstBad, result.GetProperty("first_bad").GetInt64());
        Assert.Equal((await server.AuditRowsAsync()).Count, result.GetProperty("records").GetInt64());

        // And the command line exits 2 with the same answer
        var cli = await server.CliAsync("audit", "verify");
        Assert.Equal(2, cli.Exit);
        Assert.Equal(firstBad, JsonDocument.Parse(cli.Stdout).RootElement.GetProperty("first_bad").GetInt64());
    }

    [Fact]
    public async Task Records_made_before_an_audit_key_rotation_keep_verifying_under_their_version()
    {
        // Given six records under audit key v1
        await using var server = await ServerWithSixRecordsAsync(Db.Sqlite);

        // When the audit key is rotated and more records follow
        Assert.Equal("devrift.audit.v2", server.Services.GetRequiredService<HsmConnection>().RotateKey(KeyPurpose.Audit));
        for (var i = 0; i < 3; i++)
        {
            (await server.Client.PostAsync("/v1/mfa/app", Enrolment($"rotated{i}@example.com"))).Dispose();
        }

        // Then the new records name v2, the old ones v1, and the whole chain verifies
        Assert.Equal([1L, 1, 1, 1, 1, 1, 2, 2, 2], (await server.AuditRowsAsync()).Select(r => r.KeyVersion));
        var result = await server.VerifyChainAsync();
        Assert.True(result.GetProperty("valid").GetBoolean(), result.ToString());
        Assert.Equal(9, result.GetProperty("records").GetInt64());

        // And a v1 row relabelled as v2 no longer verifies
        await server.ExecuteAsync("UPDATE audit_log SET key_version = 2 WHERE seq = 4");
        Assert.Equal(4, (await server.VerifyChainAsync()).GetProperty("first_bad").GetInt64());
    }

    [Fact]
    public async Task The_log_pages_by_seq_and_rejects_out_of_range_parameters_by_name()
    {
        // Given seven records
        await using var server = await ServerWithSixRecordsAsync(Db.Sqlite);
        await server.SendAcceptedAsync("paging@example.com", "EMAIL");
        using var admin = server.AdminClient();

        // When they are read three at a time
        async Task<JsonElement> PageAsync(string query)
        {
            using var response = await admin.GetAsync("/admin/v1/audit" + query);
            return await response.AssertJsonAsync(HttpStatusCode.OK, "list");
        }

        var first = await PageAsync("?limit=3");
        var second = await PageAsync($"?after={first.GetProperty("next_after").GetInt64()}&limit=3");
        var third = await PageAsync($"?after={second.GetProperty("next_after").GetInt64()}&limit=3");

        // Then the pages are 1–3, 4–6 and 7, and only the last says there is no more
        static long[] Seqs(JsonElement page) => page.GetProperty("data").EnumerateArray().Select(r => r.GetProperty("seq").GetInt64()).ToArray();
        Assert.Equal([1L, 2, 3], Seqs(first));
        Assert.Equal([4L, 5, 6], Seqs(second));
        Assert.Equal([7L], Seqs(third));
        Assert.Equal((true, true, false), (first.GetProperty("has_more").GetBoolean(), second.GetProperty("has_more").GetBoolean(), third.GetProperty("has_more").GetBoolean()));
        Assert.Equal(3, first.GetProperty("next_after").GetInt64());
        Assert.Equal(JsonValueKind.Null, third.GetProperty("next_after").ValueKind);

        // And a record carries every field, the time in ISO 8601 UTC and the detail as an object
        var record = third.GetProperty("data")[0];
        Assert.Equal("challenge.send", record.GetProperty("event").GetString());
        Assert.Equal("paging@example.com", record.GetProperty("subject").GetString());
        Assert.Equal(server.ApplicationId, record.GetProperty("application_id").GetString());
        Assert.Equal("test", record.GetProperty("mode").GetString());
        Assert.Equal("ok", record.GetProperty("outcome").GetString());
        Assert.StartsWith("ak_", record.GetProperty("actor").GetString(), StringComparison.Ordinal);
        Assert.EndsWith("Z", record.GetProperty("at").GetString(), StringComparison.Ordinal);
        Assert.Equal(JsonValueKind.Object, record.GetProperty("detail").ValueKind);
        Assert.Equal(7, (await PageAsync("")).GetProperty("data").GetArrayLength());

        // And out-of-range parameters are 400s naming the field
        foreach (var (query, param) in (ValueTuple<string, string>[])[("?limit=0", "limit"), ("?limit=1001", "limit"), ("?limit=ten", "limit"), ("?after=-1", "after"), ("?after=x", "after")])
        {
            using var response = await admin.GetAsync("/admin/v1/audit" + query);
            await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", param);
        }

        Assert.Equal(7, (await PageAsync("?limit=1000")).GetProperty("data").GetArrayLength());
        var cli = await server.CliAsync("audit", "list", "5", "1");
        Assert.Equal(0, cli.Exit);
        Assert.Equal([6L], Seqs(JsonDocument.Parse(cli.Stdout).RootElement));
    }

    [Fact]
    public async Task A_request_whose_audit_record_cannot_be_written_fails_with_503()
    {
        // Given a server whose audit table (the one an append writes) has gone
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite);
        await server.ExecuteAsync("ALTER TABLE audit_pending RENAME TO audit_pending_gone");

        // When a code is sent, then the caller gets 503 storage_unavailable rather than an unaudited 202
        using var response = await server.SendCodeAsync("unaudited@example.com", "EMAIL");
        await response.AssertProblemAsync(HttpStatusCode.ServiceUnavailable, "storage_unavailable");
    }
}
