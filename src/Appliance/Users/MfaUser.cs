using System.Globalization;
using System.Net.Mail;
using DevRift.Hsm.Appliance.Errors;
using PhoneNumbers;

namespace DevRift.Hsm.Appliance.Users;

/// <summary>
/// An end user as the integrator names them: an email address, an E.164 phone number, or for DUAL
/// <c>email:phone</c>. <see cref="Key"/> is the normalised contact; the identity that owns the user's factors is
/// found from it (and from <see cref="UserId"/>, when the integrator names one) by <see cref="Identities"/>.
/// </summary>
public sealed record MfaUser(string Key, string? Email, string? Phone)
{
    /// <summary>The longest <c>user_id</c> accepted.</summary>
    public const int MaxUserIdLength = 128;

    /// <summary>The integrator's own name for the end user (<c>user_id</c>), when given: it names the identity directly.</summary>
    public string? UserId { get; init; }

    /// <summary>This user with the integrator's <c>user_id</c> (validated; null or empty leaves it unset).</summary>
    public MfaUser WithUserId(string? userId) => this with { UserId = ParseUserId(userId) };

    /// <summary>
    /// A <c>user_id</c>: 1 to 128 printable ASCII characters without spaces (a UUID, a customer number, an LDAP DN
    /// without spaces…), compared exactly; or 400 <c>invalid_user_id</c>. Null or empty is "not given".
    /// </summary>
    public static string? ParseUserId(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }

        if (value.Length > MaxUserIdLength)
        {
            throw new MfaException(ErrorCode.InvalidUserId, $"'user_id' is longer than {MaxUserIdLength} characters", "user_id");
        }

        foreach (var c in value)
        {
            if (c is < '!' or > '~')
            {
                throw new MfaException(ErrorCode.InvalidUserId, "'user_id' must be printable ASCII without spaces (e.g. a customer number or a UUID)", "user_id");
            }
        }

