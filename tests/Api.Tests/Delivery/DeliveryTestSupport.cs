using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Dapper;
using DevRift.Hsm.Api.Tests.Infrastructure;
using Microsoft.Extensions.Logging;

namespace DevRift.Hsm.Api.Tests.Delivery;

/// <summary>
/// Every log line of the appliances these tests start (in-process hosts through a logger provider at Debug level,
/// child processes through their console), so that a test can assert that no code was ever logged.
/// </summary>
public sealed class LogCapture : ILoggerProvider
{
    public static LogCapture Suite { get; } = new();

    private readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyCollection<string> Lines => _lines;

    public void Add(string line) => _lines.Enqueue(line);

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    /// <summary>Asserts that no captured line (message, state, exception) contains any of <paramref name="secrets"/>.</summary>
    public void AssertNoneContain(IEnumerable<string> secrets)
    {
        var list = secrets.Where(s => s.Length > 0).Distinct().ToList();
        Assert.NotEmpty(list);
        foreach (var line in _lines)
        {
            foreach (var secret in list)
            {
                Assert.False(line.Contains(secret, StringComparison.Ordinal), $"a code appears in a log line: {line.Replace(secret, "<CODE>", StringComparison.Ordinal)}");
            }
        }
    }

    private sealed class Logger(LogCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull
        {
            owner.Add($"{category} scope {state}");
            return null;
        }

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = state is IEnumerable<KeyValuePair<string, object?>> pairs ? string.Join(" ", pairs.Select(p => $"{p.Key}={p.Value}")) : "";
            owner.Add($"{logLevel} {category}[{eventId.Id}] {formatter(state, exception)} | {values} | {exception}");
        }
    }
}

/// <summary>Requests, waits and database reads the delivery tests share (plain static helpers, no extension clashes).</summary>
public static partial class Live
{
    public const string TwilioSid = "AC0123456789abcdef0123456789abcdef";
    public const string TwilioToken = "twilio-auth-token-for-tests";
    public const string TwilioFrom = "+15005550006";
    public const string WhatsAppFrom = "+14155238886";
    public const string WebhookSecret = "whsec-0123456789abcdef-for-tests";

    private static int s_phone = 5000;

    /// <summary>Settings for the in-process host: fast polling, short retries, everything logged.</summary>
    public static Dictionary<string, string?> BaseSettings() => new()
    {
        ["Delivery:PollInterval"] = "00:00:00.100",
        ["Delivery:RetryInitialDelay"] = "00:00:00.200",
        ["Delivery:RetryMaxDelay"] = "00:00:00.500",
        ["Delivery:SendTimeout"] = "00:00:05",
        ["Delivery:LeaseDuration"] = "00:00:10",
        ["Logging:LogLevel:Default"] = "Debug",
        ["Logging:LogLevel:Microsoft.AspNetCore"] = "Debug",
    };

