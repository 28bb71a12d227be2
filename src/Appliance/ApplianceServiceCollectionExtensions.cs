using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Audit;
using DevRift.Hsm.Appliance.Backup;
using DevRift.Hsm.Appliance.Challenges;
using DevRift.Hsm.Appliance.Events;
using DevRift.Hsm.Appliance.Factors;
using DevRift.Hsm.Appliance.Hsm;
using DevRift.Hsm.Appliance.Outbox;
using DevRift.Hsm.Appliance.SecurityKeys;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Appliance.Users;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace DevRift.Hsm.Appliance;

public static class ApplianceServiceCollectionExtensions
{
    /// <summary>Everything the MFA domain needs: the HSM layer, storage, and the feature services.</summary>
    public static IServiceCollection AddAppliance(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddMetrics(); // the IMeterFactory of ApplianceMetrics (idempotent: the host adds it too)
        services.AddHsm();
        services.AddOptions<StorageOptions>().BindConfiguration(StorageOptions.Section).ValidateDataAnnotations();
        services.AddSingleton<Database>();
        services.AddSingleton<AuditLog>();
        services.AddSingleton<AuditChainer>();
        services.AddHostedService(sp => sp.GetRequiredService<AuditChainer>());
        services.AddOptions<EventOptions>().BindConfiguration(EventOptions.Section).ValidateOnStart();
        services.AddSingleton<Microsoft.Extensions.Options.IValidateOptions<EventOptions>, EventOptionsValidator>();
        services.AddSingleton<EventOutbox>();
        services.AddSingleton<EventEndpoints>();
        services.AddSingleton<ApplicationStore>();
        services.AddSingleton<ApiKeys>();
        services.AddSingleton<ApiKeyUsage>();
        services.AddHostedService(sp => sp.GetRequiredService<ApiKeyUsage>());
        services.AddSingleton<ClientCertificates>();
        services.AddSingleton<OperatorTokens>();
        services.AddSingleton<OutboxStore>();
        services.AddSingleton<OutboxDepth>();
        services.AddSingleton<TestOutbox>();
        services.AddSingleton<DeliveryOverview>();
        services.AddSingleton<DeliveryRouting>();
        services.AddSingleton<Fraud.FraudGuard>();
        services.AddSingleton<ChallengeService>();
        services.AddSingleton<ApplianceMetrics>();
        services.AddSingleton<Identities>();
        services.AddSingleton<Lockouts>();
        services.AddSingleton<TotpFactors>();
        services.AddSingleton<Verify.VerificationPipeline>();
        services.AddSingleton<BackupCodes>();
        services.AddSingleton<SecurityKeyService>();
        services.AddSingleton<ApplianceInitializer>();
        services.AddKeyRotation();
        return services;
    }
}
