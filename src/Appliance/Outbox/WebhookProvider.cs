using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.Extensions.Options;

namespace DevRift.Hsm.Appliance.Outbox;

/// <summary>
/// Hands messages to the deployment's own gateway: <c>POST Delivery:Webhook:Url</c> with a JSON body
/// (<c>id</c>, <c>channel</c>, <c>to</c>, <c>body</c>, <c>locale</c>, <c>created_at</c>) and the header
/// <c>DevRift-Signature: t=&lt;unix seconds&gt;,v1=&lt;hex HMAC-SHA256(secret, "&lt;t&gt;.&lt;raw body&gt;")&gt;</c>.
/// Any 2xx is delivered; 400, 410 and 422 are final refusals; anything else is retried. The gateway should
/// treat <c>id</c> as an idempotency key: after a crash a message can arrive twice, never zero times.
/// </summary>
public sealed class WebhookProvider(IOptions<WebhookOptions> options, IHttpClientFactory httpClients, TimeProvider time) : IDeliveryProvider
{
    public const string ProviderName = "webhook";
    public const string SignatureHeader = "DevRift-Signature";

    public string Name => ProviderName;

    public bool IsConfigured => options.Value.IsConfigured;

    public bool Supports(string channel) => channel is "EMAIL" or "SMS" or "WHATSAPP" or "CALL";

    public async Task DeliverAsync(OutgoingMessage message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        var o = options.Value;
        var body = Payload(message);
        var timestamp = time.GetUtcNow().ToUnixTimeSeconds();
        using var request = new HttpRequestMessage(HttpMethod.Post, o.Url) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json") { CharSet = "utf-8" };
        request.Headers.TryAddWithoutValidation(SignatureHeader, Signature(o.Secret!, timestamp, body));

        HttpResponseMessage response;
        try
        {
            response = await httpClients.CreateClient(DevRift.Hsm.Appliance.DeliveryServiceCollectionExtensions.HttpClientName).SendAsync(request, cancellationToken);
        }
        catch (HttpRequestException e)
        {
            throw new DeliveryException($"the webhook could not be reached ({e.HttpRequestError})", permanent: false, e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(body);
        }

        using (response)
        {
            var status = (int)response.StatusCode;
            if (response.IsSuccessStatusCode)
            {
                return;
            }

            throw response.StatusCode switch
            {
                HttpStatusCode.BadRequest or HttpStatusCode.Gone or HttpStatusCode.UnprocessableEntity =>
                    new DeliveryException($"the webhook refused the message (HTTP {status})", permanent: true),
                _ when status is >= 300 and < 400 =>
                    new DeliveryException($"the webhook answered a redirect (HTTP {status}); set Delivery:Webhook:Url to the final address", permanent: false),
                _ => new DeliveryException($"the webhook answered HTTP {status}", permanent: false),
            };
        }
    }

    /// <summary><c>t=&lt;unix seconds&gt;,v1=&lt;lower-case hex HMAC-SHA256(secret, "&lt;t&gt;." ‖ body)&gt;</c>.</summary>
    public static string Signature(string secret, long timestamp, ReadOnlySpan<byte> body)
    {
        ArgumentNullException.ThrowIfNull(secret);
        var key = Encoding.UTF8.GetBytes(secret);
        try
        {
            return Signature(key, timestamp, body);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>The same signature with the secret's UTF-8 bytes (the caller zeroes them).</summary>
    public static string Signature(ReadOnlySpan<byte> key, long timestamp, ReadOnlySpan<byte> body)
    {
        var prefix = Encoding.ASCII.GetBytes(timestamp.ToString(CultureInfo.InvariantCulture) + ".");
        var signed = new byte[prefix.Length + body.Length];
        prefix.CopyTo(signed, 0);
        body.CopyTo(signed.AsSpan(prefix.Length));
        try
        {
            var mac = HMACSHA256.HashData(key, signed);
            return string.Create(CultureInfo.InvariantCulture, $"t={timestamp},v1={Convert.ToHexStringLower(mac)}");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(signed);
        }
    }

    private static byte[] Payload(OutgoingMessage message)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteString("id", message.Id);
            json.WriteString("channel", message.Channel);
            json.WriteString("to", message.To);
            json.WriteString("body", message.Body);
            json.WriteString("locale", message.Locale);
            json.WriteString("created_at", message.CreatedAt.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture));
            json.WriteEndObject();
        }

        return buffer.ToArray();
    }
}
