using Dapper;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DevRift.Hsm.Appliance.Outbox;

/// <summary>
/// The test outbox's end of life: an operator purges one application's test messages at once, and messages older
/// than <see cref="DeliveryOptions.TestMessageRetention"/> are deleted. Both delete the rows (and so their sealed
/// bodies): test data then no longer holds an old seal key, which can be retired.
/// </summary>
public sealed class TestOutbox(Database db, ApplicationStore applications, TimeProvider time)
{
    /// <summary>Deletes every test message of the application; returns how many.</summary>
    public async Task<int> PurgeAsync(string applicationId, CancellationToken ct = default)
    {
        await applications.GetAsync(applicationId, ct);
        return await db.WithConnectionAsync(c => c.ExecuteAsync(
            "DELETE FROM outbox WHERE application_id = @applicationId AND mode = @mode", new { applicationId, mode = Modes.Test }), ct);
    }

    /// <summary>Test messages per application (what a purge would delete).</summary>
    public async Task<long> CountAsync(string applicationId, CancellationToken ct = default) =>
        await db.WithConnectionAsync(c => c.ExecuteScalarAsync<long>(
            "SELECT COUNT(*) FROM outbox WHERE application_id = @applicationId AND mode = @mode", new { applicationId, mode = Modes.Test }), ct);

    /// <summary>Deletes test messages created more than <paramref name="retention"/> ago; returns how many.</summary>
    public Task<int> ExpireAsync(TimeSpan retention, CancellationToken ct = default)
    {
        var before = (time.GetUtcNow() - retention).ToUnixTimeMilliseconds();
        return db.WithConnectionAsync(c => c.ExecuteAsync(
            "DELETE FROM outbox WHERE mode = @mode AND created_at < @before", new { mode = Modes.Test, before }), ct);
    }
}

/// <summary>Runs <see cref="TestOutbox.ExpireAsync"/> every tenth of the retention (at most hourly) on every node.</summary>
public sealed partial class TestOutboxExpiry(TestOutbox outbox, IOptions<DeliveryOptions> options, TimeProvider time, ILogger<TestOutboxExpiry> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var retention = options.Value.TestMessageRetention;
        var interval = TimeSpan.FromTicks(Math.Min(retention.Ticks / 10, TimeSpan.FromHours(1).Ticks));
        using var timer = new PeriodicTimer(interval, time);
        try
        {
            do
            {
                try
                {
                    var deleted = await outbox.ExpireAsync(retention, stoppingToken);
                    if (deleted > 0)
                    {
                        LogExpired(logger, deleted);
                    }
                }
                catch (StorageUnavailableException e)
                {
                    LogFailed(logger, e.Message);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // stopping
        }
    }

    [LoggerMessage(EventId = 4201, Level = LogLevel.Information, Message = "{Count} test messages past their retention deleted")]
    private static partial void LogExpired(ILogger logger, int count);

    [LoggerMessage(EventId = 4202, Level = LogLevel.Warning, Message = "Test messages not expired this round: {Reason}")]
    private static partial void LogFailed(ILogger logger, string reason);
}
