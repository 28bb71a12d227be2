using System.Text.Json;
using DevRift.Hsm.Api.Cli;
using DevRift.Hsm.Api.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace DevRift.Hsm.Api.Tests.Rotation;

/// <summary><c>hsm status | rotate | retire</c> on the command line: the same service and answers as the operator API.</summary>
public sealed class HsmCommandTests
{
    [Fact]
    public async Task Hsm_commands_show_rotate_and_retire_keys()
    {
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite, fakeClock: true);

        // hsm status: five v1 keys, each current
        var (exit, status, _) = await RunAsync(server, "hsm", "status");
        Assert.Equal(0, exit);
        using (var doc = JsonDocument.Parse(status))
        {
            Assert.Equal("hsm", doc.RootElement.GetProperty("object").GetString());
            Assert.Equal(5, doc.RootElement.GetProperty("keys").GetArrayLength());
            Assert.Equal(1, doc.RootElement.Key("lookup", 1)!.Value.GetProperty("dependents").GetProperty("operator_tokens").GetInt64());
        }

        // hsm rotate code: v2, current; the token holds it
        (exit, var rotated, _) = await RunAsync(server, "hsm", "rotate", "code");
        Assert.Equal(0, exit);
        using (var doc = JsonDocument.Parse(rotated))
        {
            Assert.Equal("devrift.code.v2", doc.RootElement.GetProperty("label").GetString());
            Assert.True(doc.RootElement.GetProperty("current").GetBoolean());
        }

        Assert.Contains("devrift.code.v2", (await server.TokenKeysAsync()).Keys);

        // hsm retire code 1: no pending challenge needs it, so it goes
        (exit, var retired, _) = await RunAsync(server, "hsm", "retire", "code", "1");
        Assert.Equal(0, exit);
        Assert.True(JsonDocument.Parse(retired).RootElement.GetProperty("retired").GetBoolean());
        Assert.DoesNotContain("devrift.code.v1", (await server.TokenKeysAsync()).Keys);

        // Bad input: exit 1 with the problem code, nothing changed
        (exit, _, var error) = await RunAsync(server, "hsm", "rotate", "master");
        Assert.Equal(1, exit);
        Assert.Contains("invalid_request", error, StringComparison.Ordinal);
        (exit, _, error) = await RunAsync(server, "hsm", "retire", "code", "2");
        Assert.Equal(1, exit);
        Assert.Contains("key_in_use", error, StringComparison.Ordinal);
        (exit, _, error) = await RunAsync(server, "hsm", "retire", "code", "x");
        Assert.Equal(1, exit);
        Assert.Contains("invalid_request", error, StringComparison.Ordinal);
        Assert.Equal(5, (await server.TokenKeysAsync()).Count);
    }

    private static async Task<(int Exit, string Stdout, string Stderr)> RunAsync(ApplianceServer server, params string[] words)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await OperatorCommands.RunAsync(server.Services, server.Services.GetRequiredService<IConfiguration>(), words, stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }
}
