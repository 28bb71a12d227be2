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

    /// <summary>Counter: phone sends the fraud guard refused or (shadow mode) would have refused, by reason and decision.</summary>
    public const string FraudGuard = "devrift.fraud_guard";

    /// <summary>Counter: sources refused for a while after failed checks (lockout_profile source_aware); not user lockouts.</summary>
    public const string SourceBlocks = "devrift.lockout_source_blocks";

    /// <summary>Counter: event delivery attempts by <c>outcome</c> (delivered, retried, failed).</summary>
    public const string Events = "devrift.events";

    private readonly Counter<long> _lockouts;
    private readonly Counter<long> _fraudGuard;
    private readonly Counter<long> _sourceBlocks;
    private readonly Counter<long> _events;

    public ApplianceMetrics(IMeterFactory meters)
    {
        ArgumentNullException.ThrowIfNull(meters);
        var meter = meters.Create(MeterName);
        _lockouts = meter.CreateCounter<long>(Lockouts, description: "User lockouts that engaged after failed checks.");
        _fraudGuard = meter.CreateCounter<long>(FraudGuard, description: "Phone sends the fraud guard blocked or would have blocked, by reason and decision.");
        _sourceBlocks = meter.CreateCounter<long>(SourceBlocks, description: "Sources refused for a while after failed checks from them.");
        _events = meter.CreateCounter<long>(Events, description: "Event delivery attempts to application endpoints, by outcome.");
    }

    public void LockoutEngaged() => _lockouts.Add(1);

    /// <param name="reason">country, range or velocity.</param>
    /// <param name="decision">blocked or would_block.</param>
    public void FraudGuardDecision(string reason, string decision) => _fraudGuard.Add(1,
        new KeyValuePair<string, object?>("reason", reason), new KeyValuePair<string, object?>("decision", decision));

    public void SourceBlocked() => _sourceBlocks.Add(1);

    public void EventOutcome(string outcome) => _events.Add(1, new KeyValuePair<string, object?>("outcome", outcome));
}
