using System.Data.Common;
using System.Globalization;
using DevRift.Hsm.Api.Cli;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Crypto;
using Microsoft.Extensions.Options;

namespace DevRift.Hsm.Api.Hosting;

/// <summary>
/// The executable's entry: <c>serve</c> (default) runs the host; <c>init</c> and the operator commands run once
/// and exit; <c>--help</c>, <c>-h</c>, <c>help</c> and <c>--version</c> print and exit 0 without starting anything.
/// The leading words are the command (parsed by <see cref="CommandTree"/>); every <c>--Section:Key=value</c> after
/// them is configuration, checked by <see cref="ConfigurationCheck"/>. A usage error ends with one line and exit code
/// 1; a bad configuration or any other start-up failure with one line on standard error and exit code 2.
/// </summary>
public static class ApplianceProgram
{
    public const int StartupFailed = 2;

    private static readonly string[] s_helpAndVersion = ["--help", "-h", "-?", "--version"];

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        // Culture-specific formatting is asked for where it is meant (a payment's amount in the message's locale);
        // everything else formats as it did under invariant globalization, whatever the machine's locale.
        CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
        CultureInfo.DefaultThreadCurrentUICulture = CultureInfo.InvariantCulture;
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        CultureInfo.CurrentUICulture = CultureInfo.InvariantCulture;
        var leading = args.TakeWhile(a => !a.StartsWith('-')).ToList();
        var rest = args.Skip(leading.Count).ToList();
        var configuration = rest.Where(a => !s_helpAndVersion.Contains(a, StringComparer.Ordinal)).ToArray();
        var parsed = CommandTree.Parse([.. leading, .. rest.Where(a => s_helpAndVersion.Contains(a, StringComparer.Ordinal))], stdout, stderr);
        if (parsed.Words is not { } words)
        {
            return parsed.ExitCode;
        }

        try
        {
            if (words is ["serve"])
            {
                await using var app = ApplianceHost.Build(configuration);
                ApplianceHost.CheckDependencies(app.Services);
                ListenCheck.Check(app);
                await app.RunAsync();
                return 0;
            }

            await using var host = ApplianceHost.Build(configuration);
            ApplianceHost.CheckStorage(host.Services);
            return await OperatorCommands.RunAsync(host.Services, host.Configuration, words, stdout, stderr);
        }
        catch (Exception e) when (StartupProblem(e) is { } line)
        {
            await stderr.WriteLineAsync($"devrift: {line}");
            return StartupFailed;
        }
    }

    /// <summary>The one line for a failure before (or while) the host starts; null for a bug, which keeps its trace.</summary>
    private static string? StartupProblem(Exception e) => e switch
    {
        ConfigurationKeyException => $"invalid configuration: {e.Message}",
        HsmConfigurationException or StorageConfigurationException or ListenException => e.Message,
        OptionsValidationException o => $"invalid configuration: {string.Join("; ", o.Failures)}",
        StorageUnavailableException => e.InnerException is { } cause ? $"{e.Message}: {OneLine(cause.Message)}" : e.Message,
        DbException => $"the database cannot be opened: {OneLine(e.Message)}",
        UnauthorizedAccessException => $"permission denied: {OneLine(e.Message)}",
        IOException when e.InnerException is System.Net.Sockets.SocketException
            || e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase) => $"cannot listen: {OneLine(e.Message)}",
        IOException => $"cannot start: {OneLine(e.Message)}",
        _ => null,
    };

    private static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();
}
