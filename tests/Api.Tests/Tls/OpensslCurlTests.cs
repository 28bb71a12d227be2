using System.Diagnostics;
using System.Text.Json;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Tls;

/// <summary>
/// Mutual TLS as a new user sets it up from the README: certificates made with the <c>openssl</c> command line,
/// requests made with <c>curl --cert/--key/--cacert</c>. Nothing of .NET on the client side.
/// </summary>
public sealed class OpensslCurlTests
{
    // The README's commands, run in DIR/tls (plus a second client certificate that is never registered).
    private const string MakeCertificates = """
        set -euo pipefail
        mkdir -p tls && cd tls
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 3650 -subj "/CN=Example Client CA"
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj "/CN=localhost"
        printf "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n" > server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 -out server.pem -extfile server.ext
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key -out client.csr -subj "/CN=billing-service"
        printf "extendedKeyUsage=clientAuth\n" > client.ext
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 -out client.pem -extfile client.ext
        openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key -out other.csr -subj "/CN=other-service"
        openssl x509 -req -in other.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 -out other.pem -extfile client.ext
        """;

    [Fact]
    public async Task Openssl_certificates_and_curl_registered_202_unregistered_403_none_fails()
    {
        // Given an appliance started with certificates made by openssl
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite, dataDirectorySettings: directory =>
        {
            var (exit, _, error) = Run(directory, "bash", "-c", MakeCertificates);
            Assert.True(exit == 0, error);
            var tls = Path.Combine(directory, "tls");
            return new Dictionary<string, string?>
            {
                ["Tls:Certificate"] = Path.Combine(tls, "server.pem"),
                ["Tls:Key"] = Path.Combine(tls, "server.key"),
                ["Tls:ClientCa"] = Path.Combine(tls, "ca.pem"),
                ["Tls:RequireClientCertificate"] = "true",
            };
        });
        var env = new Dictionary<string, string>
        {
            ["URL"] = server.BaseAddress.ToString().TrimEnd('/'),
            ["APP_ID"] = server.ApplicationId,
            ["OPERATOR_TOKEN"] = server.OperatorToken,
            ["KEY"] = server.TestKey,
        };
        var directory = server.DataDirectory;

        // When the operator registers the client certificate's thumbprint as the README shows
        var register = Curl(directory, env, """
            curl -sS --cacert tls/ca.pem --cert tls/client.pem --key tls/client.key \
              -X POST "$URL/admin/v1/applications/$APP_ID/client-certificates" \
              -H "Authorization: Bearer $OPERATOR_TOKEN" -H "Content-Type: application/json" \
              -d "{\"thumbprint\":\"$(openssl x509 -in tls/client.pem -noout -fingerprint -sha256 | cut -d= -f2)\"}"
            """);
        Assert.Equal((0, 201), (register.Exit, register.Status));
        Assert.Equal("client_certificate", JsonDocument.Parse(register.Body).RootElement.GetProperty("object").GetString());

        // Then curl with that certificate sends a code
        var registered = Curl(directory, env, """
            curl -sS --cacert tls/ca.pem --cert tls/client.pem --key tls/client.key \
              -X POST "$URL/v1/mfa" -H "Authorization: Bearer $KEY" -d "User=ada@example.com, Type=EMAIL"
            """);
        Assert.Equal((0, 202), (registered.Exit, registered.Status));
        Assert.Equal("challenge", JsonDocument.Parse(registered.Body).RootElement.GetProperty("object").GetString());

        // An unregistered certificate of the same CA is refused with 403
        var unregistered = Curl(directory, env, """
            curl -sS --cacert tls/ca.pem --cert tls/other.pem --key tls/other.key \
              -X POST "$URL/v1/mfa" -H "Authorization: Bearer $KEY" -d "User=ada@example.com, Type=EMAIL"
            """);
        Assert.Equal((0, 403), (unregistered.Exit, unregistered.Status));
        Assert.Equal("client_certificate_mismatch", JsonDocument.Parse(unregistered.Body).RootElement.GetProperty("code").GetString());

        // And without a certificate curl gets no HTTP answer at all
        var none = Curl(directory, env, """
            curl -sS --cacert tls/ca.pem -X POST "$URL/v1/mfa" -H "Authorization: Bearer $KEY" -d "User=ada@example.com, Type=EMAIL"
            """);
        Assert.NotEqual(0, none.Exit);
        Assert.Equal(0, none.Status);

        // The handshake names the client CA, so that a client holding several certificates can offer the right one
        var (_, handshake, _) = Run(directory, "bash", env, "-c",
            "echo | openssl s_client -connect \"${URL#https://}\" -CAfile tls/ca.pem -cert tls/client.pem -key tls/client.key 2>&1");
        Assert.Contains("Acceptable client certificate CA names\nCN = Example Client CA\n", handshake, StringComparison.Ordinal);

        // The health check works over HTTPS for a client with a certificate
        var health = Curl(directory, env, """curl -sS --cacert tls/ca.pem --cert tls/client.pem --key tls/client.key "$URL/healthz" """);
        Assert.Equal((0, 200), (health.Exit, health.Status));
    }

    private sealed record CurlResult(int Exit, int Status, string Body, string Error);

    /// <summary>Runs a curl command line in bash, adding <c>-w</c> to learn the status (0 when there was no HTTP answer).</summary>
    private static CurlResult Curl(string directory, IDictionary<string, string> env, string command)
    {
        var marker = "\n__status__:";
        var (exit, output, error) = Run(directory, "bash", env, "-c", command.TrimEnd() + $" -w '{marker.Replace("\n", "\\n", StringComparison.Ordinal)}%{{http_code}}'");
        var at = output.LastIndexOf(marker, StringComparison.Ordinal);
        var status = at >= 0 ? int.Parse(output[(at + marker.Length)..].Trim(), System.Globalization.CultureInfo.InvariantCulture) : 0;
        return new CurlResult(exit, status, at >= 0 ? output[..at] : output, error);
    }

    private static (int Exit, string Output, string Error) Run(string directory, string file, params string[] args) =>
        Run(directory, file, new Dictionary<string, string>(), args);

    private static (int Exit, string Output, string Error) Run(string directory, string file, IDictionary<string, string> env, params string[] args)
    {
        var start = new ProcessStartInfo(file)
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var (k, v) in env)
        {
            start.Environment[k] = v;
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} did not finish in 60 s");
        }

        return (process.ExitCode, output.Result, error.Result);
    }
}
