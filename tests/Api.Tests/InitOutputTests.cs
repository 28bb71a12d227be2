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

        // And the second run creates nothing and shows no secret
        Assert.Equal("hsm: the token already has its keys", second.ToString().Trim());
        Directory.Delete(directory, recursive: true);
    }
}
