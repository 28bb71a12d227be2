using System.Text.Json;

namespace DevRift.Client;

/// <summary>How a one-time code is delivered by <see cref="DevRiftClient.SendCodeAsync(SendCodeRequest, CancellationToken)"/>.</summary>
public enum DeliveryChannel
{
    /// <summary>By email.</summary>
    Email,

    /// <summary>By SMS.</summary>
    Sms,

    /// <summary>By WhatsApp.</summary>
    WhatsApp,

    /// <summary>By a voice call that reads the digits.</summary>
    Call,

    /// <summary>One code by email and SMS at once (user is <c>email:phone</c>; Enterprise plan).</summary>
    Dual,
}

/// <summary>What <see cref="DevRiftClient.VerifyAsync(VerifyRequest, CancellationToken)"/> checks.</summary>
public enum VerificationType
{
    /// <summary>The newest emailed code.</summary>
    Email,

    /// <summary>The newest code sent by SMS, WhatsApp or call.</summary>
    Phone,

    /// <summary>The authenticator app's current code (TOTP).</summary>
    App,

    /// <summary>The newest DUAL code.</summary>
    Dual,

    /// <summary>One of the user's backup codes.</summary>
    Backup,

    /// <summary>A security key's WebAuthn assertion.</summary>
    Key,
}

/// <summary>Where <see cref="DevRiftClient.GenerateBackupCodesAsync(GenerateBackupCodesRequest, CancellationToken)"/> delivers the codes.</summary>
public enum BackupDelivery
{
    /// <summary>To the user's email address.</summary>
    Email,

    /// <summary>To the user's phone by SMS.</summary>
    Sms,

    /// <summary>To both (user is <c>email:phone</c>).</summary>
    Dual,
}

/// <summary>A request to send a one-time code.</summary>
public sealed class SendCodeRequest
{
    /// <summary>The end user: an email address, a phone number (formatted to E.164 by the client), or <c>email:phone</c> for DUAL.</summary>
    public required string User { get; init; }

    /// <summary>The channel.</summary>
    public required DeliveryChannel Type { get; init; }

    /// <summary>
    /// Your own identifier of the end user (<c>user_id</c>; 1 to 128 printable ASCII characters, no spaces), or null.
    /// It names the identity that owns the user's factors, so the user verifies with any of their contacts; a contact
    /// that belongs to another <c>user_id</c> is refused (409 <c>identity_conflict</c>).
    /// </summary>
    public string? UserId { get; init; }

    /// <summary>The message's language (<c>en</c>, <c>fr</c> …); the application's default when null.</summary>
    public string? Locale { get; init; }

    /// <summary>
    /// The <c>Idempotency-Key</c> of this logical send; generated once when null. Every retry reuses it, so a retry
    /// never sends a second message. Reusing a key with a different request is refused (409 <c>idempotency_key_reused</c>).
    /// </summary>
    public string? IdempotencyKey { get; init; }

    /// <summary>
    /// The end user's IP address as your server sees it (e.g. <c>HttpContext.Connection.RemoteIpAddress</c>), sent as
    /// <c>client_ip</c>. Recorded in the send's audit record. The appliance trusts what you send: pass the address of the end user, not of a proxy.
    /// </summary>
    public System.Net.IPAddress? ClientIp { get; init; }

    /// <summary>
    /// A payment to bind the code to (PSD2 dynamic linking): the code is derived in the appliance's HSM over it, the
    /// message shows its amount and payee, and the verify must present the same transaction. Null for an ordinary code.
    /// </summary>
    public Transaction? Transaction { get; init; }
}

/// <summary>
/// A payment a code or a security-key assertion is bound to. The appliance answers it in canonical form: the amount with
/// exactly the currency's minor digits (<c>12.3</c> EUR → <c>12.30</c>), payee and reference trimmed and NFC-normalised.
/// </summary>
public sealed class Transaction
{
    /// <summary>A positive decimal such as <c>12.34</c>: at most the currency's ISO 4217 minor digits, no sign, no exponent, at most 18 digits.</summary>
    public required string Amount { get; init; }

    /// <summary>The upper-case ISO 4217 code, e.g. <c>EUR</c>.</summary>
    public required string Currency { get; init; }

    /// <summary>Whom the payment goes to, 1 to 140 characters, compared exactly ("ACME Ltd" is not "ACME Ltd.").</summary>
    public required string Payee { get; init; }

    /// <summary>The payment's reference, at most 140 characters; bound too when given.</summary>
    public string? Reference { get; init; }
}

