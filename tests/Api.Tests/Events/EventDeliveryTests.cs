using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Dapper;
using DevRift.Hsm.Api.Tests.Audit;
using DevRift.Hsm.Api.Tests.Delivery;
using DevRift.Hsm.Api.Tests.Factors;
using DevRift.Hsm.Api.Tests.Infrastructure;
using OtpNet;

namespace DevRift.Hsm.Api.Tests.Events;

/// <summary>
/// Signed events on SQLite and PostgreSQL: what a receiver gets after verifications, how it checks the signature,
/// retries across its outage, and that an application without an endpoint stores nothing.
/// </summary>
public sealed class EventDeliveryTests(EventServers servers) : IClassFixture<EventServers>
{
    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_valid_and_a_wrong_verify_each_reach_the_receiver_signed_with_the_secret_shown_once(Db db)
    {
        // Given an application whose event endpoint is the local receiver
        var server = await servers.GetAsync(db);
        var (appId, key) = await server.CreateApplicationWithKeyAsync("events-verify", "standard");
        var path = $"/events/{Guid.NewGuid():N}";
        var secret = await EventApi.ConfigureAsync(server.BaseAddress, server.OperatorToken, appId, new Uri(servers.Receiver.BaseUrl, path).ToString());
        using (var read = await server.AdminClient().GetAsync($"/admin/v1/applications/{appId}/event-endpoint"))
        {
            var endpoint = await read.AssertJsonAsync(HttpStatusCode.OK, "event_endpoint");
            Assert.False(endpoint.TryGetProperty("secret", out _), "the secret is shown once only");
            Assert.Empty(endpoint.GetProperty("events").EnumerateArray());
        }

        // When a code is sent, a wrong code is tried, then the right one
        var user = TestUsers.NewEmail("events");
        var challengeId = (await server.SendAcceptedAsync(user, "EMAIL", key)).GetProperty("id").GetString();
        var code = await server.LatestCodeAsync(user, "EMAIL", key);
        using (var wrong = await server.VerifyCodeAsync(user, "EMAIL", ApiTestExtensions.WrongCode(code), key))
        {
            await wrong.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_code", "code");
        }

        using (var right = await server.VerifyCodeAsync(user, "EMAIL", code, key))
        {
            await right.AssertJsonAsync(HttpStatusCode.OK, "verification");
        }

        // Then the receiver gets verification.failed (type and problem code, not what was typed) and verification.approved
        var failed = await EventApi.WaitForAsync(servers.Receiver, path, "verification.failed");
        var approved = await EventApi.WaitForAsync(servers.Receiver, path, "verification.approved");
        Assert.Equal(user, failed.Data.GetProperty("user").GetString());
        Assert.Equal("EMAIL", failed.Data.GetProperty("type").GetString());
        Assert.Equal("invalid_code", failed.Data.GetProperty("problem").GetString());
        Assert.Equal("failed", failed.Data.GetProperty("outcome").GetString());
        Assert.Equal(("approved", "EMAIL", user), (approved.Data.GetProperty("outcome").GetString(), approved.Data.GetProperty("type").GetString(), approved.Data.GetProperty("user").GetString()));
        foreach (var e in new[] { failed, approved })
        {
            Assert.Equal(["id", "object", "type", "created_at", "livemode", "application_id", "data"], e.Json.EnumerateObject().Select(p => p.Name).ToArray());
            Assert.StartsWith("evt_", e.Id, StringComparison.Ordinal);
            Assert.Equal(e.Id, e.Request.Header("DevRift-Event-Id"));
            Assert.Equal(appId, e.Json.GetProperty("application_id").GetString());
            Assert.False(e.Json.GetProperty("livemode").GetBoolean());
            Assert.StartsWith("application/json", e.Request.Header("Content-Type"), StringComparison.Ordinal);

            // And each signature verifies with the secret shown once, and not with another
            Assert.True(EventApi.SignatureVerifies(e.Request, secret), "the signature does not verify with the endpoint's secret");
            Assert.False(EventApi.SignatureVerifies(e.Request, secret[..^1] + (secret[^1] == 'A' ? 'B' : 'A')), "a wrong secret verified");
        }

        // And the send itself was reported, and no body carries the code, the key or the signing secret
        var created = await EventApi.WaitForAsync(servers.Receiver, path, "challenge.created");
        Assert.Equal(challengeId, created.Data.GetProperty("challenge_id").GetString());
        foreach (var e in EventApi.At(servers.Receiver, path))
        {
            Assert.DoesNotContain(code, e.Request.Text, StringComparison.Ordinal);
            Assert.DoesNotContain(key, e.Request.Text, StringComparison.Ordinal);
            Assert.DoesNotContain(key[8..], e.Request.Text, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, e.Request.Text, StringComparison.Ordinal);
        }

        // And the outbox rows are delivered
        await Live.WaitForAsync(() => server.CountAsync(
            "SELECT COUNT(*) FROM events WHERE application_id = @appId AND status <> 'delivered'", new { appId }), n => n == 0, "every event delivered");
        Assert.Equal(3, await server.CountAsync("SELECT COUNT(*) FROM events WHERE application_id = @appId", new { appId }));

        // And /metrics counts the deliveries by outcome
        using var metrics = server.NewClient(null);
        var text = await metrics.GetStringAsync("/metrics");
        var line = text.Split('\n').Single(l => l.StartsWith("devrift_events_total{outcome=\"delivered\"} ", StringComparison.Ordinal));
        Assert.True(double.Parse(line.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture) >= 3, line);
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task No_event_body_carries_a_backup_code_a_seed_or_an_otp(Db db)
    {
        // Given an application with an endpoint
        var server = await servers.GetAsync(db);
        var (appId, key) = await server.CreateApplicationWithKeyAsync("events-secrets", "standard");
        var path = $"/events/{Guid.NewGuid():N}";
        var secret = await EventApi.ConfigureAsync(server.BaseAddress, server.OperatorToken, appId, new Uri(servers.Receiver.BaseUrl, path).ToString());
        var user = FactorApi.NewUser("events-secrets");

        // When the user enrols an authenticator app, gets backup codes and uses one, and verifies with the app
        var enrolment = await server.EnrolAsync(user, key);
        var totp = new Totp(enrolment.Seed).ComputeTotp(DateTime.UtcNow);
        await server.VerifyAppAsync(user, totp, key).ExpectVerifiedAsync("APP");
        await server.GenerateBackupAsync(user, "EMAIL", key);
        using var client = server.NewClient(key);
        var messages = JsonDocument.Parse(await client.GetStringAsync($"/v1/test/messages?user={Uri.EscapeDataString(user)}")).RootElement.GetProperty("data");
        var backupCodes = FactorApi.BackupCodesIn(messages.EnumerateArray().Select(m => m.GetProperty("body").GetString()!).First(b => b.Contains("backup codes", StringComparison.Ordinal)));
        Assert.Equal(10, backupCodes.Count);
        await server.VerifyBackupAsync(user, backupCodes[0], key).ExpectVerifiedAsync("BACKUP");

        // Then the receiver gets each event the audit log knows for it
        var enrolled = await EventApi.WaitForAsync(servers.Receiver, path, "app_factor.enrolled");
        Assert.Equal(enrolment.Body.GetProperty("id").GetString(), enrolled.Data.GetProperty("factor_id").GetString());
        var generated = await EventApi.WaitForAsync(servers.Receiver, path, "backup_codes.generated");
        Assert.Equal(backupCodes.Count, generated.Data.GetProperty("count").GetInt32());
        var used = await EventApi.WaitForAsync(servers.Receiver, path, "backup_codes.used");
        Assert.Equal(user, used.Data.GetProperty("user").GetString());
        await EventApi.WaitForAsync(servers.Receiver, path, "verification.approved", e => e.Data.GetProperty("type").GetString() == "BACKUP");
        await EventApi.WaitForAsync(servers.Receiver, path, "verification.approved", e => e.Data.GetProperty("type").GetString() == "APP");

        // And no body carries the seed (any encoding), a TOTP, a backup code (grouped or not), the key or the signing secret
        var forbidden = new List<string> { enrolment.Secret, Convert.ToBase64String(enrolment.Seed), Convert.ToHexString(enrolment.Seed), totp, key, secret };
        forbidden.AddRange(backupCodes);
        forbidden.AddRange(backupCodes.Select(FactorApi.Normalised));
        var bodies = EventApi.At(servers.Receiver, path).Select(e => e.Request.Text).ToList();
        Assert.True(bodies.Count >= 5);
        foreach (var body in bodies)
        {
            foreach (var s in forbidden)
            {
                Assert.DoesNotContain(s, body, StringComparison.OrdinalIgnoreCase);
            }
        }
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task An_event_is_retried_while_the_receiver_is_down_or_answers_503_and_arrives_with_the_same_id(Db db)
    {
        // Given an endpoint on a port where nothing listens yet
        var server = await servers.GetAsync(db);
        var (appId, key) = await server.CreateApplicationWithKeyAsync("events-outage", "standard");
        var port = FreePort.Next();
        var secret = await EventApi.ConfigureAsync(server.BaseAddress, server.OperatorToken, appId, $"http://127.0.0.1:{port}/hook", [EventTypesUnderTest.Approved]);

        // When a verification succeeds while the receiver is down
        var user = TestUsers.NewEmail("outage");
        await server.SendAcceptedAsync(user, "EMAIL", key);
        using (var ok = await server.VerifyCodeAsync(user, "EMAIL", await server.LatestCodeAsync(user, "EMAIL", key), key))
        {
            await ok.AssertJsonAsync(HttpStatusCode.OK, "verification");
        }

        // Then its event is stored once (the filter leaves out the others) and retried: connection refused
        var row = await Live.WaitForAsync(() => EventRowAsync(server, appId), r => r is { Attempts: >= 2 }, "two failed attempts");
        Assert.Equal("verification.approved", row!.Type);
        Assert.Contains("could not be reached", row.LastError ?? "", StringComparison.Ordinal);
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM events WHERE application_id = @appId", new { appId }));

        // And when the receiver comes up answering 503 twice, then 200
        await using var receiver = await HttpStandIn.StartAsync(port);
        var answers = 0;
        receiver.Answer = _ => Interlocked.Increment(ref answers) <= 2 ? new StandInAnswer(503) : new StandInAnswer(200);
        await Live.WaitForAsync(() => EventRowAsync(server, appId), r => r is { Status: "delivered" }, "the event delivered", TimeSpan.FromSeconds(30));

        // Then it arrived three times with one id, each signed, and is recorded delivered
        var attempts = EventApi.At(receiver, "/hook");
        Assert.Equal(3, attempts.Count);
        Assert.Single(attempts.Select(a => a.Id).Distinct());
        Assert.Equal(row.Id, attempts[0].Id);
        Assert.All(attempts, a => Assert.Equal(a.Id, a.Request.Header("DevRift-Event-Id")));
        Assert.All(attempts, a => Assert.True(EventApi.SignatureVerifies(a.Request, secret)));
        var done = await EventRowAsync(server, appId);
        Assert.Equal(("delivered", row.Id), (done!.Status, done.Id));
        Assert.True(done.Attempts >= row.Attempts + 3);
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task An_application_without_an_endpoint_stores_no_events_and_a_removed_endpoint_stops_them(Db db)
    {
        // Given an application with no event endpoint
        var server = await servers.GetAsync(db);
        var (appId, key) = await server.CreateApplicationWithKeyAsync("events-none", "standard");
        var user = TestUsers.NewEmail("none");

        // When codes are sent and verified, right and wrong
        await server.SendAcceptedAsync(user, "EMAIL", key);
        var code = await server.LatestCodeAsync(user, "EMAIL", key);
        using (var wrong = await server.VerifyCodeAsync(user, "EMAIL", ApiTestExtensions.WrongCode(code), key))
        {
            await wrong.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_code", "code");
        }

        using (var right = await server.VerifyCodeAsync(user, "EMAIL", code, key))
        {
            await right.AssertJsonAsync(HttpStatusCode.OK, "verification");
        }

        // Then no event row exists for it (while its audit records do)
        await server.ChainAuditAsync();
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM events WHERE application_id = @appId", new { appId }));
        Assert.Equal(3, await server.CountAsync("SELECT COUNT(*) FROM audit_log WHERE application_id = @appId AND event IN ('challenge.send', 'verification')", new { appId }));

        // And once an endpoint is configured and removed again, nothing more is stored
        var path = $"/events/{Guid.NewGuid():N}";
        await EventApi.ConfigureAsync(server.BaseAddress, server.OperatorToken, appId, new Uri(servers.Receiver.BaseUrl, path).ToString());
        var other = TestUsers.NewEmail("none-other");
        await server.SendAcceptedAsync(other, "EMAIL", key);
        await EventApi.WaitForAsync(servers.Receiver, path, "challenge.created");
        using (var removed = await server.AdminClient().DeleteAsync($"/admin/v1/applications/{appId}/event-endpoint"))
        {
            Assert.Equal(HttpStatusCode.NoContent, removed.StatusCode);
        }

        var stored = await server.CountAsync("SELECT COUNT(*) FROM events WHERE application_id = @appId", new { appId });
        using (var again = await server.VerifyCodeAsync(other, "EMAIL", await server.LatestCodeAsync(other, "EMAIL", key), key))
        {
            await again.AssertJsonAsync(HttpStatusCode.OK, "verification");
        }

        Assert.Equal(1, stored);
        Assert.Equal(stored, await server.CountAsync("SELECT COUNT(*) FROM events WHERE application_id = @appId", new { appId }));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Endpoint_configuration_is_validated_naming_the_field_and_audited_without_the_secret(Db db)
    {
        var server = await servers.GetAsync(db);
        var (appId, _) = await server.CreateApplicationWithKeyAsync("events-config", "standard");

        // Bad URLs and filters are 400s naming the field, and change nothing
        foreach (var (body, param) in new (object Body, string Param)[]
        {
            (new { url = "ftp://hooks.example.com/x" }, "url"),
            (new { url = "/relative/path" }, "url"),
            (new { url = "not a url" }, "url"),
            (new { url = "https://user:pw@hooks.example.com/" }, "url"),
            (new { events = new[] { "verification.approved" } }, "url"),
            (new { url = "https://hooks.example.com/x", events = new[] { "verification.approvd" } }, "events"),
            (new { url = "https://hooks.example.com/x", events = "verification.approved" }, "events"),
            (new { url = "https://hooks.example.com/x", secret = "mine" }, "secret"),
        })
        {
            using var refused = await EventApi.PutEndpointAsync(server.BaseAddress, server.OperatorToken, appId, body);
            await refused.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", param);
        }

        using (var none = await server.AdminClient().GetAsync($"/admin/v1/applications/{appId}/event-endpoint"))
        {
            await none.AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
        }

        using (var unknownApp = await EventApi.PutEndpointAsync(server.BaseAddress, server.OperatorToken, "app_nosuch", new { url = "https://hooks.example.com/x" }))
        {
            await unknownApp.AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
        }

        // A valid one is created with a secret, updated without a new one, and rotated to a new one
        var first = await EventApi.ConfigureAsync(server.BaseAddress, server.OperatorToken, appId, "https://hooks.example.com/a");
        using (var update = await EventApi.PutEndpointAsync(server.BaseAddress, server.OperatorToken, appId,
            new { url = "https://hooks.example.com/b", events = new[] { "verification.failed", "verification.approved" } }))
        {
            var updated = await update.AssertJsonAsync(HttpStatusCode.OK, "event_endpoint");
            Assert.False(updated.TryGetProperty("secret", out _));
            Assert.Equal("https://hooks.example.com/b", updated.GetProperty("url").GetString());
            Assert.Equal(["verification.approved", "verification.failed"], updated.GetProperty("events").EnumerateArray().Select(e => e.GetString()!).ToArray());
        }

        string second;
        using (var admin = server.AdminClient())
        using (var rotate = await admin.PostAsync($"/admin/v1/applications/{appId}/event-endpoint/rotate-secret", null))
        {
            var rotated = await rotate.AssertJsonAsync(HttpStatusCode.OK, "event_endpoint");
            Assert.Equal("no-store", rotate.Headers.CacheControl?.ToString());
            second = rotated.GetProperty("secret").GetString()!;
        }

        Assert.NotEqual(first, second);

        // And the stored secret is sealed (neither secret in clear in the row)
        await using (var c = await server.OpenDatabaseAsync())
        {
            var stored = await c.QuerySingleAsync<byte[]>("SELECT sealed_secret FROM event_endpoints WHERE application_id = @appId", new { appId });
            var text = Encoding.Latin1.GetString(stored);
            Assert.DoesNotContain(second, text, StringComparison.Ordinal);
            Assert.DoesNotContain(second[6..], text, StringComparison.Ordinal);
        }

        // And every change is an operator.action audit record saying what changed, never the secret
        await server.ChainAuditAsync();
        await using var connection = await server.OpenDatabaseAsync();
        var records = (await connection.QueryAsync<(string Outcome, string Detail)>(
            "SELECT outcome, detail FROM audit_log WHERE application_id = @appId AND event = 'operator.action' ORDER BY seq", new { appId })).ToList();
        var oks = records.Where(r => r.Outcome == "ok").Select(r => JsonDocument.Parse(r.Detail).RootElement).ToList();
        Assert.Equal(3, oks.Count);
        Assert.Equal("https://hooks.example.com/a", oks[0].GetProperty("changes").GetProperty("url").GetProperty("to").GetString());
        Assert.Equal("generated", oks[0].GetProperty("secret").GetString());
        Assert.Equal("https://hooks.example.com/b", oks[1].GetProperty("changes").GetProperty("url").GetProperty("to").GetString());
        Assert.Equal(2, oks[1].GetProperty("changes").GetProperty("events").GetProperty("to").GetArrayLength());
        Assert.Equal("rotated", oks[2].GetProperty("secret").GetString());
        Assert.Equal(8, records.Count(r => r.Outcome == "invalid_request"));
        Assert.All(records, r =>
        {
            Assert.DoesNotContain(first, r.Detail, StringComparison.Ordinal);
            Assert.DoesNotContain(second, r.Detail, StringComparison.Ordinal);
            Assert.DoesNotContain("whsec_", r.Detail, StringComparison.Ordinal);
        });
    }

    private static async Task<EventRow?> EventRowAsync(ApplianceServer server, string appId)
    {
        await using var c = await server.OpenDatabaseAsync();
        return await c.QuerySingleOrDefaultAsync<EventRow>(
            "SELECT id, type, status, attempts, last_error AS LastError FROM events WHERE application_id = @appId", new { appId });
    }
}

/// <summary>Event type names as receivers spell them (kept literal here so that a renamed constant fails a test).</summary>
public static class EventTypesUnderTest
{
    public const string Approved = "verification.approved";
}

public sealed class EventRow
{
    public string Id { get; init; } = "";

    public string Type { get; init; } = "";

    public string Status { get; init; } = "";

    public long Attempts { get; init; }

    public string? LastError { get; init; }
}

/// <summary>The event endpoint on the command line: the same store, the secret printed once, audited without it.</summary>
public sealed class EventEndpointCommandTests(EventServers servers) : IClassFixture<EventServers>
{
    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Set_prints_the_secret_once_get_never_and_a_bad_url_is_refused_and_audited(Db db)
    {
        var server = await servers.GetAsync(db);
        var (appId, _) = await server.CreateApplicationWithKeyAsync("events-cli", "standard");

        var refused = await server.CliAsync("event-endpoint", "set", appId, "ftp://hooks.example.com/x");
        Assert.Equal(1, refused.Exit);
        Assert.StartsWith("devrift: invalid_request: url must be an absolute http:// or https:// URL", refused.Stderr, StringComparison.Ordinal);

        var set = await server.CliAsync("event-endpoint", "set", appId, "https://hooks.example.com/cli", "verification.failed");
        Assert.Equal(0, set.Exit);
        using var created = JsonDocument.Parse(set.Stdout);
        var secret = created.RootElement.GetProperty("secret").GetString()!;
        Assert.StartsWith("whsec_", secret, StringComparison.Ordinal);
        Assert.Equal(["verification.failed"], created.RootElement.GetProperty("events").EnumerateArray().Select(e => e.GetString()!).ToArray());

        var get = await server.CliAsync("event-endpoint", "get", appId);
        Assert.Equal(0, get.Exit);
        Assert.DoesNotContain("secret", get.Stdout, StringComparison.Ordinal);
        Assert.Contains("https://hooks.example.com/cli", get.Stdout, StringComparison.Ordinal);

        await server.ChainAuditAsync();
        await using var c = await server.OpenDatabaseAsync();
        var details = (await c.QueryAsync<(string Outcome, string Detail)>(
            "SELECT outcome, detail FROM audit_log WHERE application_id = @appId AND event = 'operator.action' ORDER BY seq", new { appId })).ToList();
        Assert.Equal(["invalid_request", "ok"], details.Select(d => d.Outcome).ToArray());
        Assert.Contains("\"secret\":\"generated\"", details[1].Detail, StringComparison.Ordinal);
        Assert.Contains("\"via\":\"cli\"", details[1].Detail, StringComparison.Ordinal);
        Assert.All(details, d => Assert.DoesNotContain(secret, d.Detail, StringComparison.Ordinal));
    }
}
