using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace DevRift.Client;

public partial class DevRiftClient
{
    private static readonly string s_userAgent =
        $"DevRift.Client/{typeof(DevRiftClient).Assembly.GetName().Version?.ToString(3) ?? "1.0.0"} (.NET {Environment.Version})";

    /// <summary>
    /// One logical call: attempts until success, a refusal that retrying cannot change, or the retry budget is spent.
    /// 429 and 503 are answered before anything is done (the appliance fails closed), so they are retried for every
    /// operation. A connection that failed after the request may have reached the appliance is retried only for reads,
    /// deletes and sends (which carry their idempotency key); other POSTs are retried only when no connection was made.
    /// </summary>
    private async Task<T> SendAsync<T>(HttpMethod method, string path, Dictionary<string, object?>? body, string? idempotencyKey, CancellationToken cancellationToken)
    {
        var replayable = method != HttpMethod.Post || idempotencyKey is not null;
        var retry = _options.Retry;
        for (var attempt = 0; ; attempt++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var canRetry = attempt < retry.MaxRetries;
            using var request = NewRequest(method, path, body, idempotencyKey);
            using var attemptTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            if (_options.NetworkTimeout != Timeout.InfiniteTimeSpan)
            {
                attemptTimeout.CancelAfter(_options.NetworkTimeout);
            }

            HttpResponseMessage response;
            try
            {
                response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, attemptTimeout.Token).ConfigureAwait(false);
            }
            catch (HttpRequestException e) when (canRetry && (replayable || e.HttpRequestError == HttpRequestError.ConnectionError))
            {
                await Task.Delay(Backoff(attempt), cancellationToken).ConfigureAwait(false);
                continue;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                if (canRetry && replayable)
                {
                    await Task.Delay(Backoff(attempt), cancellationToken).ConfigureAwait(false);
                    continue;
                }

                throw new TimeoutException($"the appliance did not answer {method} /{path.Split('?')[0]} within {_options.NetworkTimeout}");
            }

            using (response)
            {
                if (response.IsSuccessStatusCode)
                {
                    return await ReadAsync<T>(response, cancellationToken).ConfigureAwait(false);
                }

                var problem = await ProblemAsync(response, cancellationToken).ConfigureAwait(false);
                var transient = response.StatusCode is HttpStatusCode.TooManyRequests
                    || (response.StatusCode == HttpStatusCode.ServiceUnavailable && problem.Code != "channel_not_configured");
                if (!transient || !canRetry)
                {
                    throw problem;
                }

                var wait = problem.RetryAfter ?? Backoff(attempt);
                if (wait > retry.MaxDelay)
                {
                    throw problem;
                }

                await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private HttpRequestMessage NewRequest(HttpMethod method, string path, Dictionary<string, object?>? body, string? idempotencyKey)
    {
        var request = new HttpRequestMessage(method, new Uri(_base, path));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _options.ApiKey);
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.UserAgent.ParseAdd(s_userAgent);
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }

        if (body is not null)
        {
            var fields = body.Where(kv => kv.Value is not null).ToDictionary(kv => kv.Key, kv => kv.Value);
            request.Content = new StringContent(JsonSerializer.Serialize(fields, s_json), Encoding.UTF8, "application/json");
        }

        return request;
    }

    private TimeSpan Backoff(int attempt)
    {
        var retry = _options.Retry;
        var exponential = retry.Delay.TotalMilliseconds * Math.Pow(2, Math.Min(attempt, 16));
        var jittered = exponential * (0.8 + (0.4 * Random.Shared.NextDouble()));
        return TimeSpan.FromMilliseconds(Math.Min(jittered, retry.MaxDelay.TotalMilliseconds));
    }

    private static async Task<T> ReadAsync<T>(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.StatusCode == HttpStatusCode.NoContent || typeof(T) == typeof(object))
        {
            return default!;
        }

        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            return await JsonSerializer.DeserializeAsync<T>(stream, s_json, cancellationToken).ConfigureAwait(false)
                ?? throw new JsonException("the appliance answered an empty body");
        }
    }

    private async Task<DevRiftException> ProblemAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var retryAfter = response.Headers.RetryAfter switch
        {
            { Delta: { } delta } => delta,
            { Date: { } date } => date - _options.Retry.TimeProvider.GetUtcNow() is var d && d > TimeSpan.Zero ? d : TimeSpan.Zero,
            _ => (TimeSpan?)null,
        };
        var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            using var doc = JsonDocument.Parse(text);
            var root = doc.RootElement;
            string? Str(string name) => root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
            int? Int(string name) => root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) ? i : null;
            if (retryAfter is null && Int("retry_after") is { } seconds)
            {
                retryAfter = TimeSpan.FromSeconds(seconds);
            }

            return new DevRiftException(response.StatusCode, Str("code") ?? "unknown", Str("detail") ?? Str("title") ?? response.ReasonPhrase ?? "request failed")
            {
                Param = Str("param"),
                AttemptsRemaining = Int("attempts_remaining"),
                RetryAfter = retryAfter,
                Title = Str("title"),
                Type = Uri.TryCreate(Str("type"), UriKind.RelativeOrAbsolute, out var type) ? type : null,
            };
        }
        catch (JsonException)
        {
            // Not the appliance's problem body (a proxy's error page): keep the status only, never the page's text.
            return new DevRiftException(response.StatusCode, "unknown",
                string.Create(CultureInfo.InvariantCulture, $"HTTP {(int)response.StatusCode} {response.ReasonPhrase} without a problem body"))
            { RetryAfter = retryAfter };
        }
    }
}
