using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using DevRift.Hsm.Appliance.Audit;
using DevRift.Hsm.Appliance.Errors;
using Microsoft.AspNetCore.Http.HttpResults;

namespace DevRift.Hsm.Api.Admin;

public sealed record AuditRecordResponse(
    long Seq, DateTime At, string Event, string Actor,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? ApplicationId,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Mode,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Subject,
    string Outcome, JsonNode? Detail)
{
    public static AuditRecordResponse From(AuditRecord r)
    {
        ArgumentNullException.ThrowIfNull(r);
        return new(r.Seq, r.At.UtcDateTime, r.Event, r.Actor, r.ApplicationId, r.Mode, r.Subject, r.Outcome, JsonNode.Parse(r.Detail));
    }
}

public sealed record AuditListResponse(
    string Object, IReadOnlyList<AuditRecordResponse> Data, bool HasMore,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] long? NextAfter);

public sealed record AuditVerifyResponse(
    bool Valid, long Records,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] long? FirstBad,
    long LastSeq,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? LastMac,
    long Pending)
{
    public static AuditVerifyResponse From(AuditVerification v)
    {
        ArgumentNullException.ThrowIfNull(v);
        return new(v.Valid, v.Records, v.FirstBad, v.LastSeq, v.LastMac is null ? null : Convert.ToHexStringLower(v.LastMac), v.Pending);
    }
}

/// <summary>The audit log and its chain check under <c>/admin/v1/audit</c> (operator token required).</summary>
public static class AuditEndpoints
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 1000;

    public static RouteGroupBuilder MapAudit(this RouteGroupBuilder admin)
    {
        ArgumentNullException.ThrowIfNull(admin);
        admin.MapGet("/audit", async (HttpContext http, AuditLog audit) =>
        {
            var query = http.Request.Query;
            foreach (var (name, values) in query)
            {
                if (!QueryParameters.Contains(name, StringComparer.Ordinal))
                {
                    throw new MfaException(ErrorCode.InvalidRequest, $"'{name}' is not a parameter of this endpoint; expected {string.Join(", ", QueryParameters)}", name);
                }

                if (values.Count > 1)
                {
                    throw new MfaException(ErrorCode.InvalidRequest, $"'{name}' is given more than once", name);
                }
            }

            var after = Parse(query["after"], "after", 0, long.MaxValue, 0);
            var limit = (int)Parse(query["limit"], "limit", 1, MaxLimit, DefaultLimit);
            var filter = Filter(query["event"], query["application_id"], query["subject"], query["outcome"], query["from"], query["to"]);
            return TypedResults.Ok(await ListAsync(audit, filter, after, limit, http.RequestAborted));
        }).WithSummary("Audit records after seq 'after' (default 0), oldest first, at most 'limit' (default 100, max 1000), filtered by event, application_id, subject, outcome and time (from inclusive, to exclusive); an unknown parameter is a 400");
        admin.MapGet("/audit/verify", async (AuditLog audit, CancellationToken ct) =>
            TypedResults.Ok(AuditVerifyResponse.From(await audit.VerifyAsync(ct))))
            .WithSummary("Recompute the audit chain in the HSM: valid, number of records, first bad seq");
        return admin;
    }

    /// <summary>The query parameters <c>GET /admin/v1/audit</c> takes; any other is refused.</summary>
    public static readonly string[] QueryParameters = ["after", "limit", "event", "application_id", "subject", "outcome", "from", "to"];

    public static Task<AuditListResponse> ListAsync(AuditLog audit, long after, int limit, CancellationToken ct = default) =>
        ListAsync(audit, AuditFilter.None, after, limit, ct);

    public static async Task<AuditListResponse> ListAsync(AuditLog audit, AuditFilter filter, long after, int limit, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(audit);
        var rows = await audit.QueryAsync(filter, after, limit + 1, ct);
        var hasMore = rows.Count > limit;
        var page = rows.Take(limit).Select(AuditRecordResponse.From).ToList();
        return new AuditListResponse("list", page, hasMore, hasMore ? page[^1].Seq : null);
    }

    /// <summary>
    /// The filter from its text form (empty means unset): a known event name, an application id, a subject as the
    /// API takes a user (normalised as the records store it), an outcome, and ISO 8601 times.
    /// </summary>
    public static AuditFilter Filter(string? evt, string? applicationId, string? subject, string? outcome, string? from, string? to)
    {
        evt = Empty(evt);
        if (evt is not null && !AuditEvents.All.Contains(evt, StringComparer.Ordinal))
        {
            throw new MfaException(ErrorCode.InvalidRequest, $"'event' must be one of {string.Join(", ", AuditEvents.All)}", "event");
        }

        subject = Empty(subject);
        if (subject is not null)
        {
            try
            {
                subject = Appliance.Users.MfaUser.Parse(subject).Key;
            }
            catch (MfaException)
            {
                // Not a user the API would take: matched as written (it then matches nothing).
            }
        }

        var fromTime = Time(from, "from");
        var toTime = Time(to, "to");
        if (fromTime is not null && toTime is not null && toTime <= fromTime)
        {
            throw new MfaException(ErrorCode.InvalidRequest, "'to' must be later than 'from'", "to");
        }

        return new AuditFilter(evt, Empty(applicationId), subject, Empty(outcome), fromTime, toTime);
    }

    private static string? Empty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    private static DateTimeOffset? Time(string? raw, string name)
    {
        raw = Empty(raw);
        if (raw is null)
        {
            return null;
        }

        return DateTimeOffset.TryParse(raw, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t)
            ? t
            : throw new MfaException(ErrorCode.InvalidRequest, $"'{name}' must be an ISO 8601 time such as 2026-06-01T12:00:00Z", name);
    }

    /// <summary>An optional integer in [min, max]; anything else is a 400 naming the field.</summary>
    public static long Parse(string? raw, string name, long min, long max, long @default)
    {
        if (string.IsNullOrEmpty(raw))
        {
            return @default;
        }

        return long.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max
            ? value
            : throw new MfaException(ErrorCode.InvalidRequest,
                max == long.MaxValue ? $"'{name}' must be an integer of at least {min}" : $"'{name}' must be an integer from {min} to {max}", name);
    }
}
