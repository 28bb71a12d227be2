using System.Text.Json.Nodes;
using Microsoft.OpenApi;

namespace DevRift.Hsm.Api.OpenApi;

/// <summary>Component schemas of the request bodies, the problem and the free-form answers, by name.</summary>
public static class RequestSchemas
{
    private const string UserDescription = "The end user: an email address, an E.164 phone number (+ then up to 15 digits), or email:phone for DUAL.";

    private const string UserIdDescription = "Optional: the integrator's own name for the end user (1 to 128 printable ASCII characters, no spaces). "
        + "It names the identity that owns the user's factors and backup codes; a request that creates factors links the contact in user to it. "
        + "Two different user_ids are never merged (409 identity_conflict).";

    public static IEnumerable<(string Name, OpenApiSchema Schema)> All()
    {
        yield return ("Problem", Object(
            ("type", Text("A page about this code: /errors/{code}.", format: "uri-reference"), true),
            ("title", Text("A short title of the code."), true),
            ("status", Integer("The HTTP status."), true),
            ("detail", Text("What was wrong, naming the field and the expected format (never a secret)."), true),
            ("code", Enum("The stable problem code.", ProblemCatalog.All.Select(e => e.Code)), true),
            ("param", Text("The request field at fault, when there is one."), false),
            ("attempts_remaining", Integer("Attempts left on the challenge or factor, for a failed verification."), false),
            ("retry_after", Integer("Seconds to wait (also sent as Retry-After)."), false)));
        yield return ("SendCodeRequest", Object(
            ("user", Text(UserDescription, example: "ada@example.com"), true),
            ("user_id", Text(UserIdDescription, example: "cust-42"), false),
            ("type", Enum("The channel; DUAL sends one code by email and SMS (enterprise plan).", ["EMAIL", "SMS", "WHATSAPP", "CALL", "DUAL"]), true),
            ("locale", Text("The message's language, e.g. en or fr (the application's default otherwise).", example: "en"), false),
            ("transaction", Reference("Transaction", "A payment to bind the code to (PSD2 dynamic linking): the message names its amount and payee, and verify must present it."), false),
            ("client_ip", ClientIp("Recorded in the send's audit detail."), false)));
        yield return ("Transaction", Object(
            ("amount", Text("A positive decimal with at most the currency's ISO 4217 minor digits (EUR 2, JPY 0, KWD 3), no sign or exponent, at most 18 digits; "
                + "answered in canonical form (12.3 EUR → 12.30).", example: "12.34"), true),
            ("currency", Text("An upper-case ISO 4217 alpha-3 code.", example: "EUR"), true),
            ("payee", Text("Whom the payment goes to: 1 to 140 characters, no control or format characters; trimmed and NFC-normalised. Compared exactly.", example: "ACME Ltd"), true),
            ("reference", Text("Optional: the payment's reference, at most 140 characters, same rules as payee.", example: "INV-1"), false)));
        yield return ("AssertionOptionsRequest", Object(
            ("user", Text(UserDescription, example: "ada@example.com"), true),
            ("user_id", Text(UserIdDescription, example: "cust-42"), false),
            ("transaction", Reference("Transaction", "A payment to bind the assertion to: the WebAuthn challenge is derived from it, and verify with Type=KEY must present it."), false)));
        yield return ("VerifyRequest", Object(
            ("user", Text(UserDescription, example: "ada@example.com"), true),
            ("user_id", Text(UserIdDescription, example: "cust-42"), false),
            ("type", Enum("What to check: PHONE covers SMS, WHATSAPP and CALL codes.", ["EMAIL", "PHONE", "APP", "DUAL", "BACKUP", "KEY"]), true),
            ("code", Text("The code the user typed (all types but KEY).", example: "123456"), false),
            ("credential", WebAuthnJson("For KEY: the WebAuthn assertion response (JSON; JSON text in a form body)."), false),
            ("transaction", Reference("Transaction", "The payment being approved: required, and exactly the same, when the code or assertion options were issued for one "
                + "(else 401 transaction_mismatch); for APP and BACKUP, recorded in the audit log and echoed."), false),
            ("client_ip", ClientIp("With lockout_profile source_aware, failed APP, BACKUP and KEY checks are throttled per API key and client_ip (IPv6 by /64) instead of per API key and user."), false)));
        yield return ("UserRequest", Object(
            ("user", Text(UserDescription, example: "ada@example.com"), true),
            ("user_id", Text(UserIdDescription, example: "cust-42"), false)));
        yield return ("BackupCodesRequest", Object(
            ("user", Text(UserDescription, example: "ada@example.com"), true),
            ("user_id", Text(UserIdDescription, example: "cust-42"), false),
            ("type", Enum("Where the codes are delivered.", ["EMAIL", "SMS", "DUAL"]), true),
            ("locale", Text("The message's language.", example: "en"), false)));
        yield return ("SecurityKeyRegistrationRequest", Object(
            ("user", Text(UserDescription, example: "ada@example.com"), true),
            ("user_id", Text(UserIdDescription, example: "cust-42"), false),
            ("credential", WebAuthnJson("The WebAuthn attestation response (JSON; JSON text in a form body)."), true)));
        yield return ("WebAuthnOptions", new OpenApiSchema
        {
            Type = JsonSchemaType.Object,
            Description = "Standard WebAuthn options (JSON, binary fields base64url), to hand to navigator.credentials as they are.",
            AdditionalPropertiesAllowed = true,
        });
        yield return ("CreateApplicationRequest", Object(
            ("name", Text("The application's name (shown in messages and as the TOTP issuer).", example: "Billing"), true),
            ("plan", Enum("The plan; DUAL needs enterprise.", ["standard", "enterprise"]), false)));
        yield return ("CreateApiKeyRequest", Object(
            ("mode", Enum("test keys never deliver; live keys do.", ["test", "live"]), true),
            ("label", Text("What the key is for (at most 100 characters).", example: "checkout service"), false)));
        yield return ("UpdateApplicationRequest", Object(
            ("name", Text("The new name (1 to 100 characters).", example: "Billing"), false),
            ("plan", Enum("The plan; DUAL needs enterprise (a downgrade removes DUAL from the enabled methods).", ["standard", "enterprise"]), false)));
        yield return ("LabelApiKeyRequest", Object(("label", Text("The label; null or empty clears it.", example: "checkout service"), true)));
        yield return ("RollApiKeyRequest", Object(
            ("overlap_seconds", Integer("How long the old key keeps working, 0 to 2592000 (default 3600); then it is refused by itself."), false)));
        yield return ("CreateOperatorTokenRequest", Object(("label", Text("Who or what holds the token (1 to 100 characters).", example: "on-call laptop"), true)));
        yield return ("RegisterClientCertificateRequest", Object(
            ("thumbprint", Text("SHA-256 thumbprint in hex (colons allowed).", example: "3A5F…"), false),
            ("pem", Text("The PEM certificate instead (subject and expiry are then shown)."), false)));
        yield return ("EventEndpointRequest", Object(
            ("url", Text("Where events are POSTed: an absolute http:// or https:// URL.", format: "uri", example: "https://hooks.example.com/devrift"), true),
            ("events", new OpenApiSchema
            {
                Type = JsonSchemaType.Array,
                Description = "Only these event types (all when absent or empty).",
                Items = Enum("An event type.", DevRift.Hsm.Appliance.Events.EventTypes.All),
            }, false)));
        var rotateSecret = Object();
        rotateSecret.Description = "No fields: the appliance generates the new secret.";
        yield return ("RotateEventSecretRequest", rotateSecret);
        yield return ("RotateKeyRequest", Object(("purpose", Enum("The key to rotate.", ["seed-kek", "code", "lookup", "seal", "audit"]), true)));
        yield return ("RetireKeyRequest", Object(
            ("purpose", Enum("The key's purpose.", ["seed-kek", "code", "lookup", "seal", "audit"]), true),
            ("version", Integer("The old version to destroy."), true)));
        var settings = Object(
            ("plan", Enum("The plan.", ["standard", "enterprise"]), false),
            ("enabled_methods", new OpenApiSchema { Type = JsonSchemaType.Array, Items = Enum("A method.", ["EMAIL", "SMS", "WHATSAPP", "CALL", "DUAL", "APP", "KEY", "BACKUP"]) }, false),
            ("code_length", Integer("4 to 10."), false),
            ("code_lifetime_seconds", Integer("30 to 86400."), false),
            ("attempts_per_challenge", Integer("1 to 100."), false),
            ("sends_per_destination", Integer("Per send window."), false),
            ("send_window_seconds", Integer("The send-limit window."), false),
            ("resend_cooldown_seconds", Integer("0 to 3600."), false),
            ("sends_per_application_per_hour", Integer("Per application and mode."), false),
            ("totp_algorithm", Enum("TOTP algorithm.", ["SHA1", "SHA256", "SHA512"]), false),
            ("totp_digits", Integer("6 to 8."), false),
            ("totp_period_seconds", Integer("15 to 300."), false),
            ("totp_window_back", Integer("0 to 10 steps."), false),
            ("totp_window_forward", Integer("0 to 10 steps."), false),
            ("totp_issuer", Text("At most 64 characters without ':'."), false),
            ("lockout_threshold", Integer("Failed checks before a lockout."), false),
            ("lockout_seconds", Integer("First lockout, doubled on each repeat."), false),
            ("hard_lock_threshold", Integer("Failed checks before a lock until reset."), false),
            ("lockout_profile", Enum("strict: lockout_threshold failures from anywhere lock the user; source_aware (new applications): per source first.", ["strict", "source_aware"]), false),
            ("source_failure_threshold", Integer("source_aware: failures from one source before it is refused, 1 to 100."), false),
            ("source_delay_seconds", Integer("source_aware: a source's first refusal, doubled on each repeat, 1 to 86400."), false),
            ("source_delay_max_seconds", Integer("source_aware: the longest refusal of a source, source_delay_seconds to 2592000."), false),
            ("user_lockout_sources", Integer("source_aware: distinct sources failing within the window that lock the user, 2 to 1000."), false),
            ("user_lockout_window_seconds", Integer("source_aware: the window for user_lockout_sources, 60 to 86400."), false),
            ("user_lockout_threshold", Integer("source_aware: failures from all sources together that lock the user, 1 to 100000."), false),
            ("backup_code_count", Integer("1 to 20."), false),
            ("backup_code_length", Integer("8 to 20."), false),
            ("webauthn_rp_id", Text("Relying-party id, a host name."), false),
            ("webauthn_origins", new OpenApiSchema { Type = JsonSchemaType.Array, Items = Text("An origin such as https://login.example.com.") }, false),
            ("webauthn_user_verification", Enum("User verification.", ["required", "preferred", "discouraged"]), false),
            ("webauthn_timeout_seconds", Integer("30 to 3600."), false),
            ("fraud_guard_mode", Enum("The fraud guard for phone sends: enforce refuses, shadow only records, off checks nothing.", ["off", "shadow", "enforce"]), false),
            ("allowed_countries", new OpenApiSchema { Type = JsonSchemaType.Array, Items = Text("An ISO 3166-1 alpha-2 country code; an empty list allows every country.", example: "GB") }, false),
            ("blocked_ranges", new OpenApiSchema { Type = JsonSchemaType.Array, Items = Text("An E.164 prefix refused on top of the shipped high-cost ranges.", example: "+4470") }, false),
            ("velocity_per_prefix_per_hour", Integer("Phone sends per country calling code per clock hour; 0 (default): no limit."), false),
            ("velocity_per_range_per_hour", Integer("Phone sends per number range (the number without its last 3 digits) per clock hour; 0 (default): no limit."), false));
        settings.Description = "The settings to change; each is validated against its range, unknown names are refused.";
        yield return ("SettingsPatch", settings);
        yield return ("Settings", new OpenApiSchema
        {
            Type = JsonSchemaType.Object,
            Description = "An application's settings: object, application_id, plan and every setting of SettingsPatch.",
            AdditionalPropertiesAllowed = true,
        });
    }

