using System.Net;

namespace DevRift.Client;

/// <summary>
/// The appliance refused a request: its RFC 9457 problem (status, stable <see cref="Code"/>, the field at fault,
/// attempts left, when to try again). Verification failures are this exception with status 401 and a code such as
/// <c>invalid_code</c> or <c>code_expired</c>.
/// </summary>
public class DevRiftException : Exception
{
    /// <summary>Creates an exception for a problem answered by the appliance.</summary>
    /// <param name="status">The HTTP status.</param>
    /// <param name="code">The problem's stable code, e.g. <c>invalid_code</c>.</param>
    /// <param name="message">The problem's detail.</param>
    public DevRiftException(HttpStatusCode status, string code, string message) : base(message)
    {
        Status = status;
        Code = code;
    }

    /// <summary>The HTTP status (400, 401, 403, 404, 409, 413, 415, 429, 503 …).</summary>
    public HttpStatusCode Status { get; }

    /// <summary>The stable problem code (<c>invalid_phone_number</c>, <c>invalid_code</c>, <c>rate_limited</c>, <c>destination_blocked</c> …); see the appliance's <c>/errors/{code}</c> pages.</summary>
    public string Code { get; }

    /// <summary>The request field at fault (<c>user</c>, <c>type</c>, <c>code</c> …), when the problem names one.</summary>
    public string? Param { get; init; }

    /// <summary>Attempts left on the challenge or factor, for a failed verification.</summary>
    public int? AttemptsRemaining { get; init; }

    /// <summary>How long to wait before trying again (429 and 503), from <c>Retry-After</c>.</summary>
    public TimeSpan? RetryAfter { get; init; }

    /// <summary>The problem's short title, e.g. "Invalid code".</summary>
    public string? Title { get; init; }

    /// <summary>The problem's <c>type</c> URL: a page about this code.</summary>
    public Uri? Type { get; init; }

    /// <summary>True when the failure is a verification that did not pass (401 other than a bad key or certificate).</summary>
    public bool IsVerificationFailure =>
        Status == HttpStatusCode.Unauthorized && Code is not ("invalid_api_key" or "client_certificate_required");
}

/// <summary>A phone number that cannot be turned into E.164; <see cref="Reason"/> says why.</summary>
public sealed class InvalidPhoneNumberException : ArgumentException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="reason">Why the number was refused.</param>
    /// <param name="message">A sentence naming the reason and the expected format.</param>
    /// <param name="paramName">The argument that held the number.</param>
    public InvalidPhoneNumberException(PhoneNumberProblem reason, string message, string? paramName = null) : base(message, paramName) =>
        Reason = reason;

    /// <summary>Why the number was refused.</summary>
    public PhoneNumberProblem Reason { get; }
}

/// <summary>Why a phone number was refused by <see cref="PhoneNumberFormatter"/>.</summary>
public enum PhoneNumberProblem
{
    /// <summary>Nothing was given.</summary>
    Empty,

    /// <summary>Not a phone number at all (letters, too few digits).</summary>
    NotANumber,

    /// <summary>No <c>+</c> country code, and no default region to read it in.</summary>
    MissingCountryCode,

    /// <summary>The country code or the default region is not one that exists.</summary>
    InvalidCountryCode,

    /// <summary>Too few digits for that country.</summary>
    TooShort,

    /// <summary>Too many digits for that country.</summary>
    TooLong,

    /// <summary>The right length, but not a number that country assigns.</summary>
    NotAssigned,
}
