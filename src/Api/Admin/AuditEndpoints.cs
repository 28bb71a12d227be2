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
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? LastMac)
{
    public static AuditVerifyResponse From(AuditVerification v)
    {
        ArgumentNullException.ThrowIfNull(v);
        return new(v.Valid, v.Records, v.FirstBad, v.LastSeq, v.LastMac is null ? null : Convert.ToHexStringLower(v.LastMac));
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
            var after = Parse(http.Request.Query["after"], "after", 0, long.MaxValue, 0);
            var limit = (int)Parse(http.Request.Query["limit"], "limit", 1, MaxLimit, DefaultLimit);
            return TypedResults.Ok(await ListAsync(audit, after, limit, http.RequestAborted));
        }).WithSummary("Audit records after seq 'after' (default 0), oldest first, at most 'limit' (default 100, max 1000)");
        admin.MapGet("/audit/verify", async (AuditLog audit, CancellationToken ct) =>
            TypedResults.Ok(AuditVerifyResponse.From(await audit.VerifyAsync(ct))))
            .WithSummary("Recompute the audit chain in the HSM: valid, number of records, first bad seq");
        return admin;
    }

    public static async Task<AuditListResponse> ListAsync(AuditLog audit, long after, int limit, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(audit);
        var rows = await audit.ListAsync(after, limit + 1, ct);
        var hasMore = rows.Count > limit;
        var page = rows.Take(limit).Select(AuditRecordResponse.From).ToList();
        return new AuditListResponse("list", page, hasMore, hasMore ? page[^1].Seq : null);
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
