using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using DevRift.Hsm.Appliance.Outbox;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Crypto;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace DevRift.Hsm.Appliance.Events;

/// <summary>
/// Delivers the event outbox to each application's endpoint: claims due events with a lease, signs each body like the
/// delivery webhook (<c>DevRift-Signature: t=…,v1=hex HMAC-SHA256(secret, "t." ‖ body)</c>, the secret opened in the
/// HSM just before) and names it in <c>DevRift-Event-Id</c>. A 2xx is delivered; anything else (another status, a
/// timeout, a refused connection) is retried with exponential backoff and jitter until the event's retry horizon,
/// then it is <c>failed</c>. At least once: a crash between the receiver's 2xx and the record re-sends the same id.
/// Logs name event ids, types and HTTP statuses only — never a body or a secret.
/// </summary>
public sealed partial class EventDispatcher
{
    public const string EventIdHeader = "DevRift-Event-Id";

    private readonly EventOutbox _outbox;
    private readonly EventEndpoints _endpoints;
    private readonly IHttpClientFactory _http;
    private readonly EventOptions _options;
    private readonly TimeProvider _time;
    private readonly ApplianceMetrics _metrics;
    private readonly ILogger _logger;

    public EventDispatcher(EventOutbox outbox, EventEndpoints endpoints, IHttpClientFactory http, IOptions<EventOptions> options, TimeProvider time,
        ApplianceMetrics metrics, ILogger<EventDispatcher> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _outbox = outbox;
        _endpoints = endpoints;
        _http = http;
        _options = options.Value;
        _time = time;
        _metrics = metrics;
        _logger = logger;
        NodeId = $"{Environment.MachineName}/{Environment.ProcessId}/{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
    }

    /// <summary>This node's name in <c>events.claimed_by</c>.</summary>
    public string NodeId { get; }

    /// <summary>One round: give up what passed its horizon, claim a batch, deliver it in parallel. Returns how many were claimed.</summary>
    public async Task<int> RunOnceAsync(CancellationToken stopping)
    {
        var swept = await _outbox.SweepAsync(stopping);
        for (var i = 0; i < swept; i++)
        {
            _metrics.EventOutcome(EventOutbox.StatusFailed);
        }

        var claimed = await _outbox.ClaimAsync(NodeId, _options.BatchSize, _options.LeaseDuration, stopping);
        if (claimed.Count > 0)
        {
            await Task.WhenAll(claimed.Select(e => DeliverOneAsync(e, stopping)));
        }

        return claimed.Count;
    }

    private async Task DeliverOneAsync(ClaimedEvent claimed, CancellationToken stopping)
    {
        string? failure;
        try
        {
            failure = await SendAsync(claimed, stopping);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            await _outbox.ReleaseAsync(claimed, NodeId, CancellationToken.None);
            return;
        }
        catch (HsmException e)
        {
            failure = $"the signing secret cannot be opened ({e.GetType().Name})";
        }

        if (failure is null)
        {
            await _outbox.MarkDeliveredAsync(claimed, CancellationToken.None);
            _metrics.EventOutcome(EventOutbox.StatusDelivered);
            LogDelivered(_logger, claimed.Id, claimed.Type, claimed.Attempts);
            return;
        }

        var next = _time.GetUtcNow() + OutboxDispatcher.Backoff(claimed.Attempts, _options.RetryInitialDelay, _options.RetryMaxDelay);
        if (failure == EndpointGone || next >= claimed.GiveUpAt)
        {
            await _outbox.MarkFailedAsync(claimed, failure, CancellationToken.None);
            _metrics.EventOutcome(EventOutbox.StatusFailed);
            LogGivenUp(_logger, claimed.Id, claimed.Type, claimed.Attempts, failure);
            return;
        }

        await _outbox.RetryLaterAsync(claimed, NodeId, failure, next, CancellationToken.None);
        _metrics.EventOutcome("retried");
        LogRetry(_logger, claimed.Id, claimed.Type, claimed.Attempts, failure, next);
    }

    private const string EndpointGone = "the application's event endpoint was removed";

    /// <summary>One attempt; null when the receiver answered 2xx, else why not.</summary>
    private async Task<string?> SendAsync(ClaimedEvent claimed, CancellationToken stopping)
    {
        if (await _endpoints.SigningTargetAsync(claimed.ApplicationId, stopping) is not var (url, secret))
        {
            return EndpointGone;
        }

        var body = Encoding.UTF8.GetBytes(claimed.Payload);
        string signature;
        try
        {
            signature = WebhookProvider.Signature(secret, _time.GetUtcNow().ToUnixTimeSeconds(), body);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        request.Headers.TryAddWithoutValidation(WebhookProvider.SignatureHeader, signature);
        request.Headers.TryAddWithoutValidation(EventIdHeader, claimed.Id);
        using var timeout = new CancellationTokenSource(_options.SendTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(stopping, timeout.Token);
        try
        {
            using var response = await _http.CreateClient(DeliveryServiceCollectionExtensions.HttpClientName).SendAsync(request, linked.Token);
            return response.IsSuccessStatusCode
                ? null
                : string.Create(CultureInfo.InvariantCulture, $"the endpoint answered HTTP {(int)response.StatusCode}");
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !stopping.IsCancellationRequested)
        {
            return string.Create(CultureInfo.InvariantCulture, $"the endpoint did not answer within {_options.SendTimeout.TotalSeconds:0.#} s");
        }
        catch (HttpRequestException e)
        {
            return $"the endpoint could not be reached ({e.HttpRequestError})";
        }
    }

    [LoggerMessage(EventId = 3101, Level = LogLevel.Information, Message = "Event {EventId} ({Type}) delivered (attempt {Attempt})")]
    private static partial void LogDelivered(ILogger logger, string eventId, string type, int attempt);

    [LoggerMessage(EventId = 3102, Level = LogLevel.Warning, Message = "Event {EventId} ({Type}) attempt {Attempt} failed: {Reason}; next attempt at {NextAttempt:o}")]
    private static partial void LogRetry(ILogger logger, string eventId, string type, int attempt, string reason, DateTimeOffset nextAttempt);

    [LoggerMessage(EventId = 3103, Level = LogLevel.Warning, Message = "Event {EventId} ({Type}) given up after {Attempt} attempt(s): {Reason}")]
    private static partial void LogGivenUp(ILogger logger, string eventId, string type, int attempt, string reason);
}

/// <summary>Runs <see cref="EventDispatcher"/> on every node: a round, then a pause of <c>Events:PollInterval</c> unless the batch was full.</summary>
public sealed partial class EventDispatcherService(EventDispatcher dispatcher, IOptions<EventOptions> options, TimeProvider time, ILogger<EventDispatcherService> logger)
    : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        return DispatchLoop.RunAsync(dispatcher.RunOnceAsync, o.BatchSize, o.PollInterval, time, e => LogRoundFailed(logger, e.GetType().Name, e.Message), stoppingToken);
    }

    [LoggerMessage(EventId = 3111, Level = LogLevel.Warning, Message = "Event round failed: {ErrorType}: {Error}")]
    private static partial void LogRoundFailed(ILogger logger, string errorType, string error);
}