/// <summary>A request to verify what a user typed (or a security key's assertion).</summary>
public sealed class VerifyRequest
{
    /// <summary>The end user, as in the send (phone numbers are formatted to E.164 by the client).</summary>
    public required string User { get; init; }

    /// <summary>What to check.</summary>
    public required VerificationType Type { get; init; }

    /// <summary>
    /// Your own identifier of the end user (<c>user_id</c>; 1 to 128 printable ASCII characters, no spaces), or null.
    /// It names the identity that owns the user's factors, so the user verifies with any of their contacts; a contact
    /// that belongs to another <c>user_id</c> is refused (409 <c>identity_conflict</c>).
    /// </summary>
    public string? UserId { get; init; }

    /// <summary>The code the user typed (every type but <see cref="VerificationType.Key"/>).</summary>
    public string? Code { get; init; }

    /// <summary>The WebAuthn assertion as JSON (base64url fields), for <see cref="VerificationType.Key"/>.</summary>
    public JsonElement? Credential { get; init; }

    /// <summary>
    /// The end user's IP address as your server sees it (e.g. <c>HttpContext.Connection.RemoteIpAddress</c>), sent as
    /// <c>client_ip</c>. With the lockout profile <c>source_aware</c> failed checks are then throttled per API key and address (IPv6 by /64) instead of per API key and user, so that one address guessing cannot lock the user out elsewhere. The appliance trusts what you send: pass the address of the end user, not of a proxy.
    /// </summary>
    public System.Net.IPAddress? ClientIp { get; init; }

    /// <summary>
    /// The payment being approved. Required, and exactly the same, when the code (or the assertion options) was issued for
    /// one: otherwise 401 <c>transaction_mismatch</c>. For <see cref="VerificationType.App"/> and
    /// <see cref="VerificationType.Backup"/> the appliance records it in the audit log and echoes it.
    /// </summary>
    public Transaction? Transaction { get; init; }
}

/// <summary>A request for a new set of backup codes.</summary>
public sealed class GenerateBackupCodesRequest
{
    /// <summary>The end user.</summary>
    public required string User { get; init; }

    /// <summary>Where the codes go.</summary>
    public required BackupDelivery Type { get; init; }

    /// <summary>
    /// Your own identifier of the end user (<c>user_id</c>; 1 to 128 printable ASCII characters, no spaces), or null.
    /// It names the identity that owns the user's factors, so the user verifies with any of their contacts; a contact
    /// that belongs to another <c>user_id</c> is refused (409 <c>identity_conflict</c>).
    /// </summary>
    public string? UserId { get; init; }

    /// <summary>The message's language; the application's default when null.</summary>
    public string? Locale { get; init; }
}

/// <summary>A sent code's challenge.</summary>
public sealed class Challenge
{
    /// <summary>Always <c>challenge</c>.</summary>
    [System.Text.Json.Serialization.JsonPropertyName("object")]
    public string ObjectType { get; init; } = "";

    /// <summary>The challenge id, <c>mfa_…</c>.</summary>
    public string Id { get; init; } = "";

    /// <summary>The normalised user.</summary>
    public string User { get; init; } = "";

    /// <summary>The send's type (<c>EMAIL</c>, <c>SMS</c>, <c>WHATSAPP</c>, <c>CALL</c>, <c>DUAL</c>).</summary>
    public string Type { get; init; } = "";

    /// <summary><c>pending</c>, <c>approved</c>, <c>expired</c>, <c>max_attempts_reached</c> or <c>canceled</c>.</summary>
    public string Status { get; init; } = "";

    /// <summary>Delivery status per channel.</summary>
    public IReadOnlyList<ChallengeChannel> Channels { get; init; } = [];

    /// <summary>When the code was sent (UTC).</summary>
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>When the code stops verifying (UTC).</summary>
    public DateTimeOffset ExpiresAt { get; init; }

    /// <summary>Wrong codes still allowed on this challenge.</summary>
    public int AttemptsRemaining { get; init; }

    /// <summary>True for a live key, false in test mode.</summary>
    public bool Livemode { get; init; }

    /// <summary>The payment the challenge's codes are bound to (canonical form), or null.</summary>
    public Transaction? Transaction { get; init; }
}

/// <summary>One channel's delivery of a challenge.</summary>
public sealed class ChallengeChannel
{
    /// <summary><c>EMAIL</c>, <c>SMS</c>, <c>WHATSAPP</c> or <c>CALL</c>.</summary>
    public string Channel { get; init; } = "";

