using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using DevRift.Hsm.Api.Hosting;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Testing;

namespace DevRift.Hsm.Api.Tests.Tls;

/// <summary>
/// Registering client certificates through <c>/admin/v1</c> and the command line, on SQLite and PostgreSQL: what is
/// stored, and a 400 naming the field for everything malformed.
/// </summary>
public sealed class ClientCertificateRegistrationTests(SystemClockServers servers) : IClassFixture<SystemClockServers>
{
    private static readonly System.Security.Cryptography.X509Certificates.X509Certificate2 s_ca = TestPki.CreateCa("Registration CA");

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Pem_and_thumbprint_registrations_are_listed_and_removed(Db db)
    {
        var server = await servers.GetAsync(db);
        var app = await server.CreateApplicationAsync("registry", "standard");
        var byPem = TestPki.IssueClient(s_ca, "by-pem");
        var byThumbprint = TestPki.IssueClient(s_ca, "by-thumbprint");
        using var admin = server.AdminClient();

        // PEM: thumbprint, subject and expiry are known
        using var created = await admin.PostAsJsonAsync($"/admin/v1/applications/{app}/client-certificates", new { pem = TestPki.Pem(byPem) });
        var first = await created.AssertJsonAsync(HttpStatusCode.Created, "client_certificate");
        Assert.Equal($"/admin/v1/applications/{app}/client-certificates/{first.GetProperty("id").GetString()}", created.Headers.Location?.ToString());
        Assert.Equal(TestPki.Thumbprint(byPem), first.GetProperty("thumbprint").GetString());
        Assert.Equal("CN=by-pem, O=DevRift Tests", first.GetProperty("subject").GetString());

        // Thumbprint as openssl prints it (lower case here, colons between bytes): stored normalised, nothing else known
        var colons = string.Join(':', TestPki.Thumbprint(byThumbprint).ToLowerInvariant().Chunk(2).Select(c => new string(c)));
        using var second = await admin.PostAsJsonAsync($"/admin/v1/applications/{app}/client-certificates", new { thumbprint = colons });
        var registered = await second.AssertJsonAsync(HttpStatusCode.Created, "client_certificate");
        Assert.Equal(TestPki.Thumbprint(byThumbprint), registered.GetProperty("thumbprint").GetString());
        Assert.False(registered.TryGetProperty("subject", out _));
        Assert.False(registered.TryGetProperty("not_after", out _));

        // The same certificate again is refused, naming the field
        using var again = await admin.PostAsJsonAsync($"/admin/v1/applications/{app}/client-certificates", new { thumbprint = TestPki.Thumbprint(byPem) });
        await again.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "thumbprint");

        // Listed in registration order, with the same fields
        using var list = await admin.GetAsync($"/admin/v1/applications/{app}/client-certificates");
        var data = (await list.AssertJsonAsync(HttpStatusCode.OK, "list")).GetProperty("data");
        Assert.Equal(new[] { first.GetProperty("id").GetString()!, registered.GetProperty("id").GetString()! },
            data.EnumerateArray().Select(c => c.GetProperty("id").GetString()!).ToArray());
        Assert.Equal(first.GetProperty("created_at").GetDateTime(), data[0].GetProperty("created_at").GetDateTime());
        Assert.Equal(first.GetProperty("not_after").GetDateTime(), data[0].GetProperty("not_after").GetDateTime());

        // Removed: 204, then 404 for the same id, and the row is gone
        var id = first.GetProperty("id").GetString();
        using (var removed = await admin.DeleteAsync($"/admin/v1/applications/{app}/client-certificates/{id}"))
        {
            Assert.Equal(HttpStatusCode.NoContent, removed.StatusCode);
        }

