using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Factors;
using DevRift.Hsm.Appliance.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace DevRift.Hsm.Appliance.Hsm;

public static class KeyRotationServiceCollectionExtensions
{
    /// <summary>
    /// Key rotation: the operator service, the dependents of each purpose's keys (another kind of data adds its own
    /// <see cref="IKeyDependents"/> singleton), and the background re-wrap of TOTP seeds to the newest KEK.
    /// </summary>
    public static IServiceCollection AddKeyRotation(this IServiceCollection services)
    {
        services.AddSingleton<KeyManagement>();
        foreach (var query in KeyDependentsQuery.Standard)
        {
            services.AddSingleton<IKeyDependents>(sp => new SqlKeyDependents(sp.GetRequiredService<Database>(), sp.GetRequiredService<TimeProvider>(), query));
        }

        services.AddSingleton<IKeyDependents>(sp => new SealedOutboxDependents(sp.GetRequiredService<Database>(), Modes.Live));
        services.AddSingleton<IKeyDependents>(sp => new SealedOutboxDependents(sp.GetRequiredService<Database>(), Modes.Test));
        services.AddSingleton<IKeyDependents>(sp => new SealedEventSecretDependents(sp.GetRequiredService<Database>()));
        services.AddSingleton<SeedRewrapService>();
        services.AddHostedService(sp => sp.GetRequiredService<SeedRewrapService>());
        return services;
    }
}