        return value;
    }

    private static readonly PhoneNumberUtil s_phones = PhoneNumberUtil.GetInstance();

    public const string PhoneFormat = "E.164: '+' then country code and number, up to 15 digits, e.g. +14155550123";

    /// <summary>Parses any of the three forms; the form is decided by the content.</summary>
    public static MfaUser Parse(string? value, string param = "user")
    {
        var v = (value ?? "").Trim();
        if (v.Length == 0)
        {
            throw new MfaException(ErrorCode.InvalidUser, $"'{param}' is required: an email address, an E.164 phone number, or email:phone", param);
        }

        if (v.Length > 320)
        {
            throw new MfaException(ErrorCode.InvalidUser, $"'{param}' is longer than 320 characters", param);
        }

        if (v.Contains('@', StringComparison.Ordinal) && v.LastIndexOf(':') > v.IndexOf('@', StringComparison.Ordinal))
        {
            return ParseDual(v, param);
        }

        return v.Contains('@', StringComparison.Ordinal) ? ParseEmail(v, param) : ParsePhone(v, param);
    }

    /// <summary>Parses <c>email:phone</c> (in that order).</summary>
    public static MfaUser ParseDual(string? value, string param = "user")
    {
        var v = (value ?? "").Trim();
        var colon = v.LastIndexOf(':');
        if (colon <= 0 || !v[..colon].Contains('@', StringComparison.Ordinal))
        {
            throw new MfaException(ErrorCode.InvalidUser, $"'{param}' must be email:phone for DUAL, e.g. ada@example.com:+14155550123", param);
        }

        var email = ParseEmail(v[..colon], param).Email!;
        var phone = ParsePhone(v[(colon + 1)..], param).Phone!;
        return new MfaUser($"{email}:{phone}", email, phone);
    }

    public static MfaUser ParseEmail(string value, string param = "user")
    {
        var v = value.Trim();
        var at = v.LastIndexOf('@');
        if (at <= 0 || at == v.Length - 1 || v.Length > 254 || v.Any(char.IsWhiteSpace) || v.Contains(',', StringComparison.Ordinal)
            || !MailAddress.TryCreate(v, out var address) || !string.Equals(address.Address, v, StringComparison.Ordinal)
            || !v[(at + 1)..].Contains('.', StringComparison.Ordinal))
        {
            throw new MfaException(ErrorCode.InvalidEmail, $"'{param}' is not a valid email address (expected name@example.com)", param);
        }

        var normalised = v.ToLowerInvariant();
        return new MfaUser(normalised, normalised, null);
    }

    public static MfaUser ParsePhone(string value, string param = "user")
    {
        var v = value.Trim();
        if (v.Length < 2 || v[0] != '+' || v.Length > 16 || !v.AsSpan(1).ContainsOnlyDigits())
        {
            throw new MfaException(ErrorCode.InvalidPhoneNumber, $"'{param}' is not a valid phone number; expected {PhoneFormat}", param);
        }

        try
        {
            var number = s_phones.Parse(v, null);
            if (!s_phones.IsValidNumber(number))
            {
                throw new MfaException(ErrorCode.InvalidPhoneNumber, $"'{param}' is not a valid phone number: {WhyInvalid(number)}", param);
            }

            var e164 = s_phones.Format(number, PhoneNumberFormat.E164);
            return new MfaUser(e164, null, e164);
        }
        catch (NumberParseException e)
        {
            var why = e.ErrorType switch
            {
                ErrorType.INVALID_COUNTRY_CODE => "it does not start with a country calling code",
                ErrorType.TOO_SHORT_NSN or ErrorType.TOO_SHORT_AFTER_IDD => "too short after its country calling code",
                ErrorType.TOO_LONG => "too long",
                _ => $"expected {PhoneFormat}",
            };
            throw new MfaException(ErrorCode.InvalidPhoneNumber, $"'{param}' is not a valid phone number: {why}", param);
        }
    }

    /// <summary>Why libphonenumber refuses a number that has the E.164 shape, in words (never the number itself).</summary>
    private static string WhyInvalid(PhoneNumber number)
    {
        var region = s_phones.GetRegionCodeForCountryCode(number.CountryCode);
        var country = region == "ZZ" ? $"+{number.CountryCode}" : $"{region} (+{number.CountryCode})";
        return s_phones.IsPossibleNumberWithReason(number) switch
        {
            PhoneNumberUtil.ValidationResult.INVALID_COUNTRY_CODE => $"+{number.CountryCode} is not a country calling code",
            PhoneNumberUtil.ValidationResult.TOO_SHORT => $"too short for a number in {country}",
            PhoneNumberUtil.ValidationResult.TOO_LONG => $"too long for a number in {country}",
            PhoneNumberUtil.ValidationResult.INVALID_LENGTH => $"no number in {country} has this many digits",
            PhoneNumberUtil.ValidationResult.IS_POSSIBLE_LOCAL_ONLY => $"only dialable locally within {country}, not from abroad",
            _ => $"its length fits {country}, but it is not a possible number there (no such number range is in use)",
        };
    }

    public bool IsDual => Email is not null && Phone is not null;

    public override string ToString() => Key;
}

internal static class SpanDigits
{
    public static bool ContainsOnlyDigits(this ReadOnlySpan<char> s)
    {
        foreach (var c in s)
        {
            if (c is < '0' or > '9')
            {
                return false;
            }
        }

        return s.Length > 0;
    }
}

internal static class Ids
{
    private const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    /// <summary>A typed, random identifier such as <c>mfa_3k9…</c> (not a secret; 24 base62 characters).</summary>
    public static string New(string prefix, int length = 24) =>
        prefix + System.Security.Cryptography.RandomNumberGenerator.GetString(Alphabet, length);

    public static string Invariant(long value) => value.ToString(CultureInfo.InvariantCulture);
}
