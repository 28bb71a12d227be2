using System.Security.Cryptography;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Crypto;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DevRift.Hsm.Appliance.Outbox;

/// <summary>
/// Delivers the durable outbox: closes what must not go out any more (expired, challenge no longer pending), claims
/// due live messages with a lease, opens each sealed body in the HSM just before handing it to the channel's
/// provider, and records the outcome — <c>sent</c> (body deleted), <c>failed</c> with a reason (permanent refusal;
/// body deleted), or back to <c>queued</c> for a retry with exponential backoff and jitter until the message expires.
/// Several nodes may run it on one database: each row has one claimant at a time; a node that dies releases its rows
/// when their lease ends. Delivery is at least once: a crash between "provider accepted" and "recorded" re-sends.
/// Logs name outbox ids, channels and providers only — never a body, a code or a destination.
/// </summary>
public sealed partial class OutboxDispatcher
{
    private readonly OutboxStore _store;
    private readonly DeliveryRouting _routing;
    private readonly DeliveryOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public OutboxDispatcher(OutboxStore store, DeliveryRouting routing, IOptions<DeliveryOptions> options, TimeProvider time, ILogger<OutboxDispatcher> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _store = store;
        _routing = routing;
        _options = options.Value;
        _time = time;
        _logger = logger;
        NodeId = options.Value.NodeId is { Length: > 0 } node
            ? node
            : $"{Environment.MachineName}/{Environment.ProcessId}/{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
    }

    /// <summary>This node's name in <c>outbox.claimed_by</c>.</summary>
    public string NodeId { get; }

    /// <summary>
    /// One round: sweep, claim up to a batch, deliver the batch in parallel. Returns how many messages were claimed
    /// (a full batch means more may be due at once). <paramref name="stopping"/> cancels in-flight deliveries, whose
    /// claims are then given back.
    /// </summary>
    public async Task<int> RunOnceAsync(CancellationToken stopping)
    {
        var now = _time.GetUtcNow();
        var closed = await _store.SweepAsync(now, stopping);
        if (closed > 0)
        {
            LogClosed(_logger, closed);
        }

        var claimed = await _store.ClaimAsync(NodeId, _options.BatchSize, now, _options.LeaseDuration, stopping);
        if (claimed.Count > 0)
        {
            await Task.WhenAll(claimed.Select(m => DeliverOneAsync(m, stopping)));
        }

        return claimed.Count;
    }

    /// <summary>Delay before the attempt after attempt number <paramref name="attempts"/>: doubled each time, capped, with jitter in [½, 1].</summary>
    public static TimeSpan Backoff(int attempts, TimeSpan initial, TimeSpan max)
    {
        var exponent = Math.Clamp(attempts - 1, 0, 30);
        var ceiling = Math.Min(initial.TotalMilliseconds * Math.Pow(2, exponent), max.TotalMilliseconds);
        var jitter = 0.5 + (RandomNumberGenerator.GetInt32(0, 1_000_001) / 2_000_000.0);
        return TimeSpan.FromMilliseconds(ceiling * jitter);
    }