    /// <summary>The destination (email address or E.164 number).</summary>
    public string To { get; init; } = "";

    /// <summary><c>queued</c>, <c>sending</c>, <c>sent</c> or <c>failed</c>.</summary>
    public string Status { get; init; } = "";

    /// <summary>The last failure (while queued) or the final one (failed).</summary>
    public string? Reason { get; init; }

    /// <summary>When the status last changed (UTC).</summary>
    public DateTimeOffset UpdatedAt { get; init; }
}

/// <summary>A verification that passed (a failed one is a <see cref="DevRiftException"/> with status 401).</summary>
public sealed class Verification
{
    /// <summary>Always <c>verification</c>.</summary>
    [System.Text.Json.Serialization.JsonPropertyName("object")]
    public string ObjectType { get; init; } = "";

    /// <summary>Always true: the appliance answers 200 only for a valid code.</summary>
    public bool Valid { get; init; }

    /// <summary>The normalised user.</summary>
    public string User { get; init; } = "";

    /// <summary>The verified type.</summary>
    public string Type { get; init; } = "";

    /// <summary>When it was verified (UTC).</summary>
    public DateTimeOffset VerifiedAt { get; init; }

    /// <summary>True for a live key.</summary>
    public bool Livemode { get; init; }

    /// <summary>The payment this verification authorised (canonical form), or null when none was presented.</summary>
    public Transaction? Transaction { get; init; }
}

/// <summary>A started authenticator-app enrolment: the seed, shown once. Confirm it with a <see cref="VerificationType.App"/> verify.</summary>
public sealed class AppEnrollment
{
    /// <summary>Always <c>app_enrollment</c>.</summary>
    [System.Text.Json.Serialization.JsonPropertyName("object")]
    public string ObjectType { get; init; } = "";

    /// <summary>The enrolment id.</summary>
    public string Id { get; init; } = "";

    /// <summary>The normalised user.</summary>
    public string User { get; init; } = "";

    /// <summary><c>pending</c> until the first successful APP verify.</summary>
    public string Status { get; init; } = "";

    /// <summary>Base64 PNG of the otpauth URI, to show as an image.</summary>
    public string QrCode { get; init; } = "";

    /// <summary>The <c>otpauth://totp/…</c> URI (a secret: show it, never store or log it).</summary>
    public string OtpauthUri { get; init; } = "";

    /// <summary>The base32 seed for manual entry (a secret).</summary>
    public string Secret { get; init; } = "";

    /// <summary>The TOTP algorithm (<c>SHA1</c>, <c>SHA256</c>, <c>SHA512</c>).</summary>
    public string Algorithm { get; init; } = "";

    /// <summary>Digits per code.</summary>
    public int Digits { get; init; }

    /// <summary>Seconds per code.</summary>
    public int Period { get; init; }

    /// <summary>When the pending enrolment lapses (UTC).</summary>
    public DateTimeOffset ExpiresAt { get; init; }

    /// <summary>True for a live key.</summary>
    public bool Livemode { get; init; }
}

/// <summary>A generated set of backup codes; the codes themselves are delivered to the user, never returned.</summary>
public sealed class BackupCodeSet
{
    /// <summary>Always <c>backup_set</c>.</summary>
    [System.Text.Json.Serialization.JsonPropertyName("object")]
    public string ObjectType { get; init; } = "";

    /// <summary>The set's id.</summary>
    public string Id { get; init; } = "";

    /// <summary>The normalised user.</summary>
    public string User { get; init; } = "";

    /// <summary>How many codes.</summary>
    public int Count { get; init; }

    /// <summary>Characters per code.</summary>
    public int Length { get; init; }

    /// <summary>Where they were sent.</summary>
    public IReadOnlyList<MaskedDestination> Destinations { get; init; } = [];

    /// <summary>When (UTC).</summary>
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>True for a live key.</summary>
    public bool Livemode { get; init; }
}

/// <summary>A delivery destination, masked.</summary>
public sealed class MaskedDestination
{
    /// <summary><c>EMAIL</c> or <c>SMS</c>.</summary>
    public string Channel { get; init; } = "";

    /// <summary>The masked address or number.</summary>
    public string To { get; init; } = "";
}

/// <summary>A registered security key.</summary>
public sealed class SecurityKey
{
    /// <summary>Always <c>security_key</c>.</summary>
    [System.Text.Json.Serialization.JsonPropertyName("object")]
    public string ObjectType { get; init; } = "";