        using var missing = await admin.DeleteAsync($"/admin/v1/applications/{app}/client-certificates/{id}");
        await missing.AssertProblemAsync(HttpStatusCode.NotFound, "not_found", "certificate_id");
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM client_certificates WHERE application_id = @app", new { app }));
    }

    public static TheoryData<string, string> BadBodies()
    {
        var certificate = TestPki.IssueClient(s_ca, "bad-bodies");
        var pem = TestPki.Pem(certificate);
        return new TheoryData<string, string>
        {
            { "{}", "pem" },
            { """{"pem": "not a certificate"}""", "pem" },
            { JsonSerializer.Serialize(new { pem = "-----BEGIN CERTIFICATE-----\nAAAAnotbase64!!\n-----END CERTIFICATE-----\n" }), "pem" },
            { JsonSerializer.Serialize(new { pem = pem + pem }), "pem" },
            { JsonSerializer.Serialize(new { pem = pem + TestPki.KeyPem(certificate) }), "pem" },
            { """{"pem": 42}""", "pem" },
            { """{"thumbprint": "abc"}""", "thumbprint" },
            { """{"thumbprint": "ZZ3EC64CA390DCA511E831EF1E6C02D2966FCADA19B81075FC0EC9FDD105D7D6"}""", "thumbprint" },
            { JsonSerializer.Serialize(new { thumbprint = certificate.Thumbprint }), "thumbprint" },
            { """{"thumbprint": ["1A3EC64CA390DCA511E831EF1E6C02D2966FCADA19B81075FC0EC9FDD105D7D6"]}""", "thumbprint" },
            { JsonSerializer.Serialize(new { pem, thumbprint = TestPki.Thumbprint(certificate) }), "thumbprint" },
        };
    }

    [Theory]
    [MemberData(nameof(BadBodies))]
    public async Task Malformed_registrations_get_400_naming_the_field(string body, string param)
    {
        var server = await servers.GetAsync(Db.Sqlite);
        using var admin = server.AdminClient();

        using var response = await admin.PostAsync($"/admin/v1/applications/{server.ApplicationId}/client-certificates", Content.Bytes(body, "application/json"));

        var problem = await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", param);
        // Nothing of what was sent comes back (a pasted private key least of all): no base64 of a DER structure.
        Assert.DoesNotContain("MI", problem.GetRawText(), StringComparison.Ordinal);
        Assert.DoesNotContain("not a certificate", problem.GetRawText(), StringComparison.Ordinal);
        Assert.DoesNotContain("notbase64", problem.GetRawText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sha1_thumbprint_is_refused_with_a_hint()
    {
        var server = await servers.GetAsync(Db.Sqlite);
        using var admin = server.AdminClient();

        using var response = await admin.PostAsJsonAsync($"/admin/v1/applications/{server.ApplicationId}/client-certificates",
            new { thumbprint = TestPki.IssueClient(s_ca, "sha1").Thumbprint });

        var problem = await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "thumbprint");
        Assert.Contains("SHA-1", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unknown_application_gets_404_and_no_token_gets_401()
    {
        var server = await servers.GetAsync(Db.Sqlite);
        using var admin = server.AdminClient();
        using var unknown = await admin.GetAsync("/admin/v1/applications/app_nope/client-certificates");
        await unknown.AssertProblemAsync(HttpStatusCode.NotFound, "not_found", "id");
        using var post = await admin.PostAsJsonAsync("/admin/v1/applications/app_nope/client-certificates", new { thumbprint = new string('A', 64) });
        await post.AssertProblemAsync(HttpStatusCode.NotFound, "not_found", "id");

        using var anonymous = server.NewClient(null);
        using var refused = await anonymous.GetAsync($"/admin/v1/applications/{server.ApplicationId}/client-certificates");
        await refused.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
    }

    [Fact]
    public async Task Plain_http_without_tls_settings_needs_no_client_certificate()
    {
        // Mutual TLS is opt-in: the default deployment serves /v1 over HTTP with the key alone.
        var server = await servers.GetAsync(Db.Sqlite);
        Assert.Equal("http", server.BaseAddress.Scheme);
        await server.SendAcceptedAsync(TestUsers.NewEmail(), "EMAIL");
    }

    [Fact]
    public async Task Command_line_adds_lists_and_removes_client_certificates()
    {
        // Given an initialised appliance, a PEM file and a thumbprint
        var hsm = SoftHsmTokens.CreateToken();
        var directory = Path.Combine(Path.GetTempPath(), "devrift-tls-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        string[] common =
        [
            $"--Data:Directory={directory}", $"--Storage:ConnectionString=Data Source={Path.Combine(directory, "devrift.db")}",
            $"--Hsm:ModulePath={hsm.ModulePath}", $"--Hsm:TokenLabel={hsm.TokenLabel}", $"--Hsm:Pin={hsm.Pin}",
            $"--Hsm:SoftHsmConfig={hsm.SoftHsmConfig}", "--Logging:LogLevel:Default=None",
        ];
        Assert.Equal(0, await ApplianceProgram.RunAsync(["init", .. common, "--Init:Demo=false"], TextWriter.Null, TextWriter.Null));
        var app = JsonDocument.Parse(await RunAsync(0, ["applications", "create", "cli-app", .. common])).RootElement.GetProperty("id").GetString()!;
        var fromFile = TestPki.IssueClient(s_ca, "from-file");
        var pemPath = Path.Combine(directory, "client.pem");
        await File.WriteAllTextAsync(pemPath, TestPki.Pem(fromFile));
        var other = TestPki.IssueClient(s_ca, "by-thumbprint");

        // When both are added
        var added = JsonDocument.Parse(await RunAsync(0, ["client-certificates", "add", app, pemPath, .. common])).RootElement;
        Assert.Equal("client_certificate", added.GetProperty("object").GetString());
        Assert.Equal(TestPki.Thumbprint(fromFile), added.GetProperty("thumbprint").GetString());
        Assert.Equal("CN=from-file, O=DevRift Tests", added.GetProperty("subject").GetString());
        var second = JsonDocument.Parse(await RunAsync(0, ["client-certificates", "add", app, TestPki.Thumbprint(other).ToLowerInvariant(), .. common])).RootElement;
        Assert.Equal(TestPki.Thumbprint(other), second.GetProperty("thumbprint").GetString());

        // Then both are listed; removing one leaves the other
        var listed = JsonDocument.Parse(await RunAsync(0, ["client-certificates", "list", app, .. common])).RootElement;
        Assert.Equal(2, listed.GetArrayLength());
        var removed = JsonDocument.Parse(await RunAsync(0, ["client-certificates", "remove", app, added.GetProperty("id").GetString()!, .. common])).RootElement;
        Assert.True(removed.GetProperty("deleted").GetBoolean());
        listed = JsonDocument.Parse(await RunAsync(0, ["client-certificates", "list", app, .. common])).RootElement;
        Assert.Equal(TestPki.Thumbprint(other), Assert.Single(listed.EnumerateArray()).GetProperty("thumbprint").GetString());

        // And mistakes end with exit code 1 and one line naming the problem
        var error = await RunAsync(1, ["client-certificates", "add", app, "not-a-thumbprint", .. common]);
        Assert.StartsWith("devrift: invalid_request: thumbprint must be", error, StringComparison.Ordinal);
        error = await RunAsync(1, ["client-certificates", "remove", app, "cc_nope", .. common]);
        Assert.StartsWith("devrift: not_found:", error, StringComparison.Ordinal);
        error = await RunAsync(1, ["client-certificates", "rotate", app, .. common]);
        Assert.StartsWith("devrift: invalid_request: usage: client-certificates list APP", error, StringComparison.Ordinal);
    }

    /// <summary>Runs the executable's entry; returns standard output on success, standard error otherwise.</summary>
    private static async Task<string> RunAsync(int expectedExit, string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await ApplianceProgram.RunAsync(args, stdout, stderr).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(expectedExit == exit, $"exit {exit}: {stdout}{stderr}");
        return (exit == 0 ? stdout : stderr).ToString().Trim();
    }
}
