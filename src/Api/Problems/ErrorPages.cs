using System.Net;
using System.Text;
using DevRift.Hsm.Api.OpenApi;

namespace DevRift.Hsm.Api.Problems;

/// <summary>A problem code's explanation: what it means and what the caller should do.</summary>
public sealed record ErrorExplanation(string Meaning, string Action);

/// <summary>
/// The pages that problem <c>type</c> URLs point at: <c>GET /errors/{code}</c> (HTML, or JSON when asked for) and an
/// index at <c>GET /errors</c>. No key is needed; the pages hold no data of any caller.
/// </summary>
public static class ErrorPages
{
    private static readonly Dictionary<string, ErrorExplanation> s_explanations = new(StringComparer.Ordinal)
    {
        ["invalid_request"] = new("The request could not be read: a required field is missing, a field has the wrong type, a value is out of range, or the body is not valid JSON or form data. `param` names the field.", "Fix the field named in `param` (or the body) as `detail` says, and send again."),
        ["invalid_user"] = new("`user` is missing or not in any form the appliance takes: an email address, an E.164 phone number, or email:phone for DUAL.", "Send the user's email, their phone as + then country code and number (e.g. +14155550123), or for DUAL email:phone in that order."),
        ["invalid_phone_number"] = new("The phone number is not valid E.164 or not a number libphonenumber accepts for its country.", "Send + then the country code and number with digits only, e.g. +14155550123. The .NET client formats what users type (\"(415) 555-2671\" with a default region) for you."),
        ["invalid_email"] = new("The email address is not valid (name@example.com, no spaces or commas, a domain with a dot).", "Correct the address and send again."),
        ["invalid_type"] = new("`type` is missing or not one the operation takes.", "Send: for POST /v1/mfa EMAIL, SMS, WHATSAPP, CALL or DUAL; for POST /v1/mfa/verify EMAIL, PHONE, APP, DUAL, BACKUP or KEY; for POST /v1/mfa/backup EMAIL, SMS or DUAL."),
        ["invalid_code_format"] = new("The code is not in the shape of that type's codes: 4 to 10 digits for sent codes, the app's 6 to 8 digits, or a backup code of 8 to 20 letters and digits.", "Ask the user to type the code again; nothing was counted against them."),
        ["invalid_api_key"] = new("The `Authorization: Bearer` key (or the operator token) is missing, wrong or revoked.", "Send a current key: sk_test_… or sk_live_… for /v1, the operator token for /admin/v1. An operator can create a key with POST /admin/v1/applications/{id}/api-keys."),
        ["client_certificate_required"] = new("The appliance requires mutual TLS and the request came without a valid client certificate (none, untrusted or expired).", "Present a client certificate issued by the CA the appliance trusts (Tls:ClientCa) and registered on your application."),
        ["invalid_code"] = new("The code (or security-key assertion) does not match. The challenge or factor stays usable until its attempts run out; `attempts_remaining` says how many are left.", "Let the user try again; after too many failures send a new code, or wait for the lockout to end."),
        ["code_expired"] = new("The newest code of this kind has expired (its lifetime is code_lifetime_seconds, 600 by default).", "Send a new code with POST /v1/mfa and ask the user for that one."),
        ["no_pending_challenge"] = new("There is no pending code of this kind for this user: none was sent, it was already used, or a newer send replaced it and was used.", "Send a code first (POST /v1/mfa), then verify it with the same user and a matching type (PHONE for SMS, WHATSAPP and CALL)."),
        ["not_enrolled"] = new("The user has no such factor: no active authenticator app, no backup-code set, or no security key.", "Enrol the factor first (POST /v1/mfa/app, POST /v1/mfa/backup, or the security-key registration) or verify another way."),
        ["transaction_mismatch"] = new("The code (or security-key assertion) was issued for a payment, and the transaction presented with it is not that payment: another amount (by as little as one cent), currency, payee (by as little as one character) or reference, or none at all; or a transaction was presented for a code issued without one. It counts as a failed attempt; `attempts_remaining` says how many are left. The detail never says what the code was issued for.", "Verify with exactly the transaction sent with POST /v1/mfa (or the assertion options). If the payment changed, send a new code for the new payment: the user must see the amount and payee they approve."),
        ["invalid_user_id"] = new("user_id is longer than 128 characters or holds a space, a control character or a non-ASCII character.", "Send the integrator's own identifier of the user as printable ASCII without spaces (a customer number or a UUID), or leave user_id out."),
        ["method_disabled"] = new("This method is not enabled in the application's settings (enabled_methods).", "Use an enabled method, or have an operator enable it with PATCH /admin/v1/applications/{id}/settings."),
        ["plan_required"] = new("DUAL (a code by email and SMS at once) needs the enterprise plan.", "Send EMAIL or SMS instead, or have an operator move the application to the enterprise plan."),
        ["live_mode_forbidden"] = new("This operation exists only in test mode (the test outbox), and a live key was used.", "Use the application's test key (sk_test_…) for it."),
        ["client_certificate_mismatch"] = new("The client certificate is trusted, but its thumbprint is not registered on the API key's application.", "Register the certificate on the application (POST /admin/v1/applications/{id}/client-certificates) or use the application's own certificate."),
        ["country_not_allowed"] = new("The fraud guard refused a phone send (SMS, WHATSAPP, CALL, DUAL's phone, SMS backup codes): the number's country is not in the application's allowed_countries. Nothing was sent or stored.", "Ask the user for a number in an allowed country, or have an operator add the country to allowed_countries (PATCH /admin/v1/applications/{id}/settings)."),
        ["destination_blocked"] = new("The fraud guard refused a phone send: the number is in a high-cost range (the appliance's shipped list of premium-rate, shared-cost and satellite ranges, or the application's blocked_ranges), or libphonenumber types it as premium-rate or shared-cost. Nothing was sent or stored.", "Ask the user for an ordinary mobile or landline number, or use EMAIL; an operator can see the rule in the audit record fraud_guard.block."),
        ["invalid_signature"] = new("A provider's callback (POST /v1/providers/twilio/status) did not carry a valid signature for its URL and parameters, or the provider's credentials or Delivery:Twilio:PublicBaseUrl are not configured. Nothing was changed.", "Nothing for integrators to do. Operators: check that Delivery:Twilio:AuthToken is the account's current auth token and that Delivery:Twilio:PublicBaseUrl is the exact public address Twilio calls."),
        ["not_found"] = new("No such object for this key: the id does not exist, or belongs to another application or mode, or the path does not exist.", "Check the id and that the key is of the application and mode that made it."),
        ["idempotency_key_reused"] = new("The Idempotency-Key was already used in the last 24 hours with a different request.", "Use a new key for every logical send, and the same key only to retry that same send."),
        ["identity_conflict"] = new("The request would make one end user of two that the integrator named with different user_ids: the contact (or one of a DUAL pair) already belongs to an end user with another user_id. Nothing was changed.", "Send the user_id that contact belongs to, or use a contact of this user. An identity's user_id never changes, and two user_ids are never merged."),
        ["key_in_use"] = new("The HSM key version cannot be retired: it is current, or rows still depend on it.", "Rotate first, revoke or replace what still depends on it (GET /admin/v1/hsm lists it), wait Hsm:KeyRefreshInterval, then retire."),
        ["payload_too_large"] = new("The body is larger than 16 KiB.", "Send only the documented fields."),
        ["unsupported_media_type"] = new("The Content-Type is not one the endpoint reads.", "Send application/json or application/x-www-form-urlencoded to /v1 (JSON only to /admin/v1)."),
        ["too_many_attempts"] = new("Too many failed checks of an authenticator app, backup codes or security keys. Either this source is refused for a while (lockout_profile source_aware; a source is the API key and the request's client_ip, `param` `client_ip`, or the API key and user when no client_ip was given) or the user is locked out (`param` `user`).", "Wait the Retry-After seconds (each repeat doubles the wait). A user lockout caused by other sources does not refuse a source that has succeeded for this user before. After a hard lock the factor must be removed and enrolled again."),
        ["rate_limited"] = new("A send limit was reached: the resend cool-down, sends per destination in the window, sends per application per hour, or a fraud-guard velocity limit (phone sends per country calling code or per number range in the clock hour).", "Wait the Retry-After seconds before sending again; do not loop on it."),
        ["hsm_unavailable"] = new("The HSM cannot serve the request now (token removed, session or device lost). Nothing was done or consumed.", "Retry after the Retry-After delay (the .NET client does); the appliance reconnects by itself."),
        ["storage_unavailable"] = new("The database cannot serve the request now (server down, connections refused, timeouts). Nothing was done or consumed.", "Retry after a short delay (the .NET client does); check the database if it persists."),
        ["internal_error"] = new("An unexpected failure inside the appliance; its log names the exception type.", "Retry once; if it persists, report it to the operator with the time of the request."),
        ["channel_not_configured"] = new("A live send on a channel whose delivery provider is not configured; nothing was queued.", "Use another channel, or have the operator configure the provider (Delivery:Smtp, Delivery:Twilio or Delivery:Webhook)."),
    };

