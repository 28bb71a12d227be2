using DevRift.Hsm.Crypto;
using Microsoft.Extensions.Options;

namespace DevRift.Hsm.Api.Hosting;

/// <summary>
/// The executable's entry: <c>serve</c> (default) runs the host; <c>init</c> creates the HSM keys. Every other
/// argument is configuration (<c>--Section:Key=value</c>, <c>--urls</c>). A bad configuration ends with one line
/// on standard error and exit code 2.
/// </summary>
public static class ApplianceProgram
{
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        var command = args.Length > 0 && !args[0].StartsWith('-') ? args[0] : "serve";
        var rest = args.Length > 0 && !args[0].StartsWith('-') ? args[1..] : args;
        try
        {
            switch (command)
            {
                case "serve":
                    {
                        await using var app = ApplianceHost.Build(rest);
                        ApplianceHost.CheckDependencies(app.Services);
                        await app.RunAsync();
                        return 0;
                    }

                case "init":
                    {
                        await using var app = ApplianceHost.Build(rest);
                        var hsm = app.Services.GetRequiredService<HsmConnection>();
                        var created = hsm.InitializeKeys();
                        await stdout.WriteLineAsync(created.Count == 0
                            ? $"hsm: token '{hsm.TokenLabel}' already has its keys"
                            : $"hsm: created {string.Join(", ", created)} on token '{hsm.TokenLabel}'");
                        return 0;
                    }

                default:
                    await stderr.WriteLineAsync($"devrift: unknown command '{command}' (commands: serve, init)");
                    return 2;
            }
        }
        catch (HsmConfigurationException e)
        {
            await stderr.WriteLineAsync($"devrift: {e.Message}");
            return 2;
        }
        catch (OptionsValidationException e)
        {
            await stderr.WriteLineAsync($"devrift: invalid configuration: {string.Join("; ", e.Failures)}");
            return 2;
        }
    }
}
