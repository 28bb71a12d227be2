using DevRift.Hsm.Api.Hosting;
using DevRift.Hsm.Testing;

namespace DevRift.Hsm.Api.Tests.Tls;

/// <summary>TLS settings are checked at start: a bad path or an unreadable PEM stops the process with one line naming it.</summary>
public sealed class TlsConfigurationTests : IAsyncLifetime
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "devrift-tls-config-tests", Guid.NewGuid().ToString("N"));
    private string[] _common = [];

    public async Task InitializeAsync()
    {
        var hsm = SoftHsmTokens.CreateToken();
        Directory.CreateDirectory(_directory);
        _common =
        [
            "--urls=http://127.0.0.1:0", $"--Data:Directory={_directory}",
            $"--Storage:ConnectionString=Data Source={Path.Combine(_directory, "devrift.db")}",
            $"--Hsm:ModulePath={hsm.ModulePath}", $"--Hsm:TokenLabel={hsm.TokenLabel}", $"--Hsm:Pin={hsm.Pin}",
            $"--Hsm:SoftHsmConfig={hsm.SoftHsmConfig}", "--Logging:LogLevel:Default=None",
        ];
        Assert.Equal(0, await ApplianceProgram.RunAsync(["init", .. _common, "--Init:Demo=false"], TextWriter.Null, TextWriter.Null));
        var ca = TestPki.CreateCa("Config CA");
        var server = TestPki.IssueServer(ca);
        var other = TestPki.IssueServer(ca);
        await File.WriteAllTextAsync(Path.Combine(_directory, "server.pem"), TestPki.Pem(server));
        await File.WriteAllTextAsync(Path.Combine(_directory, "server.key"), TestPki.KeyPem(server));
        await File.WriteAllTextAsync(Path.Combine(_directory, "other.key"), TestPki.KeyPem(other));
        await File.WriteAllTextAsync(Path.Combine(_directory, "ca.pem"), TestPki.Pem(ca));
        await File.WriteAllTextAsync(Path.Combine(_directory, "garbage.pem"), "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
        await File.WriteAllTextAsync(Path.Combine(_directory, "notes.txt"), "hello");
    }

    public Task DisposeAsync()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A file still open; the temp folder is cleaned by the OS.
        }

        return Task.CompletedTask;
    }

    [Fact]
    public async Task Missing_and_unreadable_files_stop_start_up_with_one_line_naming_each()
    {
        var output = await ServeAsync(
            $"--Tls:Certificate={Path.Combine(_directory, "missing.pem")}", $"--Tls:Key={Path.Combine(_directory, "server.key")}",
            $"--Tls:ClientCa={Path.Combine(_directory, "garbage.pem")}", "--Tls:RequireClientCertificate=true",
            "--Tls:OperatorCertificateThumbprints:0=abc");

        Assert.Contains($"Tls:Certificate '{Path.Combine(_directory, "missing.pem")}' cannot be read (no such file)", output, StringComparison.Ordinal);
        Assert.Contains($"Tls:ClientCa '{Path.Combine(_directory, "garbage.pem")}' holds a PEM certificate that cannot be read", output, StringComparison.Ordinal);
        Assert.Contains("Tls:OperatorCertificateThumbprints:0 is not a SHA-256 thumbprint", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_key_of_another_certificate_or_a_file_that_is_not_pem_stops_start_up()
    {
        var output = await ServeAsync(
            $"--Tls:Certificate={Path.Combine(_directory, "server.pem")}", $"--Tls:Key={Path.Combine(_directory, "other.key")}",
            $"--Tls:ClientCa={Path.Combine(_directory, "notes.txt")}");

        Assert.Contains($"Tls:Key '{Path.Combine(_directory, "other.key")}' does not match the first certificate of Tls:Certificate", output, StringComparison.Ordinal);
        Assert.Contains($"Tls:ClientCa '{Path.Combine(_directory, "notes.txt")}' is not a PEM file", output, StringComparison.Ordinal);
        Assert.DoesNotContain("PRIVATE KEY", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Settings_that_do_not_fit_together_stop_start_up()
    {
        var output = await ServeAsync($"--Tls:ClientCa={Path.Combine(_directory, "ca.pem")}", "--Tls:RequireClientCertificate=true");

        Assert.Contains("Tls:ClientCa needs HTTPS: set Tls:Certificate and Tls:Key too", output, StringComparison.Ordinal);

        output = await ServeAsync($"--Tls:Certificate={Path.Combine(_directory, "server.pem")}");
        Assert.Contains("Tls:Certificate and Tls:Key go together", output, StringComparison.Ordinal);

        output = await ServeAsync($"--Tls:Certificate={Path.Combine(_directory, "server.pem")}", $"--Tls:Key={Path.Combine(_directory, "server.key")}",
            "--Tls:RequireClientCertificate=true");
        Assert.Contains("Tls:RequireClientCertificate needs Tls:ClientCa", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--Tls:RevocationMode=Sometimes", "Tls:RevocationMode must be NoCheck, Offline or Online")]
    [InlineData("--Tls:RevocationMode=7", "Tls:RevocationMode must be NoCheck, Offline or Online")]
    [InlineData("--Tls:RequireClientCertificate=yes", "Tls:RequireClientCertificate is not a valid Boolean")]
    public async Task Values_that_do_not_convert_stop_start_up(string setting, string expected)
    {
        var output = await ServeAsync($"--Tls:Certificate={Path.Combine(_directory, "server.pem")}", $"--Tls:Key={Path.Combine(_directory, "server.key")}",
            $"--Tls:ClientCa={Path.Combine(_directory, "ca.pem")}", setting);

        Assert.Contains(expected, output, StringComparison.Ordinal);
    }

    /// <summary>Serves with these settings; asserts exit code 2 and one line on standard error, and returns it.</summary>
    private async Task<string> ServeAsync(params string[] settings)
    {
        using var stderr = new StringWriter();
        var exit = await ApplianceProgram.RunAsync(["serve", .. _common, .. settings], TextWriter.Null, stderr).WaitAsync(TimeSpan.FromSeconds(60));
        var output = stderr.ToString().TrimEnd();
        Assert.True(exit == 2, $"exit {exit}: {output}");
        Assert.DoesNotContain('\n', output);
        Assert.StartsWith("devrift: invalid configuration: ", output, StringComparison.Ordinal);
        return output;
    }
}