    /// <summary>The key's id, <c>key_…</c>.</summary>
    public string Id { get; init; } = "";

    /// <summary>The normalised user.</summary>
    public string User { get; init; } = "";

    /// <summary>The WebAuthn credential id (base64url).</summary>
    public string CredentialId { get; init; } = "";

    /// <summary>Transports the authenticator reported (<c>usb</c>, <c>nfc</c>, <c>internal</c> …).</summary>
    public IReadOnlyList<string> Transports { get; init; } = [];

    /// <summary>The authenticator model's AAGUID.</summary>
    public string Aaguid { get; init; } = "";

    /// <summary>When it was registered (UTC).</summary>
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>When it last verified (UTC), if ever.</summary>
    public DateTimeOffset? LastUsedAt { get; init; }

    /// <summary>True for a live key.</summary>
    public bool Livemode { get; init; }
}

/// <summary>What a user has enrolled.</summary>
public sealed class Factors
{
    /// <summary>Always <c>factors</c>.</summary>
    [System.Text.Json.Serialization.JsonPropertyName("object")]
    public string ObjectType { get; init; } = "";

    /// <summary>The normalised user.</summary>
    public string User { get; init; } = "";

    /// <summary>The authenticator-app factor.</summary>
    public AppFactor App { get; init; } = new();

    /// <summary>Registered security keys.</summary>
    public IReadOnlyList<SecurityKey> SecurityKeys { get; init; } = [];

    /// <summary>The backup-code set.</summary>
    public BackupCodeState BackupCodes { get; init; } = new();

    /// <summary>The user's lockout.</summary>
    public LockoutState Lockout { get; init; } = new();

    /// <summary>True for a live key.</summary>
    public bool Livemode { get; init; }
}

/// <summary>The authenticator-app factor's state.</summary>
public sealed class AppFactor
{
    /// <summary><c>none</c>, <c>pending</c> or <c>active</c>.</summary>
    public string Status { get; init; } = "";

    /// <summary>When it was enrolled (UTC).</summary>
    public DateTimeOffset? CreatedAt { get; init; }

    /// <summary>When its first code verified (UTC).</summary>
    public DateTimeOffset? ConfirmedAt { get; init; }
}

/// <summary>The backup-code set's state.</summary>
public sealed class BackupCodeState
{
    /// <summary>Unused codes.</summary>
    public int Remaining { get; init; }

    /// <summary>Codes in the set.</summary>
    public int Total { get; init; }

    /// <summary>When the set was made (UTC).</summary>
    public DateTimeOffset? CreatedAt { get; init; }
}

/// <summary>A user's lockout after consecutive failed TOTP or backup-code checks.</summary>
public sealed class LockoutState
{
    /// <summary>True while checks are refused.</summary>
    public bool Locked { get; init; }

    /// <summary>True when locked until the factor is reset.</summary>
    public bool HardLocked { get; init; }

    /// <summary>Failed checks in a row.</summary>
    public int ConsecutiveFailures { get; init; }

    /// <summary>When a temporary lock ends (UTC).</summary>
    public DateTimeOffset? LockedUntil { get; init; }
}

/// <summary>A message the appliance would have sent, kept in the test outbox (test keys only).</summary>
public sealed class TestMessage
{
    /// <summary>Always <c>test_message</c>.</summary>
    [System.Text.Json.Serialization.JsonPropertyName("object")]
    public string ObjectType { get; init; } = "";

    /// <summary>The message id.</summary>
    public string Id { get; init; } = "";

    /// <summary><c>EMAIL</c>, <c>SMS</c>, <c>WHATSAPP</c> or <c>CALL</c>.</summary>
    public string Channel { get; init; } = "";

    /// <summary>The destination.</summary>
    public string To { get; init; } = "";

    /// <summary>The email subject.</summary>
    public string? Subject { get; init; }

    /// <summary>The text, with the code in it.</summary>
    public string Body { get; init; } = "";

    /// <summary>When it was queued (UTC).</summary>
    public DateTimeOffset CreatedAt { get; init; }
}

/// <summary>A list answer, <c>{"object":"list","data":[…]}</c>.</summary>
/// <typeparam name="T">The item type.</typeparam>
public sealed class DevRiftList<T>
{
    /// <summary>Always <c>list</c>.</summary>
    [System.Text.Json.Serialization.JsonPropertyName("object")]
    public string ObjectType { get; init; } = "";

    /// <summary>The items.</summary>
    public IReadOnlyList<T> Data { get; init; } = [];
}
