using DevRift.Hsm.Api.Hosting;
using DevRift.Hsm.Testing;

namespace DevRift.Hsm.Api.Tests;

/// <summary>What <c>init</c> (run by <c>./run.sh</c> on first start) prints: the secrets once, and how to try them.</summary>
public sealed class InitOutputTests
{
    [Fact]
    public async Task Init_prints_the_test_key_the_operator_token_curl_lines_and_the_demo_page_once()
    {
        // Given a fresh token and data directory
        var hsm = SoftHsmTokens.CreateToken();
        var directory = Path.Combine(Path.GetTempPath(), "devrift-init-tests", Guid.NewGuid().ToString("N"));
        string[] settings =
        [
            "--urls=http://127.0.0.1:18099", $"--Data:Directory={directory}",
            $"--Hsm:ModulePath={hsm.ModulePath}", $"--Hsm:TokenLabel={hsm.TokenLabel}", $"--Hsm:Pin={hsm.Pin}",
            $"--Hsm:SoftHsmConfig={hsm.SoftHsmConfig}", "--Logging:LogLevel:Default=None",
        ];

        // When init runs twice
        using var first = new StringWriter();
        using var second = new StringWriter();
        Assert.Equal(0, await ApplianceProgram.RunAsync(["init", .. settings], first, TextWriter.Null));
        Assert.Equal(0, await ApplianceProgram.RunAsync(["init", .. settings], second, TextWriter.Null));

        // Then the first run shows the key, the token, ready-to-paste curl lines and the demo page on localhost
        var output = first.ToString();
        var key = System.Text.RegularExpressions.Regex.Match(output, @"sk_test_\w+").Value;
        Assert.NotEmpty(key);
        Assert.Matches(@"operator token:\s+adm_\w+", output);
        Assert.Contains($"curl -X POST http://127.0.0.1:18099/v1/mfa -H \"Authorization: Bearer {key}\" -d \"User=ada@example.com, Type=EMAIL\"", output, StringComparison.Ordinal);
        Assert.Contains("http://localhost:18099/demo", output, StringComparison.Ordinal);

        // And the operator dashboard's address
        Assert.Contains("http://localhost:18099/dashboard", output, StringComparison.Ordinal);

        // And the second run creates nothing and shows no secret, only where the dashboard is
        Assert.Equal(
            ["hsm: the token already has its keys", "dashboard: http://localhost:18099/dashboard (lost every operator token? init --Init:OperatorToken=true mints one)"],
            second.ToString().Trim().Split(Environment.NewLine));
        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public async Task Under_mutual_tls_init_prints_https_curl_lines_with_the_ca_and_a_client_certificate()
    {
        // Given a fresh token, and a CA that issued the server certificate and the client certificates
        var hsm = SoftHsmTokens.CreateToken();
        var directory = Path.Combine(Path.GetTempPath(), "devrift-init-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        using var ca = Tls.TestPki.CreateCa("Init CA");
        using var server = Tls.TestPki.IssueServer(ca);
        var caPath = Path.Combine(directory, "ca.pem");
        await File.WriteAllTextAsync(caPath, Tls.TestPki.Pem(ca));
        await File.WriteAllTextAsync(Path.Combine(directory, "server.pem"), Tls.TestPki.Pem(server));
        await File.WriteAllTextAsync(Path.Combine(directory, "server.key"), Tls.TestPki.KeyPem(server));
        string[] settings =
        [
            "--urls=http://127.0.0.1:18099", $"--Data:Directory={directory}",
            $"--Hsm:ModulePath={hsm.ModulePath}", $"--Hsm:TokenLabel={hsm.TokenLabel}", $"--Hsm:Pin={hsm.Pin}",
            $"--Hsm:SoftHsmConfig={hsm.SoftHsmConfig}", "--Logging:LogLevel:Default=None",
            $"--Tls:Certificate={Path.Combine(directory, "server.pem")}", $"--Tls:Key={Path.Combine(directory, "server.key")}", $"--Tls:ClientCa={caPath}",
        ];

        // When init runs
        using var output = new StringWriter();
        Assert.Equal(0, await ApplianceProgram.RunAsync(["init", .. settings], output, TextWriter.Null));

        // Then its curl lines are https, trust the CA and present a client certificate, and say how to register it
        var text = output.ToString();
        var key = System.Text.RegularExpressions.Regex.Match(text, @"sk_test_\w+").Value;
        var app = System.Text.RegularExpressions.Regex.Match(text, @"Demo application (app_\w+)").Groups[1].Value;
        Assert.Contains($"curl --cacert {caPath} --cert CLIENT.pem --key CLIENT.key -X POST https://127.0.0.1:18099/v1/mfa -H \"Authorization: Bearer {key}\"", text, StringComparison.Ordinal);
        Assert.Contains($"devrift client-certificates add {app} CLIENT.pem", text, StringComparison.Ordinal);
        Assert.Contains("https://localhost:18099/demo", text, StringComparison.Ordinal);
        Directory.Delete(directory, recursive: true);
    }
}
