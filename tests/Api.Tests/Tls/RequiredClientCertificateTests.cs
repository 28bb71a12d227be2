using System.Net;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Tls;

/// <summary>
/// Mutual TLS with <c>Tls:RequireClientCertificate=true</c>, over real TLS handshakes: the key identifies the
/// application, the certificate must chain to the client CA and be registered on that application.
/// </summary>
public sealed class RequiredClientCertificateTests(RequiredMtlsServer mtls) : IClassFixture<RequiredMtlsServer>
{
    [Fact]
    public void Server_is_on_https()
    {
        Assert.Equal("https", mtls.Server.BaseAddress.Scheme);
    }

    [Fact]
    public async Task Registered_certificate_with_its_applications_key_is_accepted()
    {
        // Given an application with a key and a certificate registered on it by PEM
        var (app, key) = await mtls.Server.CreateApplicationWithKeyAsync("billing", "standard");
        var certificate = TestPki.IssueClient(mtls.ClientCa, "billing-service");
        var registered = await mtls.RegisterAsync(app, certificate);
        Assert.StartsWith("cc_", registered.GetProperty("id").GetString(), StringComparison.Ordinal);
        Assert.Equal(TestPki.Thumbprint(certificate), registered.GetProperty("thumbprint").GetString());
        Assert.Equal(certificate.Subject, registered.GetProperty("subject").GetString());
        Assert.Equal(certificate.NotAfter.ToUniversalTime(), registered.GetProperty("not_after").GetDateTime());
        Assert.Equal(app, registered.GetProperty("application_id").GetString());
        Assert.Equal(1, await mtls.Server.CountAsync("SELECT COUNT(*) FROM client_certificates WHERE application_id = @app AND thumbprint = @t",
            new { app, t = TestPki.Thumbprint(certificate) }));

        // When it calls /v1 over TLS with that certificate and key
        using var client = mtls.Client(certificate, key);
        using var response = await MtlsServer.SendCodeAsync(client, TestUsers.NewEmail());

        // Then the challenge is accepted
        await response.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");
    }

    [Fact]
    public async Task Trusted_but_unregistered_certificate_gets_403_client_certificate_mismatch()
    {
        var (app, key) = await mtls.Server.CreateApplicationWithKeyAsync("unregistered", "standard");
        using var client = mtls.Client(TestPki.IssueClient(mtls.ClientCa, "stranger"), key);

        using var response = await MtlsServer.SendCodeAsync(client, TestUsers.NewEmail());

        await response.AssertProblemAsync(HttpStatusCode.Forbidden, "client_certificate_mismatch");
        Assert.Equal(0, await mtls.Server.CountAsync("SELECT COUNT(*) FROM challenges WHERE application_id = @app", new { app }));
    }

    [Fact]
    public async Task Certificate_registered_on_another_application_gets_403_with_this_applications_key()
    {
        // Given a certificate registered on application A only
        var (appA, keyA) = await mtls.Server.CreateApplicationWithKeyAsync("tenant-a", "standard");
        var (_, keyB) = await mtls.Server.CreateApplicationWithKeyAsync("tenant-b", "standard");
        var certificate = TestPki.IssueClient(mtls.ClientCa, "tenant-a-service");
        await mtls.RegisterAsync(appA, certificate);

        // When it is used with B's key, then it is refused; with A's key it is accepted
        using (var withB = mtls.Client(certificate, keyB))
        using (var refused = await MtlsServer.SendCodeAsync(withB, TestUsers.NewEmail()))
        {
            await refused.AssertProblemAsync(HttpStatusCode.Forbidden, "client_certificate_mismatch");
        }

        using var withA = mtls.Client(certificate, keyA);
        using var accepted = await MtlsServer.SendCodeAsync(withA, TestUsers.NewEmail());
        await accepted.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");
    }

    [Fact]
    public async Task Removing_a_registered_thumbprint_refuses_the_next_request()
    {
        // Given a certificate registered by thumbprint and a connection that works
        var (app, key) = await mtls.Server.CreateApplicationWithKeyAsync("rotating", "standard");
        var certificate = TestPki.IssueClient(mtls.ClientCa, "rotating-service");
        var registered = await mtls.RegisterAsync(app, certificate, byThumbprint: true);
        Assert.False(registered.TryGetProperty("subject", out _));
        using var client = mtls.Client(certificate, key);
        using (var first = await MtlsServer.SendCodeAsync(client, TestUsers.NewEmail()))
        {
            await first.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");
        }

        // When the operator removes it
        using var admin = mtls.Server.AdminClient();
        using (var removed = await admin.DeleteAsync($"/admin/v1/applications/{app}/client-certificates/{registered.GetProperty("id").GetString()}"))
        {
            Assert.Equal(HttpStatusCode.NoContent, removed.StatusCode);
        }

        // Then the next request, on the same client, is refused, and the list no longer shows it
        using var next = await MtlsServer.SendCodeAsync(client, TestUsers.NewEmail());
        await next.AssertProblemAsync(HttpStatusCode.Forbidden, "client_certificate_mismatch");
        using var list = await admin.GetAsync($"/admin/v1/applications/{app}/client-certificates");
        var body = await list.AssertJsonAsync(HttpStatusCode.OK, "list");
        Assert.Equal(0, body.GetProperty("data").GetArrayLength());
    }

