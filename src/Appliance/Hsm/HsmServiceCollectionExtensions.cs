using DevRift.Hsm.Crypto;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DevRift.Hsm.Appliance.Hsm;

/// <summary>Registers the PKCS#11 layer: one connection for the process and the services built on it.</summary>
public static class HsmServiceCollectionExtensions
{
    public static IServiceCollection AddHsm(this IServiceCollection services)
    {
        services.AddOptions<HsmOptions>().BindConfiguration(HsmOptions.Section).ValidateDataAnnotations();
        services.AddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<HsmOptions>>().Value;
            var logger = sp.GetRequiredService<ILoggerFactory>().CreateLogger("DevRift.Hsm");
            var hsm = HsmConnection.Open(options, sp.GetRequiredService<TimeProvider>());
            hsm.StateChanged += (_, e) => HsmLog.StateChanged(logger, e.Available, e.Reason);
            return hsm;
        });
        services.AddSingleton<HsmMac>();
        services.AddSingleton<HsmRandom>();
        services.AddSingleton<SeedVault>();
        services.AddSingleton<TotpVerifier>();
        services.AddSingleton<OobCodes>();
        services.AddSingleton<LookupVerifiers>();
        services.AddSingleton<Sealer>();
        return services;
    }

    /// <summary>Fills Hsm:* defaults for the embedded SoftHSM2 token under the data directory.</summary>
    public static void AddEmbeddedHsmDefaults(this IConfigurationManager configuration, string dataDirectory)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var softhsm = Path.Combine(dataDirectory, "softhsm");
        var defaults = new Dictionary<string, string?>();
        if (string.IsNullOrEmpty(configuration["Hsm:SoftHsmConfig"]) && string.IsNullOrEmpty(configuration["Hsm:ModulePath"])
            && File.Exists(Path.Combine(softhsm, "softhsm2.conf")))
        {
            defaults["Hsm:SoftHsmConfig"] = Path.Combine(softhsm, "softhsm2.conf");
        }

        if (string.IsNullOrEmpty(configuration["Hsm:Pin"]) && string.IsNullOrEmpty(configuration["Hsm:PinFile"]))
        {
            defaults["Hsm:PinFile"] = Path.Combine(softhsm, "user.pin");
        }

        // Defaults go first so that every real source (appsettings, environment, command line) wins.
        var sources = configuration.Sources.ToList();
        configuration.Sources.Clear();
        configuration.AddInMemoryCollection(defaults);
        foreach (var source in sources)
        {
            configuration.Sources.Add(source);
        }
    }
}

internal static partial class HsmLog
{
    [LoggerMessage(EventId = 1001, Level = LogLevel.Warning, Message = "HSM available={Available} ({Reason})")]
    public static partial void StateChanged(ILogger logger, bool available, string reason);
}
