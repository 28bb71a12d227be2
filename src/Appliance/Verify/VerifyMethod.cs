using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Challenges;
using DevRift.Hsm.Appliance.Errors;

namespace DevRift.Hsm.Appliance.Verify;

/// <summary>What <c>POST /v1/mfa/verify</c> can check: the closed set of its <c>Type</c> values.</summary>
public enum VerifyMethod
{
    /// <summary>The newest pending email challenge.</summary>
    Email,

    /// <summary>The newest pending SMS, WhatsApp or voice challenge.</summary>
    Phone,

    /// <summary>A DUAL challenge: the email's or the phone's code.</summary>
    Dual,

    /// <summary>The authenticator app's TOTP.</summary>
    App,

    /// <summary>One of the user's backup codes.</summary>
    Backup,

    /// <summary>A WebAuthn assertion of one of the user's security keys.</summary>
    Key,
}

/// <summary>Names, parsing and policy of <see cref="VerifyMethod"/>, in one table.</summary>
public static class VerifyMethods
{
    private static readonly (VerifyMethod Method, string Name)[] s_table =
    [
        (VerifyMethod.Email, "EMAIL"), (VerifyMethod.Phone, "PHONE"), (VerifyMethod.App, "APP"),
        (VerifyMethod.Dual, "DUAL"), (VerifyMethod.Backup, "BACKUP"), (VerifyMethod.Key, "KEY"),
    ];

    /// <summary>The wire names, in the order the contract lists them.</summary>
    public static IReadOnlyList<string> Names { get; } = [.. s_table.Select(t => t.Name)];

    /// <summary>The wire name (<c>EMAIL</c>, <c>PHONE</c>, …).</summary>
    public static string Name(this VerifyMethod method) => s_table.First(t => t.Method == method).Name;

    /// <summary>The method a <c>Type</c> names (case-insensitive), or 400 <c>invalid_type</c>.</summary>
    public static VerifyMethod Parse(string? type)
    {
        var upper = type?.Trim().ToUpperInvariant();
        foreach (var (method, name) in s_table)
        {
            if (name == upper)
            {
                return method;
            }
        }

        throw new MfaException(ErrorCode.InvalidType, $"'type' must be one of {string.Join(", ", Names)}", "type");
    }

    /// <summary>The wire name of a known method, or null (for labels and records of free caller input).</summary>
    public static string? KnownName(string? type)
    {
        var upper = type?.Trim().ToUpperInvariant();
        return s_table.Any(t => t.Name == upper) ? upper : null;
    }

    /// <summary>Whether a failed check counts toward the user's lockout (shared by APP, BACKUP and KEY).</summary>
    public static bool SharesLockout(this VerifyMethod method) => method is VerifyMethod.App or VerifyMethod.Backup or VerifyMethod.Key;

    /// <summary>403 unless the application allows the method (and its plan, for DUAL).</summary>
    public static void EnsureEnabled(this VerifyMethod method, Application application)
    {
        ArgumentNullException.ThrowIfNull(application);
        var settings = application.Settings;
        if (method == VerifyMethod.Dual && application.Plan != Plans.Enterprise)
        {
            throw new MfaException(ErrorCode.PlanRequired, "the Dual MFA System needs the enterprise plan", "type");
        }

        var enabled = method switch
        {
            VerifyMethod.Email => settings.IsEnabled(Channels.Email),
            VerifyMethod.Phone => settings.IsEnabled(Channels.Sms) || settings.IsEnabled(Channels.WhatsApp) || settings.IsEnabled(Channels.Call),
            VerifyMethod.Dual => settings.IsEnabled(Channels.Dual),
            _ => settings.IsEnabled(method.Name()),
        };
        if (!enabled)
        {
            throw new MfaException(ErrorCode.MethodDisabled, method is VerifyMethod.Email or VerifyMethod.Phone or VerifyMethod.Dual
                ? $"{method.Name()} codes are not enabled in this application's settings"
                : $"{method.Name()} is not enabled in this application's settings", "type");
        }
    }
}
