using System.Reflection;
using System.Text.Json.Nodes;
using DevRift.Hsm.Appliance.Audit;
using DevRift.Hsm.Appliance.Errors;

namespace DevRift.Hsm.Appliance.Events;

/// <summary>An event to enqueue: its type and its <c>data</c> object (ids, types, outcomes — never a secret).</summary>
public sealed record PendingEvent(string Type, JsonObject Data);

/// <summary>
/// The event types an application's endpoint can receive, and how each is derived. Most are projections of an audit
/// record (<see cref="FromAudit"/>): the event is enqueued by <see cref="AuditLog"/> in the transaction that appends the
/// record, so an event exists exactly when its audit record does. The delivery events come from the outbox's outcomes
/// and from provider receipts.
/// </summary>
public static class EventTypes
{
    public const string VerificationApproved = "verification.approved";
    public const string VerificationFailed = "verification.failed";
    public const string ChallengeCreated = "challenge.created";
    public const string ChallengeSent = "challenge.sent";
    public const string ChallengeDelivered = "challenge.delivered";
    public const string ChallengeFailed = "challenge.failed";
    public const string LockoutEngaged = "lockout.engaged";
    public const string BackupCodesGenerated = "backup_codes.generated";
    public const string BackupCodesUsed = "backup_codes.used";
    public const string AppFactorEnrolled = "app_factor.enrolled";
    public const string AppFactorRemoved = "app_factor.removed";
    public const string SecurityKeyRegistered = "security_key.registered";
    public const string SecurityKeyRemoved = "security_key.removed";

    /// <summary>Every type, sorted (an endpoint's filter may name only these).</summary>
    public static IReadOnlyList<string> All { get; } = typeof(EventTypes).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(f => f.IsLiteral).Select(f => (string)f.GetRawConstantValue()!).Order(StringComparer.Ordinal).ToList();

    /// <summary>Audit detail fields that an event may carry; anything else in a record stays in the audit log.</summary>
    private static readonly string[] s_copied =
    [
        "type", "challenge_id", "channels", "backup_set_id", "count", "factor_id", "security_key_id", "consecutive_failures", "locked_until",
    ];

    /// <summary>Problem codes that mean "the check ran and failed" (a 401 or the lockout's 429), not "the request was refused".</summary>
    private static readonly HashSet<string> s_failedChecks = typeof(ErrorCode).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => f.GetValue(null)).OfType<ErrorCode>()
        .Where(c => c.Kind is ErrorKind.VerificationFailed or ErrorKind.TooManyAttempts)
        .Select(c => c.Code).ToHashSet(StringComparer.Ordinal);

    /// <summary>The events an audit record reports (none for most records).</summary>
    public static IReadOnlyList<PendingEvent> FromAudit(AuditEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (entry.ApplicationId is null)
        {
            return [];
        }

        string? type = (entry.Event, entry.Outcome) switch
        {
            (AuditEvents.Verification, "valid") => VerificationApproved,
            (AuditEvents.Verification, var o) when s_failedChecks.Contains(o) => VerificationFailed,
            (AuditEvents.ChallengeSend, "ok") => ChallengeCreated,
            (AuditEvents.LockoutEngaged, _) => LockoutEngaged,
            (AuditEvents.BackupCodesGenerate, "ok") => BackupCodesGenerated,
            (AuditEvents.AppFactorConfirm, "active") => AppFactorEnrolled,
            (AuditEvents.AppFactorRemove, "ok") => AppFactorRemoved,
            (AuditEvents.SecurityKeyRegister, "ok") => SecurityKeyRegistered,
            (AuditEvents.SecurityKeyRemove, "ok") => SecurityKeyRemoved,
            _ => null,
        };
        if (type is null)
        {
            return [];
        }

        var data = Data(entry);
        var events = new List<PendingEvent> { new(type, data) };
        if (type == VerificationApproved && data["type"]?.GetValue<string>() == "BACKUP")
        {
            events.Add(new PendingEvent(BackupCodesUsed, (JsonObject)data.DeepClone()));
        }

        return events;
    }

    private static JsonObject Data(AuditEntry entry)
    {
        var data = new JsonObject { ["user"] = entry.Subject };
        foreach (var name in s_copied)
        {
            if (entry.Detail?[name] is { } value)
            {
                data[name] = value.DeepClone();
            }
        }

        data["outcome"] = entry.Event == AuditEvents.Verification ? entry.Outcome == "valid" ? "approved" : "failed" : entry.Outcome;
        if (entry.Event == AuditEvents.Verification && entry.Outcome != "valid")
        {
            data["problem"] = entry.Outcome;
        }

        return data;
    }
}
