using System.Security.Cryptography;
using System.Text;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Outbox;
using Microsoft.Extensions.Options;

namespace DevRift.Hsm.Api.V1;

/// <summary>
/// Delivery receipts from providers. <c>POST /v1/providers/twilio/status</c> is the <c>StatusCallback</c> the Twilio
/// provider names on each SMS and WhatsApp message and voice call when <c>Delivery:Twilio:PublicBaseUrl</c> is set. No API key: the request
/// must carry Twilio's <c>X-Twilio-Signature</c> over the URL it called (the public base URL, this path and its query)
/// and its form parameters, keyed with the auth token; anything else is 403 <c>invalid_signature</c> and changes
/// nothing. <c>MessageStatus</c> <c>delivered</c> (a call's <c>CallStatus</c> <c>completed</c>: answered and played)
/// marks the channel delivered; <c>undelivered</c> and <c>failed</c> (a call's <c>busy</c>, <c>no-answer</c>,
/// <c>failed</c>, <c>canceled</c>) mark it undelivered (with Twilio's <c>ErrorCode</c>); the interim statuses are
/// acknowledged and ignored.
/// </summary>
public static class ProviderEndpoints
{
    public const string TwilioSignatureHeader = "X-Twilio-Signature";

    public static IEndpointRouteBuilder MapProviderReceipts(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapPost(TwilioProvider.StatusCallbackPath, TwilioStatusAsync)
            .DisableAntiforgery()
            .ExcludeFromDescription(); // Twilio's call, not an integrator operation: documented in docs/api.md
        return app;
    }

    private static async Task<IResult> TwilioStatusAsync(HttpContext http, IOptions<TwilioOptions> twilio, OutboxStore outbox, TimeProvider time)
    {
        var authToken = twilio.Value.AuthToken;
        var publicBase = twilio.Value.PublicBaseUrl;
        if (string.IsNullOrEmpty(authToken) || string.IsNullOrWhiteSpace(publicBase) || !http.Request.HasFormContentType)
        {
            throw Refused();
        }

        var form = await http.Request.ReadFormAsync(http.RequestAborted);
        var pairs = form.SelectMany(f => f.Value.Select(v => new KeyValuePair<string, string>(f.Key, v ?? ""))).ToList();
        var url = publicBase.TrimEnd('/') + http.Request.Path.Value + http.Request.QueryString.Value;
        var expected = Encoding.UTF8.GetBytes(TwilioProvider.RequestSignature(authToken, url, pairs));
        var presented = Encoding.UTF8.GetBytes(http.Request.Headers[TwilioSignatureHeader].ToString());
        if (!CryptographicOperations.FixedTimeEquals(expected, presented))
        {
            throw Refused();
        }

        var messageId = http.Request.Query[TwilioProvider.MessageIdParameter].ToString();
        var status = (form.ContainsKey("MessageStatus") ? form["MessageStatus"] : form["CallStatus"]).ToString().ToLowerInvariant();
        bool? delivered = status switch
        {
            "delivered" or "completed" => true,
            "undelivered" or "failed" or "busy" or "no-answer" or "canceled" => false,
            _ => null,
        };
        if (delivered is { } outcome && messageId.Length > 0)
        {
            // Twilio's error code only: its message text can quote the number.
            var reason = outcome ? null
                : form["ErrorCode"].ToString() is { Length: > 0 } code && code.All(char.IsAsciiDigit) ? $"the provider reported {status} (Twilio error {code})"
                : $"the provider reported {status}";
            await outbox.RecordReceiptAsync(messageId, outcome, reason, time.GetUtcNow(), http.RequestAborted);
        }

        return Results.NoContent();
    }

    private static MfaException Refused() =>
        new(ErrorCode.InvalidSignature, $"the request is not signed by the provider ({TwilioSignatureHeader})", TwilioSignatureHeader);
}
