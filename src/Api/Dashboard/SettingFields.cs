using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Errors;

namespace DevRift.Hsm.Api.Dashboard;

/// <summary>How one setting is edited on the settings form.</summary>
public enum SettingKind
{
    Integer,
    Choice,
    Text,
    Methods,
    Lines,
}

/// <summary>One setting of the contract as the form shows it: its range (as <see cref="ApplicationSettings.Validate"/> enforces it) and its default.</summary>
public sealed record SettingField(string Name, string Label, SettingKind Kind, string Range, string[]? Choices = null);

/// <summary>Every setting, in the order of the contract's table, and the form's values turned into a settings patch.</summary>
public static class SettingFields
{
    public static IReadOnlyList<SettingField> All { get; } =
    [
        new("enabled_methods", "Enabled methods", SettingKind.Methods, "any of " + string.Join(", ", ApplicationSettings.AllMethods) + " (DUAL needs the enterprise plan)"),
        new("code_length", "Code length", SettingKind.Integer, "4 to 10 digits"),
        new("code_lifetime_seconds", "Code lifetime (seconds)", SettingKind.Integer, "30 to 86400"),
        new("attempts_per_challenge", "Attempts per challenge", SettingKind.Integer, "1 to 100"),
        new("sends_per_destination", "Sends per destination", SettingKind.Integer, "1 to 10000 per send window"),
        new("send_window_seconds", "Send window (seconds)", SettingKind.Integer, "1 to 86400"),
        new("resend_cooldown_seconds", "Resend cooldown (seconds)", SettingKind.Integer, "0 to 3600"),
        new("sends_per_application_per_hour", "Sends per application per hour", SettingKind.Integer, "1 to 10000000"),
        new("totp_algorithm", "TOTP algorithm", SettingKind.Choice, "SHA1, SHA256 or SHA512", ["SHA1", "SHA256", "SHA512"]),
        new("totp_digits", "TOTP digits", SettingKind.Integer, "6 to 8"),
        new("totp_period_seconds", "TOTP period (seconds)", SettingKind.Integer, "15 to 300"),
        new("totp_window_back", "TOTP window back (steps)", SettingKind.Integer, "0 to 10"),
        new("totp_window_forward", "TOTP window forward (steps)", SettingKind.Integer, "0 to 10"),
        new("totp_issuer", "TOTP issuer", SettingKind.Text, "at most 64 characters, no ':'; empty: the application's name"),
        new("lockout_threshold", "Lockout threshold (failures)", SettingKind.Integer, "1 to 100"),
        new("lockout_seconds", "Lockout (seconds)", SettingKind.Integer, "1 to 86400"),
        new("hard_lock_threshold", "Hard lock threshold (failures)", SettingKind.Integer, "lockout threshold to 100000"),
        new("lockout_profile", "Lockout profile", SettingKind.Choice, "strict (any 5 failures lock the user) or source_aware (per source first)",
            [LockoutProfiles.Strict, LockoutProfiles.SourceAware]),
        new("source_failure_threshold", "Source failure threshold (failures)", SettingKind.Integer, "1 to 100"),
        new("source_delay_seconds", "Source delay (seconds)", SettingKind.Integer, "1 to 86400, doubled on each repeat"),
        new("source_delay_max_seconds", "Longest source delay (seconds)", SettingKind.Integer, "source delay to 2592000"),
        new("user_lockout_sources", "User lockout sources", SettingKind.Integer, "2 to 1000 distinct sources failing within the window"),
        new("user_lockout_window_seconds", "User lockout window (seconds)", SettingKind.Integer, "60 to 86400"),
        new("user_lockout_threshold", "User lockout threshold (failures)", SettingKind.Integer, "1 to 100000 from all sources"),
        new("backup_code_count", "Backup codes per set", SettingKind.Integer, "1 to 20"),
        new("backup_code_length", "Backup code length", SettingKind.Integer, "8 to 20 characters"),
        new("webauthn_rp_id", "WebAuthn relying party id", SettingKind.Text, "a host name such as example.com; empty: unset"),
        new("webauthn_origins", "WebAuthn origins (one per line)", SettingKind.Lines, "origins like https://login.example.com; none: the appliance's own"),
        new("webauthn_user_verification", "WebAuthn user verification", SettingKind.Choice, "required, preferred or discouraged", ["required", "preferred", "discouraged"]),
        new("webauthn_timeout_seconds", "WebAuthn timeout (seconds)", SettingKind.Integer, "30 to 3600"),
        new("fraud_guard_mode", "Fraud guard mode", SettingKind.Choice, "enforce refuses, shadow only records, off checks nothing", [.. FraudGuardModes.All]),
        new("allowed_countries", "Allowed countries (one per line)", SettingKind.Lines, "ISO 3166-1 alpha-2 codes such as GB; none: every country"),
        new("blocked_ranges", "Blocked ranges (one per line)", SettingKind.Lines, "E.164 prefixes such as +4470, on top of the shipped list"),
        new("velocity_per_prefix_per_hour", "Phone sends per country code per hour", SettingKind.Integer, "0 (no limit) to 10000000"),
        new("velocity_per_range_per_hour", "Phone sends per number range per hour", SettingKind.Integer, "0 (no limit) to 10000000; a range is the number without its last 3 digits"),
    ];

    /// <summary>The default of each setting on a plan, as the form shows it.</summary>
    public static string Default(SettingField field, string plan)
    {
        ArgumentNullException.ThrowIfNull(field);
        return Show(JsonSerializer.SerializeToNode(ApplicationSettings.DefaultsFor(plan), ApplicationSettings.Json)![field.Name]) is { Length: > 0 } s ? s : "unset";
    }

    /// <summary>A setting's value as text: lists joined, null empty.</summary>
    public static string Show(JsonNode? value) => value switch
    {
        null => "",
        JsonArray list => string.Join(", ", list.Select(i => i?.GetValue<string>())),
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        _ => value.ToJsonString(),
    };

    /// <summary>
    /// The patch the submitted form asks for: every field of the form, typed as the setting wants it. A number that is
    /// not one is 400 naming the field (before anything is written).
    /// </summary>
    public static JsonObject Patch(IFormCollection form)
    {
        ArgumentNullException.ThrowIfNull(form);
        var patch = new JsonObject();
        foreach (var field in All)
        {
            var raw = form[field.Name].ToString().Trim();
            patch[field.Name] = field.Kind switch
            {
                SettingKind.Methods => new JsonArray([.. form[field.Name].Where(m => !string.IsNullOrEmpty(m)).Select(m => (JsonNode)JsonValue.Create(m!))]),
                SettingKind.Lines => new JsonArray([.. raw.Split(['\n', ','], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(l => (JsonNode)JsonValue.Create(l))]),
                SettingKind.Integer => int.TryParse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n)
                    ? JsonValue.Create(n)
                    : throw new MfaException(ErrorCode.InvalidRequest, $"{field.Name} must be a whole number ({field.Range})", field.Name),
                SettingKind.Text => raw.Length == 0 ? null : JsonValue.Create(raw),
                _ => JsonValue.Create(raw),
            };
        }

        return patch;
    }
}
