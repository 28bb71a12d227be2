using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Fraud;
using DevRift.Hsm.Appliance.Users;

namespace DevRift.Hsm.Appliance.Applications;

/// <summary>Per-application settings of API.md, with their defaults and allowed ranges.</summary>
public sealed class ApplicationSettings
{
    public static readonly string[] AllMethods = ["EMAIL", "SMS", "WHATSAPP", "CALL", "DUAL", "APP", "KEY", "BACKUP"];

    public static JsonSerializerOptions Json { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    /// <summary>The settings that may be null (unset); every other one needs a value.</summary>
    private static readonly HashSet<string> Optional = new(StringComparer.Ordinal) { "totp_issuer", "webauthn_rp_id" };

    public List<string> EnabledMethods { get; set; } = ["EMAIL", "SMS", "WHATSAPP", "CALL", "APP", "KEY", "BACKUP"];

    public int CodeLength { get; set; } = 6;

    public int CodeLifetimeSeconds { get; set; } = 600;

    public int AttemptsPerChallenge { get; set; } = 5;

    public int SendsPerDestination { get; set; } = 5;

    public int SendWindowSeconds { get; set; } = 600;

    public int ResendCooldownSeconds { get; set; } = 30;

    public int SendsPerApplicationPerHour { get; set; } = 10_000;

    public string TotpAlgorithm { get; set; } = "SHA1";

    public int TotpDigits { get; set; } = 6;

    public int TotpPeriodSeconds { get; set; } = 30;

    public int TotpWindowBack { get; set; } = 1;

    public int TotpWindowForward { get; set; } = 1;

    /// <summary>Issuer shown in authenticator apps; the application's name when empty.</summary>
    public string? TotpIssuer { get; set; }

    public int LockoutThreshold { get; set; } = 5;

    public int LockoutSeconds { get; set; } = 300;

    public int HardLockThreshold { get; set; } = 100;

    /// <summary>
    /// <c>strict</c>: <see cref="LockoutThreshold"/> consecutive failures from anywhere lock the user (the behaviour
    /// before sources existed, and what an application stored without this setting keeps). <c>source_aware</c> (new
    /// applications): failures are throttled per source first, and the user lockout engages only on failures from
    /// many sources or far more attempts, and never refuses a source that has succeeded for the user before.
    /// </summary>
    public string LockoutProfile { get; set; } = LockoutProfiles.Strict;

    /// <summary>source_aware: failures from one source before that source is refused for a while.</summary>
    public int SourceFailureThreshold { get; set; } = 5;

    /// <summary>source_aware: the first refusal of a source, doubled on each further one up to <see cref="SourceDelayMaxSeconds"/>.</summary>
    public int SourceDelaySeconds { get; set; } = 60;

    public int SourceDelayMaxSeconds { get; set; } = 3_600;

    /// <summary>source_aware: distinct sources failing within <see cref="UserLockoutWindowSeconds"/> that lock the user.</summary>
    public int UserLockoutSources { get; set; } = 3;

    public int UserLockoutWindowSeconds { get; set; } = 900;

    /// <summary>source_aware: consecutive failures from all sources together that lock the user.</summary>
    public int UserLockoutThreshold { get; set; } = 50;

    public int BackupCodeCount { get; set; } = 10;

    public int BackupCodeLength { get; set; } = 13;

    /// <summary>WebAuthn relying-party id (a registrable domain, e.g. <c>example.com</c>).</summary>
    public string? WebauthnRpId { get; set; }

    /// <summary>Origins allowed in WebAuthn client data, e.g. <c>https://login.example.com</c>.</summary>
    public List<string> WebauthnOrigins { get; set; } = [];

    /// <summary>WebAuthn user verification: <c>required</c>, <c>preferred</c> or <c>discouraged</c>.</summary>
    public string WebauthnUserVerification { get; set; } = "preferred";

    /// <summary>How long registration and assertion options stay usable.</summary>
    public int WebauthnTimeoutSeconds { get; set; } = 300;

    /// <summary>
    /// The fraud guard for SMS, WHATSAPP and CALL sends (and the phone of a DUAL send): <c>enforce</c> refuses what
    /// its rules match, <c>shadow</c> only records what it would refuse, <c>off</c> evaluates nothing.
    /// </summary>
    public string FraudGuardMode { get; set; } = FraudGuardModes.Enforce;

    /// <summary>ISO 3166-1 alpha-2 countries a phone send may go to; empty: every country.</summary>
    public List<string> AllowedCountries { get; set; } = [];

    /// <summary>E.164 prefixes refused on top of the shipped list of high-cost ranges, e.g. <c>+4470</c>.</summary>
    public List<string> BlockedRanges { get; set; } = [];

    /// <summary>Phone sends per country calling code (+44, +1 …) per clock hour and mode; 0: no limit.</summary>
    public int VelocityPerPrefixPerHour { get; set; }

    /// <summary>Phone sends per number range (the E.164 number without its last 3 digits) per clock hour and mode; 0: no limit.</summary>
    public int VelocityPerRangePerHour { get; set; }

    public static ApplicationSettings DefaultsFor(string plan)
    {
        var settings = new ApplicationSettings { LockoutProfile = LockoutProfiles.SourceAware };
        if (plan == Plans.Enterprise)
        {
            settings.EnabledMethods.Insert(4, "DUAL");
        }

        return settings;
    }

    public bool IsEnabled(string method) => EnabledMethods.Contains(method, StringComparer.Ordinal);

    public string Serialize() => JsonSerializer.Serialize(this, Json);

    public static ApplicationSettings Deserialize(string json) =>
        JsonSerializer.Deserialize<ApplicationSettings>(json, Json) ?? new ApplicationSettings();

    /// <summary>Applies a partial update (only the fields present) and validates the result.</summary>
    public ApplicationSettings Patch(JsonObject patch)
    {
        ArgumentNullException.ThrowIfNull(patch);
        var current = JsonSerializer.SerializeToNode(this, Json)!.AsObject();
        foreach (var (name, value) in patch)
        {
            if (!current.ContainsKey(name))
            {
                throw new MfaException(ErrorCode.InvalidRequest, $"'{name}' is not a setting", name);
            }

            if (value is null && !Optional.Contains(name))
            {
                throw new MfaException(ErrorCode.InvalidRequest, $"'{name}' cannot be null; give a value", name);
            }

            if (value is JsonArray items && items.Any(i => i is null))
            {
                throw new MfaException(ErrorCode.InvalidRequest, $"'{name}' must be a list of strings, without null", name);
            }

            current[name] = value?.DeepClone();
        }

        ApplicationSettings updated;
        try
        {
            updated = current.Deserialize<ApplicationSettings>(Json)
                ?? throw new MfaException(ErrorCode.InvalidRequest, "settings must be a JSON object");
        }
        catch (JsonException e)
        {
            var field = e.Path?.TrimStart('$', '.') is { Length: > 0 } p ? p : null;
            throw new MfaException(ErrorCode.InvalidRequest, $"'{field ?? "settings"}' has the wrong type", field);
        }

        updated.EnabledMethods = updated.EnabledMethods.Select(m => m.ToUpperInvariant()).Distinct().ToList();
        updated.FraudGuardMode = updated.FraudGuardMode.Trim().ToLowerInvariant();
        updated.AllowedCountries = updated.AllowedCountries.Select(c => c.Trim().ToUpperInvariant()).Distinct().ToList();
        updated.BlockedRanges = updated.BlockedRanges.Select(r => r.Replace(" ", "", StringComparison.Ordinal).Trim()).Distinct().ToList();
        updated.Validate();
        return updated;
    }

    public void Validate()
    {
        foreach (var m in EnabledMethods)
        {
            if (!AllMethods.Contains(m, StringComparer.Ordinal))
            {
                throw new MfaException(ErrorCode.InvalidRequest, $"enabled_methods: '{m}' is not one of {string.Join(", ", AllMethods)}", "enabled_methods");
            }
        }

        Range(CodeLength, 4, 10, "code_length");
        Range(CodeLifetimeSeconds, 30, 86_400, "code_lifetime_seconds");
        Range(AttemptsPerChallenge, 1, 100, "attempts_per_challenge");
        Range(SendsPerDestination, 1, 10_000, "sends_per_destination");
        Range(SendWindowSeconds, 1, 86_400, "send_window_seconds");
        Range(ResendCooldownSeconds, 0, 3_600, "resend_cooldown_seconds");
        Range(SendsPerApplicationPerHour, 1, 10_000_000, "sends_per_application_per_hour");
        if (TotpAlgorithm is not ("SHA1" or "SHA256" or "SHA512"))
        {
            throw new MfaException(ErrorCode.InvalidRequest, "totp_algorithm must be SHA1, SHA256 or SHA512", "totp_algorithm");
        }

        Range(TotpDigits, 6, 8, "totp_digits");
        Range(TotpPeriodSeconds, 15, 300, "totp_period_seconds");
        Range(TotpWindowBack, 0, 10, "totp_window_back");
        Range(TotpWindowForward, 0, 10, "totp_window_forward");
        if (TotpIssuer is { Length: > 64 } || (TotpIssuer?.Contains(':', StringComparison.Ordinal) ?? false))
        {
            throw new MfaException(ErrorCode.InvalidRequest, "totp_issuer must be at most 64 characters without ':'", "totp_issuer");
        }

        Range(LockoutThreshold, 1, 100, "lockout_threshold");
        Range(LockoutSeconds, 1, 86_400, "lockout_seconds");
        Range(HardLockThreshold, LockoutThreshold, 100_000, "hard_lock_threshold");
        if (LockoutProfile is not (LockoutProfiles.Strict or LockoutProfiles.SourceAware))
        {
            throw new MfaException(ErrorCode.InvalidRequest, "lockout_profile must be strict or source_aware", "lockout_profile");
        }

        Range(SourceFailureThreshold, 1, 100, "source_failure_threshold");
        Range(SourceDelaySeconds, 1, 86_400, "source_delay_seconds");
        Range(SourceDelayMaxSeconds, SourceDelaySeconds, 2_592_000, "source_delay_max_seconds");
        Range(UserLockoutSources, 2, 1_000, "user_lockout_sources");
        Range(UserLockoutWindowSeconds, 60, 86_400, "user_lockout_window_seconds");
        Range(UserLockoutThreshold, 1, 100_000, "user_lockout_threshold");
        Range(BackupCodeCount, 1, 20, "backup_code_count");
        Range(BackupCodeLength, 8, 20, "backup_code_length");
        if (WebauthnUserVerification is not ("required" or "preferred" or "discouraged"))
        {
            throw new MfaException(ErrorCode.InvalidRequest, "webauthn_user_verification must be required, preferred or discouraged", "webauthn_user_verification");
        }

        Range(WebauthnTimeoutSeconds, 30, 3_600, "webauthn_timeout_seconds");
        ValidateFraudGuard();
        if (WebauthnRpId is { Length: > 0 } rp && (rp.Contains("://", StringComparison.Ordinal) || rp.Contains('/', StringComparison.Ordinal) || rp.Contains(':', StringComparison.Ordinal)))
        {
            throw new MfaException(ErrorCode.InvalidRequest, "webauthn_rp_id must be a host name such as example.com (no scheme, port or path)", "webauthn_rp_id");
        }

        foreach (var origin in WebauthnOrigins)
        {
            if (!Uri.TryCreate(origin, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http") || uri.PathAndQuery != "/")
            {
                throw new MfaException(ErrorCode.InvalidRequest, $"webauthn_origins: '{origin}' is not an origin like https://login.example.com", "webauthn_origins");
            }
        }
    }

    private void ValidateFraudGuard()
    {
        if (!FraudGuardModes.All.Contains(FraudGuardMode, StringComparer.Ordinal))
        {
            throw new MfaException(ErrorCode.InvalidRequest, $"fraud_guard_mode must be {string.Join(", ", FraudGuardModes.All)}", "fraud_guard_mode");
        }

        foreach (var country in AllowedCountries)
        {
            if (!Countries.IsIso3166Alpha2(country))
            {
                throw new MfaException(ErrorCode.InvalidRequest, $"allowed_countries: '{country}' is not an ISO 3166-1 alpha-2 country code such as GB or US", "allowed_countries");
            }
        }

        Range(AllowedCountries.Count, 0, 300, "allowed_countries");
        foreach (var range in BlockedRanges)
        {
            if (range.Length is < 2 or > 16 || range[0] != '+' || !range.AsSpan(1).ContainsOnlyDigits() || range[1] == '0')
            {
                throw new MfaException(ErrorCode.InvalidRequest, $"blocked_ranges: '{range}' is not an E.164 prefix: '+' then 1 to 15 digits, e.g. +4470", "blocked_ranges");
            }
        }

        Range(BlockedRanges.Count, 0, 10_000, "blocked_ranges");
        Range(VelocityPerPrefixPerHour, 0, 10_000_000, "velocity_per_prefix_per_hour");
        Range(VelocityPerRangePerHour, 0, 10_000_000, "velocity_per_range_per_hour");
    }

    private static void Range(int value, int min, int max, string name)
    {
        if (value < min || value > max)
        {
            throw new MfaException(ErrorCode.InvalidRequest, $"{name} must be between {min} and {max}", name);
        }
    }
}

public static class Plans
{
    public const string Standard = "standard";
    public const string Enterprise = "enterprise";

    public static bool IsValid(string? plan) => plan is Standard or Enterprise;
}

/// <summary>The values of <see cref="ApplicationSettings.FraudGuardMode"/>.</summary>
public static class FraudGuardModes
{
    public const string Off = "off";
    public const string Shadow = "shadow";
    public const string Enforce = "enforce";

    public static readonly string[] All = [Off, Shadow, Enforce];
}

/// <summary>The values of the <c>lockout_profile</c> setting.</summary>
public static class LockoutProfiles
{
    public const string Strict = "strict";
    public const string SourceAware = "source_aware";
}

public static class Modes
{
    public const string Test = "test";
    public const string Live = "live";
}