    /// <summary>The explanation of <paramref name="code"/>.</summary>
    public static ErrorExplanation Describe(string code) =>
        s_explanations.TryGetValue(code, out var e) ? e : throw new ArgumentException($"no explanation for problem code '{code}'", nameof(code));

    /// <summary>The codes that have a page (every code of the appliance).</summary>
    public static IEnumerable<string> Codes => s_explanations.Keys;

    public static IEndpointRouteBuilder MapErrorPages(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapGet("/errors", (HttpContext http) => Page(http, "Problem codes", Index())).ExcludeFromDescription();
        app.MapGet("/errors/{code}", (HttpContext http, string code) =>
        {
            if (!ProblemCatalog.TryGet(code, out var error) || !s_explanations.TryGetValue(code, out var explanation))
            {
                throw new Appliance.Errors.MfaException(Appliance.Errors.ErrorCode.NotFound, "no such problem code; GET /errors lists them", "code");
            }

            var status = ProblemCatalog.StatusOf(error);
            if (http.Request.GetTypedHeaders().Accept.Any(a => a.MediaType.Value is "application/json"))
            {
                return Results.Json(new { code, title = error.Title, status, meaning = explanation.Meaning, action = explanation.Action });
            }

            var body = $"<p><code>{status} {Html(code)}</code></p><h2>What it means</h2><p>{Inline(explanation.Meaning)}</p><h2>What to do</h2><p>{Inline(explanation.Action)}</p><p><a href=\"/errors\">All problem codes</a></p>";
            return Page(http, error.Title, body);
        }).ExcludeFromDescription();
        return app;
    }

