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

    /// <summary>Counter: sources refused for a while after failed checks (lockout_profile source_aware); not user lockouts.</summary>
    public const string SourceBlocks = "devrift.lockout_source_blocks";

    private readonly Counter<long> _lockouts;
    private readonly Counter<long> _sourceBlocks;

    public ApplianceMetrics(IMeterFactory meters)
    {
        ArgumentNullException.ThrowIfNull(meters);
        var meter = meters.Create(MeterName);
        _lockouts = meter.CreateCounter<long>(Lockouts, description: "User lockouts that engaged after failed checks.");
        _sourceBlocks = meter.CreateCounter<long>(SourceBlocks, description: "Sources refused for a while after failed checks from them.");
    }

    public void LockoutEngaged() => _lockouts.Add(1);

    public void SourceBlocked() => _sourceBlocks.Add(1);
}
