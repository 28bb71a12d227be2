using System.Text.Json.Nodes;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Errors;

namespace DevRift.Hsm.Appliance.Tests;

/// <summary>Per-application settings: the defaults of API.md, partial updates, and every range named in its error.</summary>
public sealed class ApplicationSettingsTests
{
    [Fact]
    public void Defaults_are_those_of_the_contract()
    {
        var s = ApplicationSettings.DefaultsFor(Plans.Standard);
        Assert.Equal(["EMAIL", "SMS", "WHATSAPP", "CALL", "APP", "KEY", "BACKUP"], s.EnabledMethods);
        Assert.Equal(6, s.CodeLength);
        Assert.Equal(600, s.CodeLifetimeSeconds);
        Assert.Equal(5, s.AttemptsPerChallenge);
        Assert.Equal(5, s.SendsPerDestination);
        Assert.Equal(600, s.SendWindowSeconds);
        Assert.Equal(30, s.ResendCooldownSeconds);
        Assert.Equal("SHA1", s.TotpAlgorithm);
        Assert.Equal(6, s.TotpDigits);
        Assert.Equal(30, s.TotpPeriodSeconds);
        Assert.Equal(1, s.TotpWindowBack);
        Assert.Equal(1, s.TotpWindowForward);
        Assert.Equal(5, s.LockoutThreshold);
        Assert.Equal(300, s.LockoutSeconds);
        Assert.Equal(100, s.HardLockThreshold);
        Assert.Equal(10, s.BackupCodeCount);
        Assert.Equal(13, s.BackupCodeLength);
        Assert.Equal(LockoutProfiles.SourceAware, s.LockoutProfile);
        Assert.Equal(5, s.SourceFailureThreshold);
        Assert.Equal(60, s.SourceDelaySeconds);
        Assert.Equal(3_600, s.SourceDelayMaxSeconds);
        Assert.Equal(3, s.UserLockoutSources);
        Assert.Equal(900, s.UserLockoutWindowSeconds);
        Assert.Equal(50, s.UserLockoutThreshold);
    }

    [Fact]
    public void An_application_stored_before_lockout_profiles_keeps_the_strict_lockout()
    {
        // Given settings JSON written before lockout_profile existed (every other setting present)
        var stored = JsonNode.Parse(ApplicationSettings.DefaultsFor(Plans.Standard).Serialize())!.AsObject();
        foreach (var name in (string[])["lockout_profile", "source_failure_threshold", "source_delay_seconds", "source_delay_max_seconds",
                     "user_lockout_sources", "user_lockout_window_seconds", "user_lockout_threshold"])
        {
            Assert.True(stored.Remove(name), name);
        }

        // Then it reads back as strict: an upgrade does not change how an existing application locks users out
        Assert.Equal(LockoutProfiles.Strict, ApplicationSettings.Deserialize(stored.ToJsonString()).LockoutProfile);
    }

    [Fact]
    public void Enterprise_adds_DUAL()
    {
        Assert.Contains("DUAL", ApplicationSettings.DefaultsFor(Plans.Enterprise).EnabledMethods);
        Assert.DoesNotContain("DUAL", ApplicationSettings.DefaultsFor(Plans.Standard).EnabledMethods);
    }

    [Fact]
    public void A_patch_changes_only_what_it_names_and_upper_cases_methods()
    {
        var s = ApplicationSettings.DefaultsFor(Plans.Standard)
            .Patch(new JsonObject { ["code_length"] = 8, ["enabled_methods"] = new JsonArray("email", "app", "EMAIL") });
        Assert.Equal(8, s.CodeLength);
        Assert.Equal(["EMAIL", "APP"], s.EnabledMethods);
        Assert.Equal(600, s.CodeLifetimeSeconds);
    }

    [Theory]
    [InlineData("code_length", 3, "between 4 and 10")]
    [InlineData("code_length", 11, "between 4 and 10")]
    [InlineData("totp_digits", 9, "between 6 and 8")]
    [InlineData("totp_period_seconds", 10, "between 15 and 300")]
    [InlineData("lockout_threshold", 0, "between 1 and 100")]
    [InlineData("hard_lock_threshold", 4, "between 5 and 100000")]
    [InlineData("backup_code_count", 0, "between 1 and 20")]
    [InlineData("backup_code_length", 21, "between 8 and 20")]
    [InlineData("webauthn_timeout_seconds", 5, "between 30 and 3600")]
    [InlineData("source_failure_threshold", 0, "between 1 and 100")]
    [InlineData("source_delay_seconds", 0, "between 1 and 86400")]
    [InlineData("source_delay_max_seconds", 59, "between 60 and 2592000")]
    [InlineData("user_lockout_sources", 1, "between 2 and 1000")]
    [InlineData("user_lockout_window_seconds", 59, "between 60 and 86400")]
    [InlineData("user_lockout_threshold", 0, "between 1 and 100000")]
    public void Out_of_range_values_name_the_field_and_the_range(string field, int value, string range)
    {
        var e = Assert.Throws<MfaException>(() => ApplicationSettings.DefaultsFor(Plans.Standard).Patch(new JsonObject { [field] = value }));
        Assert.Equal(ErrorCode.InvalidRequest, e.Error);
        Assert.Equal(field, e.Param);
        Assert.Contains(range, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("totp_algorithm", "MD5")]
    [InlineData("webauthn_user_verification", "always")]
    [InlineData("webauthn_rp_id", "https://example.com")]
    [InlineData("webauthn_rp_id", "example.com:443")]
    [InlineData("totp_issuer", "Acme:Bank")]
    [InlineData("lockout_profile", "lenient")]
    [InlineData("lockout_profile", "STRICT")]
    public void Invalid_choices_name_the_field(string field, string value)
    {
        var e = Assert.Throws<MfaException>(() => ApplicationSettings.DefaultsFor(Plans.Standard).Patch(new JsonObject { [field] = value }));
        Assert.Equal(field, e.Param);
    }

    [Theory]
    [InlineData("https://login.example.com/path")]
    [InlineData("ftp://example.com")]
    [InlineData("login.example.com")]
    public void Origins_must_be_bare_http_or_https_origins(string origin)
    {
        var e = Assert.Throws<MfaException>(() => ApplicationSettings.DefaultsFor(Plans.Standard)
            .Patch(new JsonObject { ["webauthn_origins"] = new JsonArray(origin) }));
        Assert.Equal("webauthn_origins", e.Param);
    }

    [Fact]
    public void Unknown_settings_and_wrong_types_are_named()
    {
        var unknown = Assert.Throws<MfaException>(() => ApplicationSettings.DefaultsFor(Plans.Standard).Patch(new JsonObject { ["colour"] = "blue" }));
        Assert.Equal("colour", unknown.Param);
        var wrongType = Assert.Throws<MfaException>(() => ApplicationSettings.DefaultsFor(Plans.Standard).Patch(new JsonObject { ["code_length"] = "six" }));
        Assert.Equal("code_length", wrongType.Param);
    }

    [Fact]
    public void Settings_round_trip_through_their_stored_form()
    {
        var s = ApplicationSettings.DefaultsFor(Plans.Enterprise).Patch(new JsonObject
        {
            ["webauthn_rp_id"] = "example.com", ["webauthn_origins"] = new JsonArray("https://login.example.com"), ["totp_algorithm"] = "SHA256",
        });
        var back = ApplicationSettings.Deserialize(s.Serialize());
        Assert.Equal(s.Serialize(), back.Serialize());
        Assert.Equal("example.com", back.WebauthnRpId);
        Assert.Equal(["https://login.example.com"], back.WebauthnOrigins);
    }
}
