using Microsoft.Extensions.Configuration;

namespace DevRift.Hsm.Appliance.Outbox;

/// <summary>
/// Which delivery provider serves which channel in live mode. A channel is routed only when its provider is
/// configured; test mode never reaches a provider.
/// </summary>
public sealed class DeliveryRouting
{
    /// <summary>Channels and the provider that serves each when no route is configured.</summary>
    public static readonly IReadOnlyList<(string Channel, string Provider)> Defaults =
        [("EMAIL", "smtp"), ("SMS", "twilio"), ("WHATSAPP", "twilio"), ("CALL", "twilio")];

    private readonly Dictionary<string, IDeliveryProvider> _routes;

    public DeliveryRouting(IConfiguration configuration, IEnumerable<IDeliveryProvider> providers)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(providers);

        // The last configured registration of a name wins, so a deployment (or a test) can replace a provider.
        var configured = new Dictionary<string, IDeliveryProvider>(StringComparer.OrdinalIgnoreCase);
        foreach (var provider in providers.Where(p => p.IsConfigured))
        {
            configured[provider.Name] = provider;
        }

        _routes = new Dictionary<string, IDeliveryProvider>(StringComparer.Ordinal);
        foreach (var (channel, fallback) in Defaults)
        {
            var name = configuration[$"Delivery:Routes:{channel}"] is { Length: > 0 } n ? n.Trim() : fallback;
            if (configured.TryGetValue(name, out var provider) && provider.Supports(channel))
            {
                _routes[channel] = provider;
            }
        }
    }

    /// <summary>True when a live message on <paramref name="channel"/> has a provider to go to.</summary>
    public bool IsConfigured(string channel) => _routes.ContainsKey(channel);

    /// <summary>The provider name for a channel, or null.</summary>
    public string? ProviderFor(string channel) => _routes.GetValueOrDefault(channel)?.Name;

    /// <summary>The provider that delivers <paramref name="channel"/>, or null when none is configured.</summary>
    public IDeliveryProvider? Provider(string channel) => _routes.GetValueOrDefault(channel);
}

/// <summary>A way out of the appliance for messages (SMTP, a Twilio-compatible API, a signed webhook).</summary>
public interface IDeliveryProvider
{
    /// <summary>Name used in <c>Delivery:Routes:&lt;CHANNEL&gt;</c>.</summary>
    string Name { get; }

    /// <summary>True when its settings are present.</summary>
    bool IsConfigured { get; }

    bool Supports(string channel);

    /// <summary>Delivers one message; throws <see cref="DeliveryException"/> on failure.</summary>
    Task DeliverAsync(OutgoingMessage message, CancellationToken cancellationToken);
}

/// <summary>One message to deliver (opened from the outbox just before delivery).</summary>
public sealed record OutgoingMessage(string Id, string Channel, string To, string? Subject, string Body, string Locale, DateTimeOffset CreatedAt);

/// <summary>A provider's refusal: <see cref="Permanent"/> ones (invalid number) are not retried.</summary>
public sealed class DeliveryException(string reason, bool permanent, Exception? inner = null) : Exception(reason, inner)
{
    public bool Permanent { get; } = permanent;
}