    public static void AddSmtp(IDictionary<string, string?> settings, int port, string? user = null, string? password = null)
    {
        settings["Delivery:Smtp:Host"] = "127.0.0.1";
        settings["Delivery:Smtp:Port"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["Delivery:Smtp:Security"] = "None";
        settings["Delivery:Smtp:From"] = "DevRift Codes <codes@devrift.test>";
        if (user is not null)
        {
            settings["Delivery:Smtp:Username"] = user;
            settings["Delivery:Smtp:Password"] = password;
        }
    }

    public static void AddTwilio(IDictionary<string, string?> settings, Uri baseUrl)
    {
        settings["Delivery:Twilio:BaseUrl"] = baseUrl.ToString().TrimEnd('/');
        settings["Delivery:Twilio:AccountSid"] = TwilioSid;
        settings["Delivery:Twilio:AuthToken"] = TwilioToken;
        settings["Delivery:Twilio:From"] = TwilioFrom;
        settings["Delivery:Twilio:WhatsAppFrom"] = WhatsAppFrom;
    }

    public static void AddWebhook(IDictionary<string, string?> settings, Uri url)
    {
        settings["Delivery:Webhook:Url"] = new Uri(url, "/hooks/devrift").ToString();
        settings["Delivery:Webhook:Secret"] = WebhookSecret;
    }

    /// <summary>Starts the real host with these settings, logging into <see cref="LogCapture.Suite"/>.</summary>
    public static Task<ApplianceServer> StartServerAsync(Db db, IDictionary<string, string?> settings, bool fakeClock = false) =>
        ApplianceServer.StartAsync(db, fakeClock, settings, b => b.Logging.AddProvider(LogCapture.Suite));

    public static string NewPhone() => "+1415555" + Interlocked.Increment(ref s_phone).ToString("D4", System.Globalization.CultureInfo.InvariantCulture);

    public static string NewEmail(string hint) => $"{hint}-{Guid.NewGuid():N}"[..(hint.Length + 13)] + "@example.com";

    public static HttpClient Client(Uri baseAddress, string bearer)
    {
        var client = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        return client;
    }

    /// <summary>A live API key for the application, created through <c>/admin/v1</c>.</summary>
    public static async Task<string> CreateLiveKeyAsync(Uri baseAddress, string operatorToken, string applicationId)
    {
        using var admin = Client(baseAddress, operatorToken);
        using var response = await admin.PostAsJsonAsync($"/admin/v1/applications/{applicationId}/api-keys", new { mode = "live" });
        var key = await ReadAsync(response, HttpStatusCode.Created);
        var secret = key.GetProperty("secret").GetString()!;
        Assert.StartsWith("sk_live_", secret, StringComparison.Ordinal);
        return secret;
    }

    public static async Task<string> CreateApplicationAsync(Uri baseAddress, string operatorToken, string name, object settings)
    {
        using var admin = Client(baseAddress, operatorToken);
        using var response = await admin.PostAsJsonAsync("/admin/v1/applications", new { name, plan = "standard" });
        var id = (await ReadAsync(response, HttpStatusCode.Created)).GetProperty("id").GetString()!;
        await PatchSettingsAsync(baseAddress, operatorToken, id, settings);
        return id;
    }

    public static async Task<string> CreateKeyAsync(Uri baseAddress, string operatorToken, string applicationId, string mode)
    {
        using var admin = Client(baseAddress, operatorToken);
        using var response = await admin.PostAsJsonAsync($"/admin/v1/applications/{applicationId}/api-keys", new { mode });
        return (await ReadAsync(response, HttpStatusCode.Created)).GetProperty("secret").GetString()!;
    }

    public static async Task PatchSettingsAsync(Uri baseAddress, string operatorToken, string applicationId, object patch)
    {
        using var admin = Client(baseAddress, operatorToken);
        using var response = await admin.PatchAsync($"/admin/v1/applications/{applicationId}/settings", JsonContent.Create(patch));
        await ReadAsync(response, HttpStatusCode.OK);
    }

    /// <summary><c>POST /v1/mfa</c> exactly as the documented curl example sends it.</summary>
    public static async Task<HttpResponseMessage> PostSendAsync(Uri baseAddress, string key, string user, string type)
    {
        using var client = Client(baseAddress, key);
        return await client.PostAsync("/v1/mfa", Form($"User={user}, Type={type}"));
    }

    /// <summary>Sends and asserts 202; returns the challenge id.</summary>
    public static async Task<string> SendAsync(Uri baseAddress, string key, string user, string type)
    {
        using var response = await PostSendAsync(baseAddress, key, user, type);
        var challenge = await ReadAsync(response, HttpStatusCode.Accepted);
        Assert.Equal("challenge", challenge.GetProperty("object").GetString());
        return challenge.GetProperty("id").GetString()!;
    }

    public static async Task<HttpResponseMessage> VerifyAsync(Uri baseAddress, string key, string user, string type, string code)
    {
        using var client = Client(baseAddress, key);
        return await client.PostAsync("/v1/mfa/verify", Form($"User={user}, Type={type}, Code={code}"));
    }

    public static async Task AssertVerifiesAsync(Uri baseAddress, string key, string user, string type, string code)
    {
        using var response = await VerifyAsync(baseAddress, key, user, type, code);
        var verification = await ReadAsync(response, HttpStatusCode.OK);
        Assert.True(verification.GetProperty("valid").GetBoolean());
        Assert.True(verification.GetProperty("livemode").GetBoolean());
    }

    public static async Task<JsonElement> GetChallengeAsync(Uri baseAddress, string key, string id)
    {
        using var client = Client(baseAddress, key);
        using var response = await client.GetAsync($"/v1/mfa/{id}");
        return await ReadAsync(response, HttpStatusCode.OK);
    }

    /// <summary>The (only) channel of a challenge: status and reason as <c>GET /v1/mfa/{id}</c> shows them.</summary>
    public static async Task<(string Status, string? Reason)> ChannelAsync(Uri baseAddress, string key, string id, string? channel = null)
    {
        var challenge = await GetChallengeAsync(baseAddress, key, id);
        var c = challenge.GetProperty("channels").EnumerateArray().First(c => channel is null || c.GetProperty("channel").GetString() == channel);
        return (c.GetProperty("status").GetString()!, c.TryGetProperty("reason", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null);
    }

    /// <summary>Polls the channel's status until <paramref name="done"/> holds.</summary>
    public static async Task<(string Status, string? Reason)> WaitForChannelAsync(Uri baseAddress, string key, string id, Func<string, bool> done, TimeSpan? timeout = null)
    {
        var until = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        (string Status, string? Reason) last = default;
        while (DateTime.UtcNow < until)
        {
            last = await ChannelAsync(baseAddress, key, id);
            if (done(last.Status))
            {
                return last;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"channel of {id} stayed '{last.Status}' ({last.Reason})");
    }

    public static async Task<T> WaitForAsync<T>(Func<Task<T>> probe, Func<T, bool> done, string what, TimeSpan? timeout = null)
    {
        var until = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        T last;
        do
        {
            last = await probe();
            if (done(last))
            {
                return last;
            }

            await Task.Delay(50);
        }
        while (DateTime.UtcNow < until);

        throw new TimeoutException($"timed out waiting for {what} (last: {last})");
    }

    /// <summary>The outbox row of a challenge's channel, read directly.</summary>
    public static async Task<OutboxRow> OutboxRowAsync(string connectionString, string challengeId, string channel)
    {
        await using var connection = await OpenAsync(connectionString);
        return await connection.QuerySingleAsync<OutboxRow>(
            "SELECT id, status, attempts, sealed_body AS SealedBody, sent_at AS SentAt, last_error AS LastError, claimed_by AS ClaimedBy, claimed_until AS ClaimedUntil FROM outbox WHERE challenge_id = @challengeId AND channel = @channel",
            new { challengeId, channel });
    }

    public static async Task<System.Data.Common.DbConnection> OpenAsync(string connectionString)
    {
        System.Data.Common.DbConnection connection = connectionString.StartsWith("Data Source=", StringComparison.OrdinalIgnoreCase)
            ? new Microsoft.Data.Sqlite.SqliteConnection(connectionString)
            : new Npgsql.NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        return connection;
    }

    /// <summary>The code in a message body: the first run of 4–10 digits (voice spells it "1, 2, 3…").</summary>
    public static string CodeIn(string body)
    {
        var m = CodePattern().Match(body.Replace(", ", "", StringComparison.Ordinal));
        Assert.True(m.Success, "no code in the delivered message");
        return m.Value;
    }

    public static Task<JsonElement> ReadAsync(HttpResponseMessage response, HttpStatusCode status) => response.AssertJsonAsync(status);

    private static StringContent Form(string body)
    {
        var content = new StringContent(body, Encoding.UTF8);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/x-www-form-urlencoded");
        return content;
    }

    [GeneratedRegex(@"\d{4,10}")]
    private static partial Regex CodePattern();
}

public sealed class OutboxRow
{
    public string Id { get; init; } = "";

    public string Status { get; init; } = "";

    public long Attempts { get; init; }

    public byte[]? SealedBody { get; init; }

    public long? SentAt { get; init; }

    public string? LastError { get; init; }

    public string? ClaimedBy { get; init; }

    public long? ClaimedUntil { get; init; }

    public override string ToString() => $"{Id} {Status} attempts={Attempts} error={LastError}";
}
