using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace DevRift.Hsm.Appliance.Audit;

/// <summary>
/// Chains pending audit records in the background: woken by every append on this node, and every
/// <see cref="PollInterval"/> for records other nodes (or short-lived commands such as <c>init</c>) wrote. After a wake
/// it waits <see cref="Coalesce"/> so that the request that woke it has committed and its neighbours join the batch.
/// While the HSM or the database cannot serve (or the log's tables are damaged), it retries with a growing pause; the
/// records wait durably.
/// Stopping chains what is pending.
/// </summary>
public sealed class AuditChainer(AuditLog audit, ILogger<AuditChainer> logger) : BackgroundService
{
    public static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(500);
    public static readonly TimeSpan Coalesce = TimeSpan.FromMilliseconds(2);
    private static readonly TimeSpan s_maxPause = TimeSpan.FromSeconds(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var pause = TimeSpan.Zero;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (pause > TimeSpan.Zero)
                {
                    await Task.Delay(pause, stoppingToken);
                }

                if (await audit.WaitForAppendAsync(PollInterval, stoppingToken))
                {
                    await Task.Delay(Coalesce, stoppingToken);
                }

                await audit.ChainPendingAsync(stoppingToken);
                pause = TimeSpan.Zero;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // An outage (HSM, database) or a damaged table: the records wait durably; this loop must not stop the host.
                AuditLog.LogChainFailed(logger, e.Message);
                pause = pause == TimeSpan.Zero ? TimeSpan.FromMilliseconds(100) : TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, s_maxPause.Ticks));
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        try
        {
            await audit.ChainPendingAsync(cancellationToken);
        }
        catch (Exception e)
        {
            // They stay pending: the next node or start chains them.
            AuditLog.LogChainFailed(logger, e.Message);
        }
    }
}