    private static string Index()
    {
        var sb = new StringBuilder("<table><tr><th>status</th><th>code</th><th>what it means</th></tr>");
        foreach (var error in ProblemCatalog.All.OrderBy(ProblemCatalog.StatusOf).ThenBy(e => e.Code, StringComparer.Ordinal))
        {
            sb.Append(System.Globalization.CultureInfo.InvariantCulture, $"<tr><td>{ProblemCatalog.StatusOf(error)}</td><td><a href=\"/errors/{Html(error.Code)}\">{Html(error.Code)}</a></td><td>{Inline(Describe(error.Code).Meaning)}</td></tr>");
        }

        return sb.Append("</table>").ToString();
    }

    private static IResult Page(HttpContext http, string title, string body)
    {
        http.Response.Headers.ContentSecurityPolicy = "default-src 'none'";
        http.Response.Headers.CacheControl = "public, max-age=3600";
        return Results.Content($"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{Html(title)} · DevRift.Hsm</title></head><body><h1>{Html(title)}</h1>{body}</body></html>",
            "text/html; charset=utf-8");
    }

    private static string Html(string s) => WebUtility.HtmlEncode(s);

    /// <summary>HTML-encodes and turns `code spans` into &lt;code&gt;.</summary>
    private static string Inline(string s)
    {
        var parts = Html(s).Split('`');
        var sb = new StringBuilder();
        for (var i = 0; i < parts.Length; i++)
        {
            sb.Append(i % 2 == 1 ? $"<code>{parts[i]}</code>" : parts[i]);
        }

        return sb.ToString();
    }
}
