using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using DevRift.Hsm.Api.Hosting;
using DevRift.Hsm.Api.Tests.Audit;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Testing;

namespace DevRift.Hsm.Api.Tests.Operators;

/// <summary>Operator tokens: created (shown once), listed, revoked at once, through /admin/v1, the command line and init.</summary>
public sealed class OperatorTokenTests(SystemClockServers servers) : IClassFixture<SystemClockServers>
{
    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_token_created_through_the_api_is_shown_once_listed_without_its_secret_and_refused_right_after_revocation(Db db)
    {
        // Given the operator signed in with init's token
        var server = await servers.GetAsync(db);
        using var admin = server.AdminClient();

        // When they create a token labelled "on-call laptop"
        using var created = await admin.PostAsJsonAsync("/admin/v1/operator-tokens", new { label = "on-call laptop" });

        // Then 201 {"object":"operator_token","id":"op_…","label","created_at","secret":"adm_…"}, not cached
        var token = await created.AssertJsonAsync(HttpStatusCode.Created, "operator_token");
        var id = token.GetProperty("id").GetString()!;
        var secret = token.GetProperty("secret").GetString()!;
        Assert.StartsWith("op_", id, StringComparison.Ordinal);
        Assert.StartsWith("adm_", secret, StringComparison.Ordinal);
        Assert.Equal("on-call laptop", token.GetProperty("label").GetString());
        Assert.Equal("no-store", created.Headers.CacheControl!.ToString());

        // And the new token works, and its use shows in the list, which never holds a secret
        using var withNew = server.AdminClient(secret);
        (await withNew.GetAsync("/admin/v1/applications")).EnsureSuccessStatusCode();
        using var list = await admin.GetAsync("/admin/v1/operator-tokens");
        var listed = (await list.AssertJsonAsync(HttpStatusCode.OK, "list")).GetProperty("data").EnumerateArray().ToList();
        var entry = Assert.Single(listed, t => t.GetProperty("id").GetString() == id);
        Assert.Equal("on-call laptop", entry.GetProperty("label").GetString());
        Assert.True(entry.TryGetProperty("created_at", out _));
        Assert.True(entry.TryGetProperty("last_used_at", out _));
        Assert.False(entry.TryGetProperty("revoked_at", out _));
        Assert.All(listed, t => Assert.False(t.TryGetProperty("secret", out _)));
        Assert.DoesNotContain(secret[4..], await list.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // When it is revoked
        using var revoked = await admin.DeleteAsync($"/admin/v1/operator-tokens/{id}");
        Assert.True((await revoked.AssertJsonAsync(HttpStatusCode.OK, "operator_token")).TryGetProperty("revoked_at", out _));

        // Then its very next request is 401 invalid_api_key, while the other token still works
        using var refused = await withNew.GetAsync("/admin/v1/applications");
        await refused.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
        (await admin.GetAsync("/admin/v1/applications")).EnsureSuccessStatusCode();
    }

    [Fact]
    public async Task Token_changes_are_audited_with_id_and_label_and_never_the_secret()
    {
        var server = await servers.GetAsync(Db.Sqlite);
        using var admin = server.AdminClient();
        string id = "", secret = "";
        var rows = await server.RowsDuringAsync(async () =>
        {
            using var created = await admin.PostAsJsonAsync("/admin/v1/operator-tokens", new { label = "ci" });
            var token = await created.AssertJsonAsync(HttpStatusCode.Created, "operator_token");
            (id, secret) = (token.GetProperty("id").GetString()!, token.GetProperty("secret").GetString()!);
            (await admin.DeleteAsync($"/admin/v1/operator-tokens/{id}")).EnsureSuccessStatusCode();
            using var missing = await admin.DeleteAsync("/admin/v1/operator-tokens/op_nosuchtoken");
            await missing.AssertProblemAsync(HttpStatusCode.NotFound, "not_found", "id");
        });

        Assert.Equal([("operator_token.create", "ok"), ("operator_token.revoke", "ok"), ("operator_token.revoke", "not_found")],
            rows.Select(r => (r.Event, r.Outcome)));
        Assert.All(rows[..2], r => Assert.Equal((id, "ci"), (r.DetailJson.GetProperty("token_id").GetString(), r.DetailJson.GetProperty("label").GetString())));
        Assert.Equal("op_nosuchtoken", rows[2].DetailJson.GetProperty("token_id").GetString());
        Assert.All(rows, r => Assert.DoesNotContain(secret[4..], r.Detail, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("{}", "label")]
    [InlineData("{\"label\": \"  \"}", "label")]
    [InlineData("{\"label\": \"x\", \"scope\": \"all\"}", "scope")]
    public async Task A_token_needs_a_label_and_nothing_else(string body, string param)
    {
        var server = await servers.GetAsync(Db.Sqlite);
        using var admin = server.AdminClient();
        using var response = await admin.PostAsync("/admin/v1/operator-tokens", Content.Bytes(body, "application/json"));
        await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", param);
    }

    [Fact]
    public async Task The_command_line_creates_lists_and_revokes_tokens()
    {
        var server = await servers.GetAsync(Db.Sqlite);
        var created = await server.CliAsync("operator-tokens", "create", "backup operator");
        Assert.Equal(0, created.Exit);
        var token = JsonDocument.Parse(created.Stdout).RootElement;
        var id = token.GetProperty("id").GetString()!;
        var secret = token.GetProperty("secret").GetString()!;
        using (var works = server.AdminClient(secret))
        {
            (await works.GetAsync("/admin/v1/hsm")).EnsureSuccessStatusCode();
        }

        var list = await server.CliAsync("operator-tokens", "list");
        Assert.Equal(0, list.Exit);
        Assert.Contains(id, list.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, list.Stdout, StringComparison.Ordinal);

        Assert.Equal(0, (await server.CliAsync("operator-tokens", "revoke", id)).Exit);
        using var refused = server.AdminClient(secret);
        await (await refused.GetAsync("/admin/v1/hsm")).AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
        var rows = await server.AuditRowsAsync();
        Assert.Contains(rows, r => r.Event == "operator_token.revoke" && r.DetailJson.GetProperty("via").GetString() == "cli" && r.DetailJson.GetProperty("token_id").GetString() == id);
    }

    [Fact]
    public async Task Init_on_an_existing_install_mints_a_token_only_when_asked_and_audits_it()
    {
        // Given an initialised install whose operator token is lost
        var hsm = SoftHsmTokens.CreateToken();
        var directory = Path.Combine(Path.GetTempPath(), "devrift-init-tests", Guid.NewGuid().ToString("N"));
        string[] settings =
        [
            "--urls=http://127.0.0.1:18098", $"--Data:Directory={directory}",
            $"--Hsm:ModulePath={hsm.ModulePath}", $"--Hsm:TokenLabel={hsm.TokenLabel}", $"--Hsm:Pin={hsm.Pin}",
            $"--Hsm:SoftHsmConfig={hsm.SoftHsmConfig}", "--Logging:LogLevel:Default=None",
        ];
        using (var first = new StringWriter())
        {
            Assert.Equal(0, await ApplianceProgram.RunAsync(["init", .. settings], first, TextWriter.Null));
        }

        // When init runs again without the flag, then with --Init:OperatorToken=true
        using var plain = new StringWriter();
        using var recovery = new StringWriter();
        Assert.Equal(0, await ApplianceProgram.RunAsync(["init", .. settings], plain, TextWriter.Null));
        Assert.Equal(0, await ApplianceProgram.RunAsync(["init", .. settings, "--Init:OperatorToken=true"], recovery, TextWriter.Null));

        // Then the plain run shows no secret but the dashboard's address; the other shows one new token once
        Assert.DoesNotContain("adm_", plain.ToString(), StringComparison.Ordinal);
        Assert.Contains("http://localhost:18098/dashboard", plain.ToString(), StringComparison.Ordinal);
        var secret = System.Text.RegularExpressions.Regex.Match(recovery.ToString(), @"operator token:\s+(adm_\w+)").Groups[1].Value;
        Assert.NotEmpty(secret);

        // And the token works against that install, and the audit log holds its creation (no secret) by init
        await using var app = ApplianceHost.Build([.. settings.Skip(1), "--urls=http://127.0.0.1:0"]);
        await app.StartAsync();
        using var admin = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
        admin.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", secret);
        using var tokens = await admin.GetAsync("/admin/v1/operator-tokens");
        var list = (await tokens.AssertJsonAsync(HttpStatusCode.OK, "list")).GetProperty("data").EnumerateArray().ToList();
        Assert.Equal(["init", "recovery (init)"], list.Select(t => t.GetProperty("label").GetString()));
        using var audit = await admin.GetAsync("/admin/v1/audit?event=operator_token.create");
        var record = Assert.Single((await audit.AssertJsonAsync(HttpStatusCode.OK, "list")).GetProperty("data").EnumerateArray());
        Assert.True(record.GetProperty("detail").GetProperty("recovery").GetBoolean());
        Assert.Equal(list[1].GetProperty("id").GetString(), record.GetProperty("detail").GetProperty("token_id").GetString());
        Assert.DoesNotContain(secret[4..], record.GetRawText(), StringComparison.Ordinal);
    }
}
