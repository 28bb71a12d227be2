using System.Text.Json.Nodes;
using DevRift.Hsm.Appliance.Applications;

namespace DevRift.Hsm.Appliance.Audit;

/// <summary>
/// One security event to append. <paramref name="Actor"/> is the API key id (<c>ak_…</c>) for integrator calls,
/// <c>operator</c> for operator actions, or <c>anonymous</c>. <paramref name="Subject"/> is the normalised end user
/// where there is one. <paramref name="Detail"/> is a small object of ids, types and counts — never a secret
/// (no code, seed, backup code, API key or operator token, PIN or otpauth URI).
/// </summary>
public sealed record AuditEntry(string Event, string Actor, string? ApplicationId, string? Mode, string? Subject, string Outcome, JsonObject? Detail = null)
{
    /// <summary>The actor of every operator action, through the API or the command line.</summary>
    public const string Operator = "operator";

    /// <summary>The actor of a request that presented no parseable key.</summary>
    public const string Anonymous = "anonymous";

    /// <summary>An event caused by an authenticated integrator call.</summary>
    public static AuditEntry ByCaller(ApiCaller caller, string evt, string? subject, string outcome, JsonObject? detail = null)
    {
        ArgumentNullException.ThrowIfNull(caller);
        if (caller.ClientIp is { } ip)
        {
            // The end user's address as the integrator asserted it: context, not a secret.
            detail ??= [];
            detail[ClientIp.Field] = ip.Address;
        }

        return new AuditEntry(evt, caller.KeyId, caller.Application.Id, caller.Mode, subject, outcome, detail);
    }

    /// <summary>
    /// A refused API key: the public key id (<c>ak_</c> and the ten characters after <c>sk_test_</c>/<c>sk_live_</c>)
    /// when the presented value has the shape of a key, else <c>anonymous</c>. Never the secret part.
    /// </summary>
    public static AuditEntry ApiKeyFailed(string? presented)
    {
        var parsed = SecretTokens.TryParse(presented, out var prefix, out var id) && prefix is "sk_test_" or "sk_live_";
        return new AuditEntry(AuditEvents.ApiKeyFailed, parsed ? "ak_" + id : Anonymous, null,
            parsed ? prefix[3..^1] : null, null, "invalid_api_key",
            new JsonObject { ["presented"] = presented is null ? "none" : parsed ? "key" : "malformed" });
    }

    /// <summary>A refused operator token: the public token id (<c>op_…</c>) when parseable. Never the secret part.</summary>
    public static AuditEntry OperatorFailed(string? presented)
    {
        var parsed = SecretTokens.TryParse(presented, out var prefix, out var id) && prefix == "adm_";
        return new AuditEntry(AuditEvents.OperatorAuthFailed, Operator, null, null, null, "invalid_api_key",
            new JsonObject { ["presented"] = presented is null ? "none" : parsed ? "token" : "malformed", ["operator_id"] = parsed ? "op_" + id : null });
    }
}

/// <summary>The event names of the audit log (stable: operators filter on them).</summary>
public static class AuditEvents
{
    public const string ApiKeyUsed = "api_key.used";
    public const string ApiKeyFailed = "api_key.failed";
    public const string ChallengeSend = "challenge.send";
    public const string Verification = "verification";
    public const string AppFactorEnrol = "app_factor.enrol";
    public const string AppFactorConfirm = "app_factor.confirm";
    public const string AppFactorRemove = "app_factor.remove";
    public const string SecurityKeyRegistrationOptions = "security_key.registration_options";
    public const string SecurityKeyRegister = "security_key.register";
    public const string SecurityKeyAssertionOptions = "security_key.assertion_options";
    public const string SecurityKeyRemove = "security_key.remove";
    public const string BackupCodesGenerate = "backup_codes.generate";
    public const string LockoutEngaged = "lockout.engaged";
    public const string FraudGuardBlock = "fraud_guard.block";
    public const string FraudGuardWouldBlock = "fraud_guard.would_block";
    public const string ApplicationCreate = "application.create";
    public const string SettingsUpdate = "settings.update";
    public const string ApiKeyCreate = "api_key.create";
    public const string ApiKeyRevoke = "api_key.revoke";
    public const string OperatorAction = "operator.action";
    public const string OperatorAuthFailed = "operator.auth_failed";
    public const string ApplianceInit = "appliance.init";
    public const string ApplicationUpdate = "application.update";
    public const string ApiKeyRoll = "api_key.roll";
    public const string ApiKeyLabel = "api_key.label";
    public const string ClientCertificateAdd = "client_certificate.add";
    public const string ClientCertificateRemove = "client_certificate.remove";
    public const string HsmKeyRotate = "hsm_key.rotate";
    public const string HsmKeyRetire = "hsm_key.retire";
    public const string OperatorTokenCreate = "operator_token.create";
    public const string OperatorTokenRevoke = "operator_token.revoke";
    public const string TestMessagesPurge = "test_messages.purge";
    public const string DashboardSignIn = "dashboard.sign_in";
    public const string DashboardSignOut = "dashboard.sign_out";

    /// <summary>Every event name, for filters that refuse a misspelt one.</summary>
    public static IReadOnlyList<string> All { get; } = typeof(AuditEvents).GetFields(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static)
        .Where(f => f.IsLiteral).Select(f => (string)f.GetRawConstantValue()!).Order(StringComparer.Ordinal).ToList();
}

/// <summary>Conditions on audit records; each one that is set must hold (<see cref="To"/> is exclusive).</summary>
public sealed record AuditFilter(string? Event = null, string? ApplicationId = null, string? Subject = null, string? Outcome = null,
    DateTimeOffset? From = null, DateTimeOffset? To = null)
{
    public static AuditFilter None { get; } = new();
}

/// <summary>A stored audit record.</summary>
public sealed record AuditRecord(
    long Seq, DateTimeOffset At, string Event, string Actor, string? ApplicationId, string? Mode, string? Subject, string Outcome,
    string Detail, int KeyVersion, byte[] Mac);

/// <summary>
/// The chain check: <paramref name="FirstBad"/> is the lowest seq at which the chain breaks (an edited or forged row,
/// the first missing seq of a gap, or the first seq past the stored rows that the head says exists).
/// <paramref name="LastSeq"/> and <paramref name="LastMac"/> are the head, for operators who anchor it elsewhere.
/// <paramref name="Pending"/> counts records written but not chained yet (committed while the check ran).
/// </summary>
public sealed record AuditVerification(bool Valid, long Records, long? FirstBad, long LastSeq, byte[]? LastMac, long Pending = 0);
