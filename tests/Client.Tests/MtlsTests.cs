using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography.X509Certificates;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Api.Tests.Tls;

namespace DevRift.Client.Tests;

/// <summary>The client on an appliance that requires mutual TLS, with a certificate registered on the application.</summary>
public sealed class MtlsTests : IAsyncLifetime
{
    private readonly X509Certificate2 _serverCa = TestPki.CreateCa("Client Tests Server CA");
    private readonly X509Certificate2 _clientCa = TestPki.CreateCa("Client Tests Client CA");
    private X509Certificate2 _operator = null!;
    private ApplianceServer _server = null!;

    public async Task InitializeAsync()
    {
        _operator = TestPki.IssueClient(_clientCa, "operator");
        _server = await StartAsync(_serverCa, _clientCa, _operator, requireClientCertificate: true);
    }

    /// <summary>An appliance on https whose server certificate is issued by <paramref name="serverCa"/>, trusting client certificates of <paramref name="clientCa"/>.</summary>
    internal static Task<ApplianceServer> StartAsync(X509Certificate2 serverCa, X509Certificate2 clientCa, X509Certificate2 operatorCertificate, bool requireClientCertificate)
    {
        var serverCertificate = TestPki.IssueServer(serverCa);
        return ApplianceServer.StartAsync(Db.Sqlite, dataDirectorySettings: directory =>
        {
            File.WriteAllText(Path.Combine(directory, "server.pem"), TestPki.Pem(serverCertificate));
            File.WriteAllText(Path.Combine(directory, "server.key"), TestPki.KeyPem(serverCertificate));
            File.WriteAllText(Path.Combine(directory, "client-ca.pem"), TestPki.Pem(clientCa));
            return new Dictionary<string, string?>
            {
                ["Tls:Certificate"] = Path.Combine(directory, "server.pem"),
                ["Tls:Key"] = Path.Combine(directory, "server.key"),
                ["Tls:ClientCa"] = Path.Combine(directory, "client-ca.pem"),
                ["Tls:RequireClientCertificate"] = requireClientCertificate ? "true" : "false",
            };
        }, clientHandler: () => TestPki.Handler(serverCa, operatorCertificate));
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private DevRiftClient NewClient(Action<DevRiftClientOptions> certificate) => NewClient(_server, _serverCa, certificate);

    internal static DevRiftClient NewClient(ApplianceServer appliance, X509Certificate2 serverCa, Action<DevRiftClientOptions> certificate)
    {
        var options = new DevRiftClientOptions
        {
            BaseAddress = appliance.BaseAddress,
            ApiKey = appliance.TestKey,
            ServerCertificateValidation = (server, _, errors) => TrustedByTestCa(serverCa, server, errors),
        };
        options.Retry.MaxRetries = 0;
        certificate(options);
        return new DevRiftClient(options);
    }

    /// <summary>The server is trusted only through the test CA (chain errors against the system store are expected), and must name the host.</summary>
    private static bool TrustedByTestCa(X509Certificate2 serverCa, X509Certificate2 server, System.Net.Security.SslPolicyErrors errors)
    {
        if ((errors & ~System.Net.Security.SslPolicyErrors.RemoteCertificateChainErrors) != System.Net.Security.SslPolicyErrors.None)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(serverCa);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(server);
    }

    [Fact]
    public async Task A_registered_certificate_from_PEM_files_sends_and_an_unregistered_one_is_403()
    {
        var registered = TestPki.IssueClient(_clientCa, "billing");
        var stranger = TestPki.IssueClient(_clientCa, "stranger");
        using (var admin = _server.AdminClient())
        using (var response = await admin.PostAsJsonAsync($"/admin/v1/applications/{_server.ApplicationId}/client-certificates", new { pem = TestPki.Pem(registered) }))
        {
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        }

        var certificateFile = Path.Combine(_server.DataDirectory, "billing.pem");
        var keyFile = Path.Combine(_server.DataDirectory, "billing.key");
        await File.WriteAllTextAsync(certificateFile, TestPki.Pem(registered));
        await File.WriteAllTextAsync(keyFile, TestPki.KeyPem(registered));

        using var fromFiles = NewClient(o => o.UseClientCertificateFile(certificateFile, keyFile));
        var user = TestUsers.NewEmail("mtls");
        Assert.Equal("pending", (await fromFiles.SendCodeAsync(user, DeliveryChannel.Email)).Status);
        var code = await fromFiles.GetLatestTestCodeAsync(user, DeliveryChannel.Email);
        Assert.True((await fromFiles.VerifyCodeAsync(user, VerificationType.Email, code)).Valid);

        using var unregistered = NewClient(o => o.ClientCertificate = stranger);
        var e = await Assert.ThrowsAsync<DevRiftException>(() => unregistered.SendCodeAsync(TestUsers.NewEmail(), DeliveryChannel.Email));
        Assert.Equal((HttpStatusCode.Forbidden, "client_certificate_mismatch"), (e.Status, e.Code));
    }

    [Fact]
    public async Task A_registered_certificate_is_found_in_the_certificate_store_by_thumbprint()
    {
        using var issued = TestPki.IssueClient(_clientCa, "store-client");
        using var persisted = X509CertificateLoader.LoadPkcs12(issued.Export(X509ContentType.Pkcs12), null, X509KeyStorageFlags.PersistKeySet | X509KeyStorageFlags.Exportable);
        using (var admin = _server.AdminClient())
        using (var response = await admin.PostAsJsonAsync($"/admin/v1/applications/{_server.ApplicationId}/client-certificates", new { thumbprint = TestPki.Thumbprint(issued) }))
        {
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        }

        using var store = new X509Store(StoreName.My, StoreLocation.CurrentUser);
        store.Open(OpenFlags.ReadWrite);
        store.Add(persisted);
        try
        {
            using var fromStore = NewClient(o => o.UseClientCertificateFromStore(TestPki.Thumbprint(issued)));
            Assert.Equal("pending", (await fromStore.SendCodeAsync(TestUsers.NewEmail("store"), DeliveryChannel.Email)).Status);
        }
        finally
        {
            store.Remove(persisted);
        }
    }

    [Fact]
    public async Task Without_a_certificate_the_handshake_fails()
    {
        using var none = NewClient(_ => { });
        await Assert.ThrowsAsync<HttpRequestException>(() => none.SendCodeAsync(TestUsers.NewEmail(), DeliveryChannel.Email));
    }
}

/// <summary>Mutual TLS allowed but not required at the handshake: a /v1 call without a certificate is a 401 problem.</summary>
public sealed class OptionalMtlsTests : IAsyncLifetime
{
    private readonly X509Certificate2 _serverCa = TestPki.CreateCa("Client Tests Server CA");
    private readonly X509Certificate2 _clientCa = TestPki.CreateCa("Client Tests Client CA");
    private ApplianceServer _server = null!;

    public async Task InitializeAsync() =>
        _server = await MtlsTests.StartAsync(_serverCa, _clientCa, TestPki.IssueClient(_clientCa, "operator"), requireClientCertificate: false);

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Without_a_certificate_a_call_is_401_client_certificate_required()
    {
        using var none = MtlsTests.NewClient(_server, _serverCa, _ => { });
        var e = await Assert.ThrowsAsync<DevRiftException>(() => none.SendCodeAsync(TestUsers.NewEmail(), DeliveryChannel.Email));
        Assert.Equal((HttpStatusCode.Unauthorized, "client_certificate_required", false), (e.Status, e.Code, e.IsVerificationFailure));
    }
}
