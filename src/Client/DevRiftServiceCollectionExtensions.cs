using DevRift.Client;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers <see cref="DevRiftClient"/> on IHttpClientFactory.</summary>
public static class DevRiftServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="DevRiftClient"/> as a typed client of IHttpClientFactory, with its primary handler built
    /// from the options (client certificate, server-certificate check). Inject <see cref="DevRiftClient"/>.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets address, key and the rest.</param>
    /// <returns>The HTTP client builder, to add handlers of your own.</returns>
    public static IHttpClientBuilder AddDevRiftClient(this IServiceCollection services, Action<DevRiftClientOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<DevRiftClientOptions>().Configure(configure);
        var builder = services.AddHttpClient(nameof(DevRiftClient));
        builder.AddTypedClient((http, sp) =>
        {
            http.Timeout = Timeout.InfiniteTimeSpan;
            return new DevRiftClient(http, sp.GetRequiredService<IOptions<DevRiftClientOptions>>().Value);
        });
        return builder.ConfigurePrimaryHttpMessageHandler(sp => DevRiftClient.CreateHandler(sp.GetRequiredService<IOptions<DevRiftClientOptions>>().Value));
    }
}
