using System.Net;
using System.Net.Http.Headers;
using System.Security;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;

namespace DevRift.Hsm.Appliance.Outbox;

/// <summary>
/// SMS, WhatsApp and voice through a Twilio-compatible REST API: <c>POST {BaseUrl}/2010-04-01/Accounts/{sid}/Messages.json</c>
/// (form <c>To</c>, <c>From</c>, <c>Body</c>; WhatsApp numbers carry the <c>whatsapp:</c> prefix) and
/// <c>…/Calls.json</c> (form <c>To</c>, <c>From</c>, <c>Twiml</c> with a <c>&lt;Say&gt;</c> that reads the digits one by one, twice),
/// with HTTP basic authentication (account SID, auth token). With <c>Delivery:Twilio:PublicBaseUrl</c> set, each SMS and
/// WhatsApp message names a <c>StatusCallback</c> (<see cref="StatusCallbackPath"/> with the outbox id), where Twilio
/// reports <c>delivered</c> / <c>undelivered</c> / <c>failed</c>; voice calls request no receipt.
/// </summary>
/// <remarks>
/// A plain HTTP client rather than the Twilio SDK: the SDK builds every URL from a fixed <c>*.twilio.com</c> domain
/// (region and edge are its only knobs), so a configurable base URL — a Twilio-compatible gateway, a regional proxy,
/// a local stand-in in tests — would need a custom <c>Twilio.Http.HttpClient</c> that rewrites each request; and its
/// <c>ApiException</c> messages quote Twilio's text, which names the destination number. Two form POSTs and our own
/// error mapping (status and Twilio error code only) are smaller than either workaround.
/// </remarks>
public sealed class TwilioProvider(IOptions<TwilioOptions> options, IHttpClientFactory httpClients) : IDeliveryProvider
{
    public const string ProviderName = "twilio";

    /// <summary>Where Twilio posts a message's status (the appliance's <c>/v1/providers/twilio/status</c> route).</summary>
    public const string StatusCallbackPath = "/v1/providers/twilio/status";

    /// <summary>The query parameter of the callback URL that names the outbox row.</summary>
    public const string MessageIdParameter = "message_id";

    /// <summary>Twilio error codes that mean "this number cannot receive it": not retried.</summary>
    private static readonly HashSet<int> s_invalidNumberCodes =
    [
        13223, 13224, 13225, 13226, 13227, // calls: invalid, forbidden or unsupported number
        21211, 21214, 21215, 21217, 21401, 21407, 21408, 21421, 21610, 21612, 21614, // messages and calls
        63003, 63024, // WhatsApp: no such recipient, invalid recipient
    ];

    public string Name => ProviderName;

    public bool IsConfigured => options.Value.IsConfigured;

    public bool Supports(string channel)
    {
        var o = options.Value;
        return channel switch
        {
            "SMS" or "CALL" => !string.IsNullOrWhiteSpace(o.From),
            "WHATSAPP" => !string.IsNullOrWhiteSpace(o.WhatsAppFrom),
            _ => false,
        };
    }

