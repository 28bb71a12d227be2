using System.Net;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Tls;

/// <summary>
/// Mutual TLS with certificates asked for but not required at the handshake (PostgreSQL): a connection without a
/// valid certificate gets through TLS, and its <c>/v1</c> request gets <c>401 client_certificate_required</c>.
/// </summary>
public sealed class AllowedClientCertificateTests(AllowedMtlsServer mtls) : IClassFixture<AllowedMtlsServer>
{
    [Fact]
    public async Task No_certificate_gets_401_client_certificate_required()
    {
        using var client = mtls.Client(null, mtls.Server.TestKey);

        using var response = await MtlsServer.SendCodeAsync(client, TestUsers.NewEmail());

        await response.AssertProblemAsync(HttpStatusCode.Unauthorized, "client_certificate_required");
        Assert.False(string.IsNullOrEmpty(response.Headers.WwwAuthenticate.ToString()));
    }

    [Fact]
    public async Task Certificate_from_an_unknown_ca_gets_401_even_when_its_thumbprint_is_registered()
    {
        var (app, key) = await mtls.Server.CreateApplicationWithKeyAsync("untrusted", "standard");
        var certificate = TestPki.IssueClient(mtls.UntrustedCa, "impostor");
        await mtls.RegisterAsync(app, certificate, byThumbprint: true);
        using var client = mtls.Client(certificate, key);

        using var response = await MtlsServer.SendCodeAsync(client, TestUsers.NewEmail());

        await response.AssertProblemAsync(HttpStatusCode.Unauthorized, "client_certificate_required");
    }

    [Fact]
    public async Task Self_signed_certificate_gets_401_even_when_its_thumbprint_is_registered()
    {
        var (app, key) = await mtls.Server.CreateApplicationWithKeyAsync("self-signed", "standard");
        var certificate = TestPki.SelfSignedClient("self-made");
        await mtls.RegisterAsync(app, certificate, byThumbprint: true);
        using var client = mtls.Client(certificate, key);

        using var response = await MtlsServer.SendCodeAsync(client, TestUsers.NewEmail());

        await response.AssertProblemAsync(HttpStatusCode.Unauthorized, "client_certificate_required");
    }

    [Fact]
    public async Task Expired_certificate_gets_401_even_when_registered()
    {
        var (app, key) = await mtls.Server.CreateApplicationWithKeyAsync("expired", "standard");
        var now = DateTimeOffset.UtcNow;
        var certificate = TestPki.IssueClient(mtls.ClientCa, "expired-service", now.AddDays(-30), now.AddDays(-1));
        await mtls.RegisterAsync(app, certificate);
        using var client = mtls.Client(certificate, key);

        using var response = await MtlsServer.SendCodeAsync(client, TestUsers.NewEmail());

        await response.AssertProblemAsync(HttpStatusCode.Unauthorized, "client_certificate_required");
    }

    [Fact]
    public async Task Registered_certificate_is_accepted_and_an_unregistered_one_gets_403()
    {
        var (app, key) = await mtls.Server.CreateApplicationWithKeyAsync("billing", "standard");
        var registered = TestPki.IssueClient(mtls.ClientCa, "billing-service");
        await mtls.RegisterAsync(app, registered);

        using (var good = mtls.Client(registered, key))
        using (var accepted = await MtlsServer.SendCodeAsync(good, TestUsers.NewEmail()))
        {
            await accepted.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");
        }

        using var other = mtls.Client(TestPki.IssueClient(mtls.ClientCa, "other-service"), key);
        using var refused = await MtlsServer.SendCodeAsync(other, TestUsers.NewEmail());
        await refused.AssertProblemAsync(HttpStatusCode.Forbidden, "client_certificate_mismatch");
    }

    [Fact]
    public async Task Operator_token_alone_still_opens_the_admin_api_and_a_wrong_certificate_alone_does_not()
    {
        using (var tokenOnly = mtls.Client(null, mtls.Server.OperatorToken))
        using (var listed = await tokenOnly.GetAsync("/admin/v1/applications"))
        {
            await listed.AssertJsonAsync(HttpStatusCode.OK, "list");
        }

        using (var operatorCertificate = mtls.Client(mtls.OperatorCertificate, null))
        using (var accepted = await operatorCertificate.GetAsync("/admin/v1/applications"))
        {
            await accepted.AssertJsonAsync(HttpStatusCode.OK, "list");
        }

        // A certificate of an unknown CA that claims nothing, and no token
        using var wrong = mtls.Client(TestPki.IssueClient(mtls.UntrustedCa, "operator"), null);
        using var refused = await wrong.GetAsync("/admin/v1/applications");
        await refused.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
    }

    [Fact]
    public async Task Health_endpoints_answer_over_https_without_a_certificate()
    {
        Assert.Equal("https", mtls.Server.BaseAddress.Scheme);
        using var client = mtls.Client(null, null);
        using var health = await client.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        using var ready = await client.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
    }
}