    [Fact]
    public async Task Certificate_from_an_unknown_ca_fails_the_handshake_even_when_its_thumbprint_is_registered()
    {
        var (app, key) = await mtls.Server.CreateApplicationWithKeyAsync("untrusted", "standard");
        var certificate = TestPki.IssueClient(mtls.UntrustedCa, "impostor");
        await mtls.RegisterAsync(app, certificate, byThumbprint: true);
        using var client = mtls.Client(certificate, key);

        await Assert.ThrowsAsync<HttpRequestException>(() => MtlsServer.SendCodeAsync(client, TestUsers.NewEmail()));
    }

    [Fact]
    public async Task Self_signed_certificate_fails_the_handshake_even_when_its_thumbprint_is_registered()
    {
        var (app, key) = await mtls.Server.CreateApplicationWithKeyAsync("self-signed", "standard");
        var certificate = TestPki.SelfSignedClient("self-made");
        await mtls.RegisterAsync(app, certificate, byThumbprint: true);
        using var client = mtls.Client(certificate, key);

        await Assert.ThrowsAsync<HttpRequestException>(() => MtlsServer.SendCodeAsync(client, TestUsers.NewEmail()));
    }

    [Fact]
    public async Task No_certificate_fails_the_handshake()
    {
        using var client = mtls.Client(null, mtls.Server.TestKey);

        await Assert.ThrowsAsync<HttpRequestException>(() => MtlsServer.SendCodeAsync(client, TestUsers.NewEmail()));
        await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync("/healthz"));
    }

    [Fact]
    public async Task Expired_certificate_fails_the_handshake_even_when_registered()
    {
        var (app, key) = await mtls.Server.CreateApplicationWithKeyAsync("expired", "standard");
        var now = DateTimeOffset.UtcNow;
        var certificate = TestPki.IssueClient(mtls.ClientCa, "expired-service", now.AddDays(-30), now.AddDays(-1));
        await mtls.RegisterAsync(app, certificate);
        using var client = mtls.Client(certificate, key);

        await Assert.ThrowsAsync<HttpRequestException>(() => MtlsServer.SendCodeAsync(client, TestUsers.NewEmail()));
    }

    [Fact]
    public async Task Certificate_from_the_second_ca_of_the_client_ca_file_is_trusted()
    {
        var (app, key) = await mtls.Server.CreateApplicationWithKeyAsync("partner", "standard");
        var certificate = TestPki.IssueClient(mtls.PartnerCa, "partner-service");
        await mtls.RegisterAsync(app, certificate);
        using var client = mtls.Client(certificate, key);

        using var response = await MtlsServer.SendCodeAsync(client, TestUsers.NewEmail());

        await response.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");
    }

    [Fact]
    public async Task Wrong_key_with_a_registered_certificate_is_still_401_invalid_api_key()
    {
        var (app, _) = await mtls.Server.CreateApplicationWithKeyAsync("keyless", "standard");
        var certificate = TestPki.IssueClient(mtls.ClientCa, "keyless-service");
        await mtls.RegisterAsync(app, certificate);
        using var client = mtls.Client(certificate, "sk_test_" + new string('A', 42));

        using var response = await MtlsServer.SendCodeAsync(client, TestUsers.NewEmail());

        await response.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
    }

    [Fact]
    public async Task Operator_certificate_opens_the_admin_api_without_a_token_and_another_certificate_does_not()
    {
        // An operator certificate alone
        using (var asOperator = mtls.Client(mtls.OperatorCertificate, null))
        using (var listed = await asOperator.GetAsync("/admin/v1/applications"))
        {
            await listed.AssertJsonAsync(HttpStatusCode.OK, "list");
        }

        // A trusted certificate that is not an operator's, without a token
        using (var other = mtls.Client(mtls.WorkstationCertificate, null))
        using (var refused = await other.GetAsync("/admin/v1/applications"))
        {
            await refused.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
        }

        // The same certificate with the operator token
        using var withToken = mtls.Client(mtls.WorkstationCertificate, mtls.Server.OperatorToken);
        using var accepted = await withToken.GetAsync("/admin/v1/applications");
        await accepted.AssertJsonAsync(HttpStatusCode.OK, "list");
    }

    [Fact]
    public async Task Operator_certificate_is_not_an_api_key()
    {
        // The operator certificate opens /admin/v1 only: /v1 still needs an API key.
        using var client = mtls.Client(mtls.OperatorCertificate, null);
        using var response = await MtlsServer.SendCodeAsync(client, TestUsers.NewEmail());
        await response.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
    }

    [Fact]
    public async Task Health_endpoints_answer_over_https()
    {
        using var client = mtls.Client(mtls.WorkstationCertificate, null);
        using var health = await client.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        using var ready = await client.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
    }

    [Fact]
    public async Task Client_refuses_a_server_that_does_not_chain_to_its_ca()
    {
        // The tests' own trust is real: a client that trusts another CA does not talk to this server.
        using var client = new HttpClient(TestPki.Handler(mtls.UntrustedCa, mtls.WorkstationCertificate)) { BaseAddress = mtls.Server.BaseAddress };
        await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync("/healthz"));
    }
}