    private async Task DeliverOneAsync(ClaimedMessage claimed, CancellationToken stopping)
    {
        var provider = _routing.Provider(claimed.Channel);
        try
        {
            if (provider is null)
            {
                throw new DeliveryException($"no delivery provider is configured for {claimed.Channel}", permanent: false);
            }

            var message = Open(claimed);
            using var timeout = new CancellationTokenSource(_options.SendTimeout, _time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(stopping, timeout.Token);
            try
            {
                await provider.DeliverAsync(message, linked.Token);
            }
            catch (OperationCanceledException e) when (timeout.IsCancellationRequested && !stopping.IsCancellationRequested)
            {
                throw new DeliveryException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"the provider did not answer within {_options.SendTimeout.TotalSeconds:0.#} s"), permanent: false, e);
            }
            catch (Exception e) when (e is not (DeliveryException or OperationCanceledException))
            {
                // A provider bug or an unforeseen library error: retried like any transient failure, type name only.
                throw new DeliveryException($"the {provider.Name} provider failed unexpectedly ({e.GetType().Name})", permanent: false, e);
            }

            await _store.MarkSentAsync(claimed, _time.GetUtcNow(), CancellationToken.None);
            LogSent(_logger, claimed.Id, claimed.Channel, provider.Name, claimed.Attempts);
        }
        catch (DeliveryException e) when (e.Permanent)
        {
            await _store.MarkFailedAsync(claimed, e.Message, _time.GetUtcNow(), CancellationToken.None);
            LogFailed(_logger, claimed.Id, claimed.Channel, provider?.Name ?? "-", e.Message);
        }
        catch (DeliveryException e)
        {
            var now = _time.GetUtcNow();
            var next = now + Backoff(claimed.Attempts, _options.RetryInitialDelay, _options.RetryMaxDelay);
            await _store.RetryLaterAsync(claimed, NodeId, e.Message, next, now, CancellationToken.None);
            LogRetry(_logger, claimed.Id, claimed.Channel, provider?.Name ?? "-", claimed.Attempts, e.Message,
                next < claimed.ExpiresAt ? next : claimed.ExpiresAt);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // The node is stopping: give the message back so that the next node need not wait for the lease.
            await _store.ReleaseAsync(claimed, NodeId, _time.GetUtcNow(), CancellationToken.None);
        }
    }

    private OutgoingMessage Open(ClaimedMessage claimed)
    {
        if (claimed.SealedBody is null)
        {
            throw new DeliveryException("the message body is gone", permanent: true);
        }

        try
        {
            var rendered = _store.Open(claimed.Id, claimed.SealedBody);
            return new OutgoingMessage(claimed.Id, claimed.Channel, claimed.Destination, rendered.Subject, rendered.Body, claimed.Locale, claimed.CreatedAt);
        }
        catch (HsmUnavailableException e)
        {
            throw new DeliveryException("the HSM is unavailable", permanent: false, e);
        }
        catch (HsmDataException e)
        {
            throw new DeliveryException("the sealed message cannot be opened (wrong row, tampered, or its seal key is gone)", permanent: true, e);
        }
    }

    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Outbox {OutboxId}: {Channel} sent via {Provider} (attempt {Attempt})")]
    private static partial void LogSent(ILogger logger, string outboxId, string channel, string provider, int attempt);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "Outbox {OutboxId}: {Channel} via {Provider} attempt {Attempt} failed: {Reason}; next attempt at {NextAttempt:o}")]
    private static partial void LogRetry(ILogger logger, string outboxId, string channel, string provider, int attempt, string reason, DateTimeOffset nextAttempt);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Warning, Message = "Outbox {OutboxId}: {Channel} via {Provider} failed for good: {Reason}")]
    private static partial void LogFailed(ILogger logger, string outboxId, string channel, string provider, string reason);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Information, Message = "Outbox: closed {Count} message(s) that expired or whose challenge is no longer pending")]
    private static partial void LogClosed(ILogger logger, int count);
}

/// <summary>Runs <see cref="OutboxDispatcher"/> on every node: a round, then a pause of <c>Delivery:PollInterval</c> unless the batch was full.</summary>
public sealed partial class OutboxDispatcherService(OutboxDispatcher dispatcher, IOptions<DeliveryOptions> options, TimeProvider time, ILogger<OutboxDispatcherService> logger)
    : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        LogStarted(logger, dispatcher.NodeId, o.PollInterval.TotalMilliseconds);
        // Messages of both exception types are free of data; the next round tries again.
        return DispatchLoop.RunAsync(dispatcher.RunOnceAsync, o.BatchSize, o.PollInterval, time, e => LogRoundFailed(logger, e.GetType().Name, e.Message), stoppingToken);
    }

    [LoggerMessage(EventId = 3010, Level = LogLevel.Information, Message = "Outbox dispatcher {NodeId} started (poll every {PollMs} ms)")]
    private static partial void LogStarted(ILogger logger, string nodeId, double pollMs);

    [LoggerMessage(EventId = 3011, Level = LogLevel.Warning, Message = "Outbox round failed: {ErrorType}: {Error}")]
    private static partial void LogRoundFailed(ILogger logger, string errorType, string error);
}

/// <summary>The loop of every dispatcher: a round, then a pause unless the round was a full batch; a round that fails for storage or HSM reasons is reported and the next one tries again.</summary>
public static class DispatchLoop
{
    public static async Task RunAsync(Func<CancellationToken, Task<int>> round, int batchSize, TimeSpan pollInterval, TimeProvider time, Action<Exception> roundFailed,
        CancellationToken stoppingToken)
    {
        ArgumentNullException.ThrowIfNull(round);
        ArgumentNullException.ThrowIfNull(roundFailed);
        while (!stoppingToken.IsCancellationRequested)
        {
            var claimed = 0;
            try
            {
                claimed = await round(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (e is StorageUnavailableException or HsmException)
            {
                roundFailed(e);
            }

            if (claimed < batchSize)
            {
                try
                {
                    await Task.Delay(pollInterval, time, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
    }
}