    private static OpenApiSchema Object(params (string Name, IOpenApiSchema Schema, bool Required)[] properties) => new()
    {
        Type = JsonSchemaType.Object,
        Properties = properties.ToDictionary(p => p.Name, p => p.Schema, StringComparer.Ordinal),
        Required = properties.Where(p => p.Required).Select(p => p.Name).ToHashSet(StringComparer.Ordinal),
    };

    private static OpenApiSchema Text(string description, string? format = null, string? example = null) => new()
    {
        Type = JsonSchemaType.String,
        Description = description,
        Format = format,
        Examples = example is null ? null : [JsonValue.Create(example)],
    };

    /// <summary>A property holding a component; form bodies carry a transaction as top-level Amount, Currency, Payee, Reference.</summary>
    private static OpenApiSchemaReference Reference(string component, string description) => new(component)
    {
        Description = description + " In a form body (URL-encoded or the documented comma form): the top-level fields Amount, Currency, Payee and Reference.",
    };

    private static OpenApiSchema ClientIp(string use) => Text(
        "The end user's IP address as the integrator sees it (IPv4 or IPv6, no port); Client-Ip in the comma form. Integrator-asserted, not checked. " + use,
        example: "203.0.113.7");

    private static OpenApiSchema Integer(string description) => new() { Type = JsonSchemaType.Integer, Format = "int32", Description = description };

    private static OpenApiSchema Enum(string description, IEnumerable<string> values) => new()
    {
        Type = JsonSchemaType.String,
        Description = description,
        Enum = values.Select(v => (JsonNode)JsonValue.Create(v)).ToList(),
    };

    private static OpenApiSchema WebAuthnJson(string description) => new()
    {
        Type = JsonSchemaType.Object,
        Description = description,
        AdditionalPropertiesAllowed = true,
    };
}
