using PhoneNumbers;

namespace DevRift.Client;

/// <summary>
/// Turns what users type into the E.164 form the appliance takes (<c>+14155552671</c>), with libphonenumber:
/// <c>+1 415 555 2671</c> as it is, or a national form such as <c>(415) 555-2671</c> read in a default region.
/// </summary>
public static class PhoneNumberFormatter
{
    private static readonly PhoneNumberUtil s_util = PhoneNumberUtil.GetInstance();

    /// <summary>Formats <paramref name="input"/> as E.164.</summary>
    /// <param name="input">The number as typed: spaces, dots, dashes and brackets are fine.</param>
    /// <param name="defaultRegion">ISO 3166 region (<c>US</c>, <c>GB</c> …) for numbers typed without <c>+</c>; null requires <c>+</c>.</param>
    /// <returns>The E.164 number, e.g. <c>+14155552671</c>.</returns>
    /// <exception cref="InvalidPhoneNumberException">The number is not valid; <see cref="InvalidPhoneNumberException.Reason"/> says why.</exception>
    public static string ToE164(string? input, string? defaultRegion = null)
    {
        var text = (input ?? "").Trim();
        if (text.Length == 0)
        {
            throw new InvalidPhoneNumberException(PhoneNumberProblem.Empty, "no phone number was given", nameof(input));
        }

        var region = string.IsNullOrWhiteSpace(defaultRegion) ? null : defaultRegion.Trim().ToUpperInvariant();
        if (region is not null && !s_util.GetSupportedRegions().Contains(region))
        {
            throw new InvalidPhoneNumberException(PhoneNumberProblem.InvalidCountryCode, $"'{region}' is not a region libphonenumber knows (use an ISO 3166 code such as US or GB)", nameof(defaultRegion));
        }

        if (region is null && !text.StartsWith('+'))
        {
            throw new InvalidPhoneNumberException(PhoneNumberProblem.MissingCountryCode,
                "the phone number has no country code: type it as +<country code><number> (e.g. +1 415 555 2671), or set a default region", nameof(input));
        }

        PhoneNumber number;
        try
        {
            number = s_util.Parse(text, region ?? "ZZ");
        }
        catch (NumberParseException e)
        {
            throw e.ErrorType switch
            {
                ErrorType.INVALID_COUNTRY_CODE => new InvalidPhoneNumberException(PhoneNumberProblem.InvalidCountryCode, "the phone number's country code does not exist", nameof(input)),
                ErrorType.TOO_SHORT_NSN or ErrorType.TOO_SHORT_AFTER_IDD => new InvalidPhoneNumberException(PhoneNumberProblem.TooShort, "the phone number is too short", nameof(input)),
                ErrorType.TOO_LONG => new InvalidPhoneNumberException(PhoneNumberProblem.TooLong, "the phone number is too long", nameof(input)),
                _ => new InvalidPhoneNumberException(PhoneNumberProblem.NotANumber, "this is not a phone number (expected digits such as +1 415 555 2671)", nameof(input)),
            };
        }

        var where = s_util.GetRegionCodeForNumber(number) ?? region ?? "its country";
        switch (s_util.IsPossibleNumberWithReason(number))
        {
            case PhoneNumberUtil.ValidationResult.INVALID_COUNTRY_CODE:
                throw new InvalidPhoneNumberException(PhoneNumberProblem.InvalidCountryCode, "the phone number's country code does not exist", nameof(input));
            case PhoneNumberUtil.ValidationResult.TOO_SHORT:
            case PhoneNumberUtil.ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
                throw new InvalidPhoneNumberException(PhoneNumberProblem.TooShort, $"the phone number is too short for {where}", nameof(input));
            case PhoneNumberUtil.ValidationResult.TOO_LONG:
                throw new InvalidPhoneNumberException(PhoneNumberProblem.TooLong, $"the phone number is too long for {where}", nameof(input));
            case PhoneNumberUtil.ValidationResult.INVALID_LENGTH:
                throw new InvalidPhoneNumberException(PhoneNumberProblem.NotAssigned, $"the phone number has a length {where} does not use", nameof(input));
        }

        if (!s_util.IsValidNumber(number))
        {
            throw new InvalidPhoneNumberException(PhoneNumberProblem.NotAssigned, $"the phone number is not one that {where} assigns", nameof(input));
        }

        return s_util.Format(number, PhoneNumberFormat.E164);
    }

    /// <summary>
    /// Normalises a <c>user</c> value the appliance takes: an email address is kept, a phone number is formatted to
    /// E.164, and <c>email:phone</c> (DUAL) gets its phone part formatted.
    /// </summary>
    /// <param name="user">Email, phone number, or email:phone.</param>
    /// <param name="defaultRegion">As for <see cref="ToE164"/>.</param>
    /// <returns>The value to send.</returns>
    /// <exception cref="InvalidPhoneNumberException">The phone part is not valid.</exception>
    public static string NormalizeUser(string user, string? defaultRegion = null)
    {
        ArgumentNullException.ThrowIfNull(user);
        var v = user.Trim();
        var at = v.IndexOf('@', StringComparison.Ordinal);
        if (at < 0)
        {
            return ToE164(v, defaultRegion);
        }

        var colon = v.LastIndexOf(':');
        return colon > at ? $"{v[..colon].Trim()}:{ToE164(v[(colon + 1)..], defaultRegion)}" : v;
    }
}
