using System.Collections.Concurrent;
using Dapper;
using DevRift.Hsm.Appliance.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace DevRift.Hsm.Appliance.Applications;

/// <summary>
/// When each API key was last used and how often, coalesced in memory and written by one UPDATE per key every
/// <see cref="FlushInterval"/> (and at shutdown), so that reads and verifies do not each pay a write and a chained
/// audit record for "this key was used". On several nodes each adds its own count; the latest time wins.
/// </summary>
public sealed partial class ApiKeyUsage(Database db, TimeProvider time, ILogger<ApiKeyUsage> logger) : BackgroundService
{
    /// <summary>How often pending uses are written.</summary>
    public static readonly TimeSpan FlushInterval = TimeSpan.FromSeconds(5);

    private ConcurrentDictionary<string, Counter> _pending = new(StringComparer.Ordinal);

    /// <summary>Counts one authenticated request of <paramref name="keyId"/> now.</summary>
    public void Record(string keyId)
    {
        var counter = _pending.GetOrAdd(keyId, static _ => new Counter());
        Interlocked.Increment(ref counter.Count);
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        long seen;
        while (now > (seen = Volatile.Read(ref counter.LastUsed)) && Interlocked.CompareExchange(ref counter.LastUsed, now, seen) != seen)
        {
            // another request moved it; try again against the newer value
        }
    }

    /// <summary>Writes what has been counted since the last flush.</summary>
    public async Task FlushAsync(CancellationToken ct = default)
    {
        var batch = Interlocked.Exchange(ref _pending, new ConcurrentDictionary<string, Counter>(StringComparer.Ordinal));
        if (batch.IsEmpty)
        {
            return;
        }

        var rows = batch.Select(p => new { id = p.Key, n = Interlocked.Read(ref p.Value.Count), at = Interlocked.Read(ref p.Value.LastUsed) }).ToList();
        try
        {
            await db.InTransactionAsync(async (c, tx) => await c.ExecuteAsync(
                "UPDATE api_keys SET use_count = use_count + @n, last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < @at THEN @at ELSE last_used_at END WHERE id = @id",
                rows, tx), ct);
        }
        catch (StorageUnavailableException e)
        {
            // Keep the counts for the next round rather than lose them.
            foreach (var row in rows)
            {
                var counter = _pending.GetOrAdd(row.id, static _ => new Counter());
                Interlocked.Add(ref counter.Count, row.n);
                InterlockedMax(ref counter.LastUsed, row.at);
            }

            LogFlushFailed(logger, e.Message);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(FlushInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                await FlushAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // stopping: StopAsync writes the rest
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        await FlushAsync(cancellationToken);
    }

    private static void InterlockedMax(ref long target, long value)
    {
        long seen;
        while (value > (seen = Volatile.Read(ref target)) && Interlocked.CompareExchange(ref target, value, seen) != seen)
        {
        }
    }

    [LoggerMessage(EventId = 4101, Level = LogLevel.Warning, Message = "API-key use counts not written yet: {Reason}")]
    private static partial void LogFlushFailed(ILogger logger, string reason);

    private sealed class Counter
    {
        public long Count;
        public long LastUsed;
    }
}
