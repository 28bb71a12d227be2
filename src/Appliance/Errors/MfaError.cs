namespace DevRift.Hsm.Appliance.Errors;

/// <summary>What kind of failure a code is; the HTTP layer maps each kind to one status in one place.</summary>
public enum ErrorKind
{
    InvalidRequest,
    Unauthenticated,
    VerificationFailed,
    Forbidden,
    NotFound,
    Conflict,
    TooManyAttempts,
    RateLimited,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unavailable,
    Internal,
}

/// <summary>The closed set of problem codes of API.md, each with its kind and a title.</summary>
public sealed class ErrorCode
{
    private ErrorCode(string code, ErrorKind kind, string title)
    {
        Code = code;
        Kind = kind;
        Title = title;
    }

    public string Code { get; }

    public ErrorKind Kind { get; }

    public string Title { get; }

    public static readonly ErrorCode InvalidRequest = new("invalid_request", ErrorKind.InvalidRequest, "Invalid request");
    public static readonly ErrorCode InvalidUser = new("invalid_user", ErrorKind.InvalidRequest, "Invalid user");
    public static readonly ErrorCode InvalidPhoneNumber = new("invalid_phone_number", ErrorKind.InvalidRequest, "Invalid phone number");
    public static readonly ErrorCode InvalidEmail = new("invalid_email", ErrorKind.InvalidRequest, "Invalid email address");
    public static readonly ErrorCode InvalidType = new("invalid_type", ErrorKind.InvalidRequest, "Invalid type");
    public static readonly ErrorCode InvalidCodeFormat = new("invalid_code_format", ErrorKind.InvalidRequest, "Invalid code format");
    public static readonly ErrorCode InvalidUserId = new("invalid_user_id", ErrorKind.InvalidRequest, "Invalid user id");

    public static readonly ErrorCode InvalidApiKey = new("invalid_api_key", ErrorKind.Unauthenticated, "Invalid API key");
    public static readonly ErrorCode ClientCertificateRequired = new("client_certificate_required", ErrorKind.Unauthenticated, "Client certificate required");

    public static readonly ErrorCode InvalidCode = new("invalid_code", ErrorKind.VerificationFailed, "Invalid code");
    public static readonly ErrorCode CodeExpired = new("code_expired", ErrorKind.VerificationFailed, "Code expired");
    public static readonly ErrorCode NoPendingChallenge = new("no_pending_challenge", ErrorKind.VerificationFailed, "No pending challenge");
    public static readonly ErrorCode NotEnrolled = new("not_enrolled", ErrorKind.VerificationFailed, "Not enrolled");
    public static readonly ErrorCode TransactionMismatch = new("transaction_mismatch", ErrorKind.VerificationFailed, "Transaction mismatch");

    public static readonly ErrorCode MethodDisabled = new("method_disabled", ErrorKind.Forbidden, "Method disabled");
    public static readonly ErrorCode PlanRequired = new("plan_required", ErrorKind.Forbidden, "Plan required");
    public static readonly ErrorCode LiveModeForbidden = new("live_mode_forbidden", ErrorKind.Forbidden, "Not available in live mode");
    public static readonly ErrorCode ClientCertificateMismatch = new("client_certificate_mismatch", ErrorKind.Forbidden, "Client certificate mismatch");
    public static readonly ErrorCode CountryNotAllowed = new("country_not_allowed", ErrorKind.Forbidden, "Country not allowed");
    public static readonly ErrorCode DestinationBlocked = new("destination_blocked", ErrorKind.Forbidden, "Destination blocked");
    public static readonly ErrorCode InvalidSignature = new("invalid_signature", ErrorKind.Forbidden, "Invalid signature");

    public static readonly ErrorCode NotFound = new("not_found", ErrorKind.NotFound, "Not found");
    public static readonly ErrorCode IdempotencyKeyReused = new("idempotency_key_reused", ErrorKind.Conflict, "Idempotency key reused");
    public static readonly ErrorCode KeyInUse = new("key_in_use", ErrorKind.Conflict, "Key in use");
    public static readonly ErrorCode IdentityConflict = new("identity_conflict", ErrorKind.Conflict, "Identity conflict");

    public static readonly ErrorCode PayloadTooLarge = new("payload_too_large", ErrorKind.PayloadTooLarge, "Payload too large");
    public static readonly ErrorCode UnsupportedMediaType = new("unsupported_media_type", ErrorKind.UnsupportedMediaType, "Unsupported media type");

    public static readonly ErrorCode TooManyAttempts = new("too_many_attempts", ErrorKind.TooManyAttempts, "Too many attempts");
    public static readonly ErrorCode RateLimited = new("rate_limited", ErrorKind.RateLimited, "Rate limited");

    public static readonly ErrorCode HsmUnavailable = new("hsm_unavailable", ErrorKind.Unavailable, "HSM unavailable");
    public static readonly ErrorCode StorageUnavailable = new("storage_unavailable", ErrorKind.Unavailable, "Storage unavailable");
    public static readonly ErrorCode InternalError = new("internal_error", ErrorKind.Internal, "Internal error");
    public static readonly ErrorCode ChannelNotConfigured = new("channel_not_configured", ErrorKind.Unavailable, "Channel not configured");

    public override string ToString() => Code;
}

/// <summary>
/// A failure with a stable problem code. Messages name fields and expected formats, never a secret value.
/// </summary>
public sealed class MfaException : Exception
{
    public MfaException(ErrorCode error, string detail, string? param = null) : base(detail)
    {
        Error = error;
        Param = param;
    }

    public ErrorCode Error { get; }

    /// <summary>The request field at fault, when there is one.</summary>
    public string? Param { get; }

    /// <summary>Attempts left on the challenge or factor, where that applies.</summary>
    public int? AttemptsRemaining { get; init; }

    /// <summary>Seconds to wait (429), sent as <c>Retry-After</c>.</summary>
    public int? RetryAfterSeconds { get; init; }
}
