using DevRift.Hsm.Appliance.Errors;

namespace DevRift.Hsm.Appliance.Challenges;

/// <summary>Delivery channels, the send types that use them, and the verify families that cover them.</summary>
public static class Channels
{
    public const string Email = "EMAIL";
    public const string Sms = "SMS";
    public const string WhatsApp = "WHATSAPP";
    public const string Call = "CALL";
    public const string Dual = "DUAL";

    public static readonly string[] All = [Email, Sms, WhatsApp, Call];

    /// <summary>Send types of <c>POST /v1/mfa</c>.</summary>
    public static readonly string[] SendTypes = [Email, Sms, WhatsApp, Call, Dual];

    /// <summary>The verify family a send type belongs to: EMAIL, PHONE (SMS, WhatsApp, voice) or DUAL.</summary>
    public static string Family(string sendType) => sendType switch
    {
        Email => "EMAIL",
        Sms or WhatsApp or Call => "PHONE",
        Dual => "DUAL",
        _ => throw new ArgumentOutOfRangeException(nameof(sendType)),
    };

    public static string ParseSendType(string? value)
    {
        var t = value?.Trim().ToUpperInvariant();
        return t is not null && SendTypes.Contains(t, StringComparer.Ordinal)
            ? t
            : throw new MfaException(ErrorCode.InvalidType, $"'type' must be one of {string.Join(", ", SendTypes)}", "type");
    }
}
