using DevRift.Hsm.Appliance.Outbox;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

// Beside AddAppliance, so that the host needs no further using directive.
namespace DevRift.Hsm.Appliance;

public static class DeliveryServiceCollectionExtensions
{
    /// <summary>Name of the HTTP client the Twilio and webhook providers share (no redirects, no request logging).</summary>
    public const string HttpClientName = "devrift.delivery";

    /// <summary>
    /// Real delivery: the SMTP, Twilio-compatible and webhook providers with their options (validated at start),
    /// and the outbox dispatcher as a hosted service. Call after <c>AddAppliance()</c>.
    /// </summary>
    public static IServiceCollection AddDelivery(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        BindSafely<DeliveryOptions>(services, DeliveryOptions.Section);
        BindSafely<SmtpOptions>(services, SmtpOptions.Section);
        BindSafely<TwilioOptions>(services, TwilioOptions.Section);
        BindSafely<WebhookOptions>(services, WebhookOptions.Section);

        // Everything is checked at start as one options type, so that all problems come out in one line.
        services.AddOptions<DeliveryOptions>().ValidateOnStart();
        services.AddSingleton<IValidateOptions<DeliveryOptions>, DeliveryOptionsValidator>();

        services.AddHttpClient(HttpClientName, client => client.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler
            {
                AllowAutoRedirect = false,
                PooledConnectionLifetime = TimeSpan.FromMinutes(5),
                ConnectTimeout = TimeSpan.FromSeconds(10),
            })
            .RemoveAllLoggers();

        // Providers first, so that a deployment's own registration of the same name (added later) wins the route.
        services.AddSingleton<SmtpProvider>();
        services.AddSingleton<TwilioProvider>();
        services.AddSingleton<WebhookProvider>();
        services.Insert(0, ServiceDescriptor.Singleton<IDeliveryProvider>(sp => sp.GetRequiredService<WebhookProvider>()));
        services.Insert(0, ServiceDescriptor.Singleton<IDeliveryProvider>(sp => sp.GetRequiredService<TwilioProvider>()));
        services.Insert(0, ServiceDescriptor.Singleton<IDeliveryProvider>(sp => sp.GetRequiredService<SmtpProvider>()));

        services.AddSingleton<OutboxDispatcher>();
        services.AddHostedService<OutboxDispatcherService>();
        services.AddSingleton<Events.EventDispatcher>();
        services.AddHostedService<Events.EventDispatcherService>();
        services.AddHostedService<TestOutboxExpiry>();
        return services;
    }

    private static void BindSafely<T>(IServiceCollection services, string section)
        where T : class, IBoundOptions =>
        services.AddOptions<T>().Configure<IConfiguration>((options, configuration) =>
        {
            try
            {
                configuration.GetSection(section).Bind(options);
            }
            catch (InvalidOperationException e)
            {
                // The binder's message quotes the value: keep only the key and the type.
                var match = System.Text.RegularExpressions.Regex.Match(e.Message, "at '([^']+)' to type '([^']+)'");
                options.BindError = match.Success
                    ? $"{match.Groups[1].Value} is not a valid {match.Groups[2].Value.Replace("System.", "", StringComparison.Ordinal)}"
                    : $"{section} cannot be read";

                // Binding stops at the first bad value: the routes still get checked.
                if (options is DeliveryOptions delivery)
                {
                    configuration.GetSection(section).GetSection("Routes").Bind(delivery.Routes);
                }
            }
        });
}
