using System.Net;
using System.Net.Http.Json;
using DevRift.Hsm.Api.Tests.Audit;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Api.Tests.Rotation;
using DevRift.Hsm.Api.Tests.Tls;

namespace DevRift.Hsm.Api.Tests.Operators;

/// <summary>Settings that cannot work are refused: DUAL on a standard plan, CA or non-client certificates; test data does not hold old keys.</summary>
public sealed class SettingsCoherenceTests(SystemClockServers servers) : IClassFixture<SystemClockServers>
{
    [Fact]
    public async Task DUAL_in_the_settings_of_a_standard_plan_application_is_400_naming_enabled_methods_and_changes_nothing()
    {
        var server = await servers.GetAsync(Db.Sqlite);
        var app = await server.CreateApplicationAsync("No Dual", "standard");

        using var refused = await server.PatchSettingsAsync(app, new { enabled_methods = new[] { "EMAIL", "DUAL" } });
        var problem = await refused.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "enabled_methods");
        Assert.Contains("enterprise", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);

        // A downgrade that keeps DUAL in the same patch is refused as a whole: the plan stays
        var enterprise = await server.CreateApplicationAsync("Was Enterprise", "enterprise");
        using var both = await server.PatchSettingsAsync(enterprise, new { plan = "standard", enabled_methods = new[] { "EMAIL", "DUAL" } });
        await both.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "enabled_methods");
        using var admin = server.AdminClient();
        using var read = await admin.GetAsync($"/admin/v1/applications/{enterprise}/settings");
        var settings = await read.AssertJsonAsync(HttpStatusCode.OK, "settings");
        Assert.Equal("enterprise", settings.GetProperty("plan").GetString());
        Assert.Contains("DUAL", settings.GetProperty("enabled_methods").EnumerateArray().Select(m => m.GetString()));

        // And an upgrade with DUAL in the same patch is fine
        using var upgraded = await server.PatchSettingsAsync(app, new { plan = "enterprise", enabled_methods = new[] { "EMAIL", "DUAL" } });
        Assert.Equal(["EMAIL", "DUAL"], (await upgraded.AssertJsonAsync(HttpStatusCode.OK, "settings")).GetProperty("enabled_methods").EnumerateArray().Select(m => m.GetString()));
    }

    [Fact]
    public async Task A_CA_certificate_or_one_without_client_authentication_usage_is_refused_as_a_client_certificate()
    {
        var server = await servers.GetAsync(Db.Sqlite);
        var app = await server.CreateApplicationAsync("Cert Usage", "standard");
        using var ca = TestPki.CreateCa("Usage CA");
        using var serverOnly = TestPki.IssueServer(ca);
        using var client = TestPki.IssueClient(ca, "good client");
        using var admin = server.AdminClient();

        using var caRefused = await admin.PostAsJsonAsync($"/admin/v1/applications/{app}/client-certificates", new { pem = TestPki.Pem(ca) });
        Assert.Contains("CA:TRUE", (await caRefused.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "pem")).GetProperty("detail").GetString(), StringComparison.Ordinal);
        using var usageRefused = await admin.PostAsJsonAsync($"/admin/v1/applications/{app}/client-certificates", new { pem = TestPki.Pem(serverOnly) });
        Assert.Contains("clientAuth", (await usageRefused.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "pem")).GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM client_certificates WHERE application_id = @app", new { app }));

        using var accepted = await admin.PostAsJsonAsync($"/admin/v1/applications/{app}/client-certificates", new { pem = TestPki.Pem(client) });
        await accepted.AssertJsonAsync(HttpStatusCode.Created, "client_certificate");
    }

    [Fact]
    public async Task Purging_an_applications_test_outbox_lets_the_old_seal_key_be_retired()
    {
        // Given a test message sealed under seal v1, then a rotation to v2
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite);
        var (other, otherKey) = await server.CreateApplicationWithKeyAsync("Kept", "standard");
        var kept = await server.SendEmailCodeAsync("kept", otherKey);
        var sent = await server.SendEmailCodeAsync("purged");
        await server.RotateAsync("seal");
        using (var refused = await server.RetireAsync("seal", 1))
        {
            await refused.AssertProblemAsync(HttpStatusCode.Conflict, "key_in_use", "version");
        }

        // When the operator purges the demo application's test outbox
        using var admin = server.AdminClient();
        using var purged = await admin.DeleteAsync($"/admin/v1/applications/{server.ApplicationId}/test-messages");
        var purge = await purged.AssertJsonAsync(HttpStatusCode.OK, "test_messages_purge");
        Assert.Equal(1, purge.GetProperty("deleted").GetInt64());

        // Then its messages are gone, the other application's are kept
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM outbox WHERE application_id = @app", new { app = server.ApplicationId }));
        Assert.Equal(kept.Code, await server.LatestCodeAsync(kept.User, "EMAIL", otherKey));
        _ = sent;

        // And once the other application's are purged from the command line too, v1 can be retired
        Assert.Equal(0, (await server.CliAsync("test-messages", "purge", other)).Exit);
        using var retired = await server.RetireAsync("seal", 1);
        await retired.AssertJsonAsync(HttpStatusCode.OK, "hsm_key");
        var purges = (await server.AuditRowsAsync()).Where(r => r.Event == "test_messages.purge").ToList();
        Assert.Equal([(server.ApplicationId, 1L), (other, 1L)], purges.Select(r => (r.ApplicationId, r.DetailJson.GetProperty("deleted").GetInt64())));
    }

    [Fact]
    public async Task Test_messages_older_than_the_retention_expire_by_themselves()
    {
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite, fakeClock: true,
            settings: new Dictionary<string, string?> { ["Delivery:TestMessageRetention"] = "00:10:00" });
        await server.SendEmailCodeAsync("expiring");
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM outbox WHERE mode = 'test'"));

        // When more than the retention passes (the sweep runs every tenth of it)
        server.Clock!.Advance(TimeSpan.FromMinutes(11));
        await server.WaitForCountAsync("SELECT COUNT(*) FROM outbox WHERE mode = 'test'", 0);
    }
}
