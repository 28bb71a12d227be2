using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using DevRift.Hsm.Api.Tests.Delivery;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Events;

/// <summary>
/// One appliance per database on the system clock with fast event retries, SMS through a Twilio stand-in that asks
/// for receipts at <see cref="PublicBaseUrl"/>, and one local receiver for every application's events (each test uses
/// its own application and receiver path).
/// </summary>
public sealed class EventServers : IAsyncLifetime
{
    public const string PublicBaseUrl = "https://mfa.example.test";

    private readonly ConcurrentDictionary<Db, Lazy<Task<ApplianceServer>>> _servers = new();

    public HttpStandIn Receiver { get; private set; } = null!;

    public HttpStandIn Twilio { get; private set; } = null!;

    public static Dictionary<string, string?> EventSettings() => new()
    {
        ["Events:PollInterval"] = "00:00:00.100",
        ["Events:RetryInitialDelay"] = "00:00:00.200",
        ["Events:RetryMaxDelay"] = "00:00:00.500",
        ["Events:SendTimeout"] = "00:00:03",
        ["Events:LeaseDuration"] = "00:00:05",
    };

    public Task<ApplianceServer> GetAsync(Db db) =>
        _servers.GetOrAdd(db, d => new Lazy<Task<ApplianceServer>>(() =>
        {
            var settings = Live.BaseSettings();
            foreach (var (k, v) in EventSettings())
            {
                settings[k] = v;
            }

            Live.AddTwilio(settings, Twilio.BaseUrl);
            settings["Delivery:Twilio:PublicBaseUrl"] = PublicBaseUrl;
            return Live.StartServerAsync(d, settings);
        })).Value;

    public async Task InitializeAsync()
    {
        Receiver = await HttpStandIn.StartAsync();
        Receiver.Answer = _ => new StandInAnswer(200);
        Twilio = await HttpStandIn.StartAsync();
    }

    public async Task DisposeAsync()
    {
        foreach (var server in _servers.Values)
        {
            await (await server.Value).DisposeAsync();
        }

        await Receiver.DisposeAsync();
        await Twilio.DisposeAsync();
    }
}

/// <summary>An event as a receiver got it: the raw body, its headers, and the parsed JSON.</summary>
public sealed record ReceivedEvent(RecordedRequest Request, JsonElement Json)
{
    public string Id => Json.GetProperty("id").GetString()!;

    public string Type => Json.GetProperty("type").GetString()!;

    public JsonElement Data => Json.GetProperty("data");
}

public static partial class EventApi
{
    /// <summary><c>PUT /admin/v1/applications/{id}/event-endpoint</c> with this body.</summary>
    public static async Task<HttpResponseMessage> PutEndpointAsync(Uri baseAddress, string operatorToken, string applicationId, object body)
    {
        using var admin = Live.Client(baseAddress, operatorToken);
        return await admin.PutAsync($"/admin/v1/applications/{applicationId}/event-endpoint", JsonContent.Create(body));
    }

    /// <summary>Configures a new endpoint at <paramref name="url"/> and returns the secret shown once.</summary>
    public static async Task<string> ConfigureAsync(Uri baseAddress, string operatorToken, string applicationId, string url, string[]? events = null)
    {
        using var response = await PutEndpointAsync(baseAddress, operatorToken, applicationId, events is null ? new { url } : new { url, events });
        var body = await response.AssertJsonAsync(HttpStatusCode.Created, "event_endpoint");
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
        var secret = body.GetProperty("secret").GetString()!;
        Assert.Matches("^whsec_[A-Za-z0-9_-]{43}$", secret);
        return secret;
    }

    /// <summary>The events a receiver got at <paramref name="path"/> so far (every attempt, retries included).</summary>
    public static List<ReceivedEvent> At(HttpStandIn receiver, string path) =>
        receiver.Requests.Where(r => r.Path == path).Select(r => new ReceivedEvent(r, JsonDocument.Parse(r.Body).RootElement.Clone())).ToList();

    /// <summary>Waits until the receiver got an event of <paramref name="type"/> at <paramref name="path"/> matching <paramref name="match"/>.</summary>
    public static async Task<ReceivedEvent> WaitForAsync(HttpStandIn receiver, string path, string type, Func<ReceivedEvent, bool>? match = null, TimeSpan? timeout = null)
    {
        var request = await receiver.WaitForAsync(r => r.Path == path && Parse(r) is { } e && e.Type == type && (match is null || match(e)), timeout ?? TimeSpan.FromSeconds(30));
        return Parse(request)!;
    }

    /// <summary>True when the <c>DevRift-Signature</c> verifies over the raw body with <paramref name="secret"/>, as a receiver checks it.</summary>
    public static bool SignatureVerifies(RecordedRequest request, string secret)
    {
        var match = SignaturePattern().Match(request.Header("DevRift-Signature"));
        Assert.True(match.Success, $"signature header '{request.Header("DevRift-Signature")}'");
        var t = long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        var expected = HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), (byte[])[.. Encoding.ASCII.GetBytes($"{t}."), .. request.Body]);
        return CryptographicOperations.FixedTimeEquals(expected, Convert.FromHexString(match.Groups[2].Value));
    }

    /// <summary>Twilio's signature of a status callback: HMAC-SHA1(auth token, URL ‖ sorted name‖value), base64 — written out independently here.</summary>
    public static string TwilioSignature(string authToken, string url, IDictionary<string, string> form)
    {
        var data = new StringBuilder(url);
        foreach (var key in form.Keys.Order(StringComparer.Ordinal))
        {
            data.Append(key).Append(form[key]);
        }

#pragma warning disable CA5350 // Twilio's documented scheme is HMAC-SHA1
        return Convert.ToBase64String(HMACSHA1.HashData(Encoding.UTF8.GetBytes(authToken), Encoding.UTF8.GetBytes(data.ToString())));
#pragma warning restore CA5350
    }

    private static ReceivedEvent? Parse(RecordedRequest r)
    {
        try
        {
            return new ReceivedEvent(r, JsonDocument.Parse(r.Body).RootElement.Clone());
        }
        catch (JsonException)
        {
            return null;
        }
    }

    [GeneratedRegex("^t=(\\d+),v1=([0-9a-f]{64})$")]
    private static partial Regex SignaturePattern();
}
