using System.Net;
using System.Net.Http.Json;
using DevRift.Hsm.Api.Tests.Audit;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Api.Tests.Rotation;
using DevRift.Hsm.Api.Tests.Tls;

namespace DevRift.Hsm.Api.Tests.Operators;

/// <summary>Every operator action records what it changed (never a secret); the audit list filters and refuses unknown parameters.</summary>
public sealed class AuditCompletenessTests(SystemClockServers servers) : IClassFixture<SystemClockServers>
{
    [Fact]
    public async Task Rotation_and_retirement_record_the_purpose_and_version()
    {
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite);
        var rows = await server.RowsDuringAsync(async () =>
        {
            await server.RotateAsync("code");
            (await server.RetireAsync("code", 1)).EnsureSuccessStatusCode();
            using var refused = await server.RetireAsync("code", 2);
            await refused.AssertProblemAsync(HttpStatusCode.Conflict, "key_in_use", "version");
        });

        Assert.Equal([("hsm_key.rotate", "ok"), ("hsm_key.retire", "ok"), ("hsm_key.retire", "key_in_use")], rows.Select(r => (r.Event, r.Outcome)));
        Assert.Equal(("code", 2, "devrift.code.v2"), Key(rows[0]));
        Assert.Equal(("code", 1, "devrift.code.v1"), Key(rows[1]));
        Assert.All(rows, r => Assert.Null(r.ApplicationId));