    public async Task DeliverAsync(OutgoingMessage message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        var o = options.Value;
        var (resource, form) = message.Channel switch
        {
            "SMS" => ("Messages.json", new Dictionary<string, string> { ["To"] = message.To, ["From"] = o.From!, ["Body"] = message.Body }),
            "WHATSAPP" => ("Messages.json", new Dictionary<string, string>
            {
                ["To"] = WhatsApp(message.To), ["From"] = WhatsApp(o.WhatsAppFrom!), ["Body"] = message.Body,
            }),
            "CALL" => ("Calls.json", new Dictionary<string, string> { ["To"] = message.To, ["From"] = o.From!, ["Twiml"] = Twiml(message) }),
            _ => throw new DeliveryException($"the twilio provider does not deliver {message.Channel}", permanent: true),
        };
        // Messages report MessageStatus; calls report CallStatus once the call has ended (Twilio's default events).
        if (StatusCallback(o.PublicBaseUrl, message.Id) is { } callback)
        {
            form["StatusCallback"] = callback;
        }

        var url = new Uri($"{o.BaseUrl.TrimEnd('/')}/2010-04-01/Accounts/{Uri.EscapeDataString(o.AccountSid!)}/{resource}");
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new FormUrlEncodedContent(form) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{o.AccountSid}:{o.AuthToken}")));
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));

        HttpResponseMessage response;
        try
        {
            response = await httpClients.CreateClient(DevRift.Hsm.Appliance.DeliveryServiceCollectionExtensions.HttpClientName).SendAsync(request, cancellationToken);
        }
        catch (HttpRequestException e)
        {
            throw new DeliveryException($"the provider could not be reached ({e.HttpRequestError})", permanent: false, e);
        }

        using (response)
        {
            if (response.IsSuccessStatusCode)
            {
                return;
            }

            var status = (int)response.StatusCode;
            var code = await ErrorCodeAsync(response, cancellationToken);
            var twilio = code is { } c ? $", Twilio error {c}" : "";
            if (code is { } invalid && s_invalidNumberCodes.Contains(invalid) && status is >= 400 and < 500)
            {
                throw new DeliveryException($"the provider rejected the number as invalid or unreachable (HTTP {status}{twilio})", permanent: true);
            }

            throw response.StatusCode switch
            {
                HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden =>
                    new DeliveryException($"the provider refused the credentials (HTTP {status}{twilio}); check Delivery:Twilio:AccountSid/AuthToken", permanent: false),
                HttpStatusCode.BadRequest or HttpStatusCode.UnprocessableEntity or HttpStatusCode.Gone =>
                    new DeliveryException($"the provider refused the message (HTTP {status}{twilio})", permanent: true),
                _ => new DeliveryException($"the provider answered HTTP {status}{twilio}", permanent: false),
            };
        }
    }

    /// <summary>Voice: the rendered text (which spells the digits, twice) read by one <c>&lt;Say&gt;</c> in the message's language.</summary>
    public static string Twiml(OutgoingMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var language = message.Locale switch
        {
            "fr" => "fr-FR",
            "de" => "de-DE",
            "es" => "es-ES",
            _ => "en-US",
        };
        return $"<Response><Say language=\"{language}\">{SecurityElement.Escape(message.Body)}</Say></Response>";
    }

    /// <summary>The receipt URL for one outbox message, or null without <c>Delivery:Twilio:PublicBaseUrl</c>.</summary>
    public static string? StatusCallback(string? publicBaseUrl, string messageId) =>
        string.IsNullOrWhiteSpace(publicBaseUrl)
            ? null
            : $"{publicBaseUrl.TrimEnd('/')}{StatusCallbackPath}?{MessageIdParameter}={Uri.EscapeDataString(messageId)}";

    /// <summary>
    /// Twilio's request signature (<c>X-Twilio-Signature</c>): base64 of HMAC-SHA1 keyed with the auth token over the full
    /// URL Twilio called followed by each POST parameter's name and value, sorted by name (ordinal).
    /// </summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Security", "CA5350:Do Not Use Weak Cryptographic Algorithms",
        Justification = "HMAC-SHA1 is the algorithm Twilio signs its callbacks with; verifying it needs the same.")]
    public static string RequestSignature(string authToken, string url, IEnumerable<KeyValuePair<string, string>> form)
    {
        ArgumentNullException.ThrowIfNull(authToken);
        ArgumentNullException.ThrowIfNull(url);
        ArgumentNullException.ThrowIfNull(form);
        var data = new StringBuilder(url);
        foreach (var (name, value) in form.OrderBy(p => p.Key, StringComparer.Ordinal).ThenBy(p => p.Value, StringComparer.Ordinal))
        {
            data.Append(name).Append(value);
        }

        var key = Encoding.UTF8.GetBytes(authToken);
        try
        {
            return Convert.ToBase64String(System.Security.Cryptography.HMACSHA1.HashData(key, Encoding.UTF8.GetBytes(data.ToString())));
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(key);
        }
    }

    private static string WhatsApp(string number) =>
        number.StartsWith("whatsapp:", StringComparison.OrdinalIgnoreCase) ? number : "whatsapp:" + number;

    /// <summary>Twilio's numeric error code from an error body; its text is never kept (it quotes the number).</summary>
    private static async Task<int?> ErrorCodeAsync(HttpResponseMessage response, CancellationToken ct)
    {
        try
        {
            var text = await response.Content.ReadAsStringAsync(ct);
            using var doc = JsonDocument.Parse(text);
            return doc.RootElement.ValueKind == JsonValueKind.Object
                && doc.RootElement.TryGetProperty("code", out var code) && code.TryGetInt32(out var value)
                ? value
                : null;
        }
        catch (Exception e) when (e is JsonException or HttpRequestException or IOException)
        {
            return null;
        }
    }
}
