using System.Diagnostics.Metrics;

namespace DevRift.Hsm.Appliance;

/// <summary>
/// The MFA domain's instruments (System.Diagnostics.Metrics), made by the host's <see cref="IMeterFactory"/> so that
/// each host (and each test server in one process) counts on its own. No tag ever carries a user, key or code.
/// </summary>
public sealed class ApplianceMetrics
{
    public const string MeterName = "DevRift.Hsm.Appliance";

    /// <summary>Counter: lockouts that engaged (a timed lock began, or a hard lock).</summary>
    public const string Lockouts = "devrift.lockouts";

    /// <summary>Counter: event delivery attempts by <c>outcome</c> (delivered, retried, failed).</summary>
    public const string Events = "devrift.events";

    private readonly Counter<long> _lockouts;
    private readonly Counter<long> _events;

    public ApplianceMetrics(IMeterFactory meters)
    {
        ArgumentNullException.ThrowIfNull(meters);
        var meter = meters.Create(MeterName);
        _lockouts = meter.CreateCounter<long>(Lockouts, description: "Lockouts that engaged after consecutive failed checks.");
        _events = meter.CreateCounter<long>(Events, description: "Event delivery attempts to application endpoints, by outcome.");
    }

    public void LockoutEngaged() => _lockouts.Add(1);

    public void EventOutcome(string outcome) => _events.Add(1, new KeyValuePair<string, object?>("outcome", outcome));
}
