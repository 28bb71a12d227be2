using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Tls;

/// <summary>
/// One appliance on https with mutual TLS, shared by the tests of a class. Its client CA file holds two CAs; the
/// server certificate comes from a third. Operator calls made through <see cref="ApplianceServer.NewClient"/>
/// present an ordinary (non-operator) certificate of the client CA and the operator token.
/// </summary>
public abstract class MtlsServer : IAsyncLifetime
{
    private ApplianceServer? _server;

    protected abstract bool RequireClientCertificate { get; }

    protected abstract Db Database { get; }

    public X509Certificate2 ServerCa { get; } = TestPki.CreateCa("DevRift Test Server CA");

    public X509Certificate2 ClientCa { get; } = TestPki.CreateCa("DevRift Test Client CA");

    /// <summary>The second CA of the client CA file.</summary>
    public X509Certificate2 PartnerCa { get; } = TestPki.CreateCa("DevRift Test Partner CA");

    /// <summary>A CA the appliance does not know.</summary>
    public X509Certificate2 UntrustedCa { get; } = TestPki.CreateCa("DevRift Test Untrusted CA");

    public X509Certificate2 OperatorCertificate { get; private set; } = null!;

    public X509Certificate2 WorkstationCertificate { get; private set; } = null!;

    public ApplianceServer Server => _server ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync()
    {
        OperatorCertificate = TestPki.IssueClient(ClientCa, "operator");
        WorkstationCertificate = TestPki.IssueClient(ClientCa, "ops-workstation");
        var serverCertificate = TestPki.IssueServer(ServerCa);
        _server = await ApplianceServer.StartAsync(Database, dataDirectorySettings: directory =>
        {
            File.WriteAllText(Path.Combine(directory, "server.pem"), TestPki.Pem(serverCertificate));
            File.WriteAllText(Path.Combine(directory, "server.key"), TestPki.KeyPem(serverCertificate));
            File.WriteAllText(Path.Combine(directory, "client-ca.pem"), TestPki.Pem(ClientCa) + TestPki.Pem(PartnerCa));
            return new Dictionary<string, string?>
            {
                ["Tls:Certificate"] = Path.Combine(directory, "server.pem"),
                ["Tls:Key"] = Path.Combine(directory, "server.key"),
                ["Tls:ClientCa"] = Path.Combine(directory, "client-ca.pem"),
                ["Tls:RequireClientCertificate"] = RequireClientCertificate ? "true" : "false",
                // As openssl prints it: lower case would do too; colons are allowed.
                ["Tls:OperatorCertificateThumbprints:0"] = string.Join(':', TestPki.Thumbprint(OperatorCertificate).Chunk(2).Select(c => new string(c))),
            };
        }, clientHandler: () => TestPki.Handler(ServerCa, WorkstationCertificate));
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    /// <summary>A client on the server's https address presenting <paramref name="certificate"/> (or none).</summary>
    public HttpClient Client(X509Certificate2? certificate, string? bearer)
    {
        var client = new HttpClient(TestPki.Handler(ServerCa, certificate)) { BaseAddress = Server.BaseAddress };
        if (bearer is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        return client;
    }

    /// <summary>Registers a certificate on an application through the operator API (asserting 201).</summary>
    public async Task<JsonElement> RegisterAsync(string applicationId, X509Certificate2 certificate, bool byThumbprint = false)
    {
        using var admin = Server.AdminClient();
        using var response = await admin.PostAsJsonAsync($"/admin/v1/applications/{applicationId}/client-certificates",
            byThumbprint ? new { thumbprint = TestPki.Thumbprint(certificate) } : (object)new { pem = TestPki.Pem(certificate) });
        return await response.AssertJsonAsync(HttpStatusCode.Created, "client_certificate");
    }

    public static Task<HttpResponseMessage> SendCodeAsync(HttpClient client, string user) =>
        client.PostAsync("/v1/mfa", new StringContent($"User={user}, Type=EMAIL", Encoding.UTF8, "application/x-www-form-urlencoded"));
}

/// <summary>Client certificates required at the handshake (SQLite).</summary>
public sealed class RequiredMtlsServer : MtlsServer
{
    protected override bool RequireClientCertificate => true;

    protected override Db Database => Db.Sqlite;
}

/// <summary>Client certificates asked for but not required at the handshake (PostgreSQL).</summary>
public sealed class AllowedMtlsServer : MtlsServer
{
    protected override bool RequireClientCertificate => false;

    protected override Db Database => Db.Postgres;
}