        // The command line records the same
        var cli = await server.RowsDuringAsync(async () => Assert.Equal(0, (await server.CliAsync("hsm", "rotate", "seal")).Exit));
        Assert.Equal(("seal", 2, "devrift.seal.v2"), Key(cli.OnlyEvent("hsm_key.rotate")));
        Assert.Equal("cli", cli[0].DetailJson.GetProperty("via").GetString());
    }

    private static (string?, int, string?) Key(AuditRow row) =>
        (row.DetailJson.GetProperty("purpose").GetString(), row.DetailJson.GetProperty("version").GetInt32(), row.DetailJson.GetProperty("label").GetString());

    [Fact]
    public async Task Client_certificate_registration_and_removal_record_the_id_and_thumbprint()
    {
        var server = await servers.GetAsync(Db.Sqlite);
        var app = await server.CreateApplicationAsync("Cert Audit", "standard");
        using var ca = TestPki.CreateCa("Audit CA");
        using var client = TestPki.IssueClient(ca, "audited client");
        using var admin = server.AdminClient();
        string id = "";
        var rows = await server.RowsDuringAsync(async () =>
        {
            using var added = await admin.PostAsJsonAsync($"/admin/v1/applications/{app}/client-certificates", new { pem = TestPki.Pem(client) });
            id = (await added.AssertJsonAsync(HttpStatusCode.Created, "client_certificate")).GetProperty("id").GetString()!;
            (await admin.DeleteAsync($"/admin/v1/applications/{app}/client-certificates/{id}")).EnsureSuccessStatusCode();
        });

        Assert.Equal(["client_certificate.add", "client_certificate.remove"], rows.Select(r => r.Event));
        Assert.All(rows, r =>
        {
            Assert.Equal(app, r.ApplicationId);
            Assert.Equal(id, r.DetailJson.GetProperty("certificate_id").GetString());
            Assert.Equal(TestPki.Thumbprint(client), r.DetailJson.GetProperty("thumbprint").GetString());
        });
    }

    [Fact]
    public async Task A_settings_change_records_each_value_before_and_after_and_the_command_line_the_same()
    {
        var server = await servers.GetAsync(Db.Sqlite);
        var app = await server.CreateApplicationAsync("Diffed", "standard");
        var rows = await server.RowsDuringAsync(async () =>
        {
            using var patched = await server.PatchSettingsAsync(app, new { code_length = 8, backup_code_count = 12, code_lifetime_seconds = 600 });
            await patched.AssertJsonAsync(HttpStatusCode.OK, "settings");
            Assert.Equal(0, (await server.CliAsync("settings", "set", app, "code_length=7")).Exit);
        });

        var api = rows[0].DetailJson.GetProperty("changes");
        Assert.Equal(["backup_code_count", "code_length"], api.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal((6, 8), (api.GetProperty("code_length").GetProperty("from").GetInt32(), api.GetProperty("code_length").GetProperty("to").GetInt32()));
        Assert.Equal((10, 12), (api.GetProperty("backup_code_count").GetProperty("from").GetInt32(), api.GetProperty("backup_code_count").GetProperty("to").GetInt32()));
        var cli = rows[1].DetailJson.GetProperty("changes").GetProperty("code_length");
        Assert.Equal((8, 7), (cli.GetProperty("from").GetInt32(), cli.GetProperty("to").GetInt32()));
    }

    [Fact]
    public async Task The_audit_list_filters_by_event_application_subject_outcome_and_time()
    {
        // Given two applications, a send to one user, and a refused settings change
        var server = await servers.GetAsync(Db.Sqlite);
        var (app, key) = await server.CreateApplicationWithKeyAsync("Filtered", "standard");
        var other = await server.CreateApplicationAsync("Other", "standard");
        var user = TestUsers.NewEmail("filtered");
        await server.SendAcceptedAsync(user, "EMAIL", key);
        using (var refused = await server.PatchSettingsAsync(app, new { code_length = 99 }))
        {
            await refused.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "code_length");
        }

        using var admin = server.AdminClient();
        async Task<List<System.Text.Json.JsonElement>> ListAsync(string query)
        {
            using var response = await admin.GetAsync("/admin/v1/audit?limit=1000&" + query);
            return (await response.AssertJsonAsync(HttpStatusCode.OK, "list")).GetProperty("data").EnumerateArray().ToList();
        }

        // Then each filter keeps only what matches it
        var byEvent = await ListAsync("event=application.create");
        Assert.NotEmpty(byEvent);
        Assert.All(byEvent, r => Assert.Equal("application.create", r.GetProperty("event").GetString()));
        Assert.Contains(byEvent, r => r.GetProperty("application_id").GetString() == other);

        var byApp = await ListAsync($"application_id={app}");
        Assert.All(byApp, r => Assert.Equal(app, r.GetProperty("application_id").GetString()));
        Assert.Contains(byApp, r => r.GetProperty("event").GetString() == "challenge.send");

        var bySubject = await ListAsync($"subject={Uri.EscapeDataString(user.ToUpperInvariant())}");
        Assert.Equal(["challenge.send"], bySubject.Select(r => r.GetProperty("event").GetString()));

        var byOutcome = await ListAsync($"application_id={app}&outcome=invalid_request");
        Assert.Equal(["settings.update"], byOutcome.Select(r => r.GetProperty("event").GetString()));

        var all = await ListAsync("");
        var last = all[^1];
        var at = last.GetProperty("at").GetDateTime().ToUniversalTime();
        var fromLast = await ListAsync($"from={Uri.EscapeDataString(at.ToString("O"))}");
        Assert.All(fromLast, r => Assert.True(r.GetProperty("at").GetDateTime().ToUniversalTime() >= at));
        Assert.Contains(fromLast, r => r.GetProperty("seq").GetInt64() == last.GetProperty("seq").GetInt64());
        var beforeLast = await ListAsync($"to={Uri.EscapeDataString(at.ToString("O"))}");
        Assert.All(beforeLast, r => Assert.True(r.GetProperty("at").GetDateTime().ToUniversalTime() < at));
        Assert.Empty(await ListAsync("from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z"));
    }

    [Theory]
    [InlineData("evnt=settings.update", "evnt")]
    [InlineData("event=settings.updated", "event")]
    [InlineData("from=yesterday", "from")]
    [InlineData("from=2026-06-02T00:00:00Z&to=2026-06-01T00:00:00Z", "to")]
    [InlineData("limit=5&limit=6", "limit")]
    [InlineData("application=app_x", "application")]
    public async Task An_unknown_or_malformed_audit_parameter_is_400_naming_it(string query, string param)
    {
        var server = await servers.GetAsync(Db.Sqlite);
        using var admin = server.AdminClient();
        using var response = await admin.GetAsync("/admin/v1/audit?" + query);
        await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", param);
    }
}
