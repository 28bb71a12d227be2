using System.Threading.RateLimiting;

namespace DevRift.Hsm.Api.Audit;

/// <summary>
/// How many refused keys and tokens a node records per second. Refusals come from anyone, unauthenticated: past the
/// budget they are only counted, and the next record that is written carries the number left out
/// (<c>detail.suppressed</c>), so a flood shows in the log without growing it without limit.
/// </summary>
public sealed class RefusalAuditBudget : IDisposable
{
    /// <summary>Records per second (and burst).</summary>
    public const int PerSecond = 50;

    private readonly TokenBucketRateLimiter _limiter = new(new TokenBucketRateLimiterOptions
    {
        TokenLimit = PerSecond,
        TokensPerPeriod = PerSecond,
        ReplenishmentPeriod = TimeSpan.FromSeconds(1),
        QueueLimit = 0,
        AutoReplenishment = true,
    });

    private long _suppressed;

    /// <summary>True when this refusal may be recorded; <paramref name="suppressedBefore"/> is how many were not.</summary>
    public bool TryTake(out long suppressedBefore)
    {
        using var lease = _limiter.AttemptAcquire();
        if (!lease.IsAcquired)
        {
            Interlocked.Increment(ref _suppressed);
            suppressedBefore = 0;
            return false;
        }

        suppressedBefore = Interlocked.Exchange(ref _suppressed, 0);
        return true;
    }

    public void Dispose() => _limiter.Dispose();
}
