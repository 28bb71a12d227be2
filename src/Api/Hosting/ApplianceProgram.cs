using DevRift.Hsm.Api.Cli;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Crypto;
using Microsoft.Extensions.Options;

namespace DevRift.Hsm.Api.Hosting;

/// <summary>
/// The executable's entry: <c>serve</c> (default) runs the host; <c>init</c> and the operator commands run once
/// and exit. Every <c>--Section:Key=value</c> argument is configuration. A bad configuration ends with one line on
/// standard error and exit code 2.
/// </summary>
public static class ApplianceProgram
{
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        var words = args.TakeWhile(a => !a.StartsWith('-')).ToArray();
        var configuration = args.Skip(words.Length).ToArray();
        var command = words.Length > 0 ? words[0] : "serve";
        try
        {
            if (command == "serve")
            {
                await using var app = ApplianceHost.Build(configuration);
                ApplianceHost.CheckDependencies(app.Services);
                await app.RunAsync();
                return 0;
            }

            await using var host = ApplianceHost.Build(configuration);
            return await OperatorCommands.RunAsync(host.Services, host.Configuration, words, stdout, stderr);
        }
        catch (HsmConfigurationException e)
        {
            await stderr.WriteLineAsync($"devrift: {e.Message}");
            return 2;
        }
        catch (StorageConfigurationException e)
        {
            await stderr.WriteLineAsync($"devrift: {e.Message}");
            return 2;
        }
        catch (OptionsValidationException e)
        {
            await stderr.WriteLineAsync($"devrift: invalid configuration: {string.Join("; ", e.Failures)}");
            return 2;
        }
        catch (IOException e) when (e.InnerException is System.Net.Sockets.SocketException || e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
        {
            await stderr.WriteLineAsync($"devrift: cannot listen: {e.Message}");
            return 2;
        }
    }
}
