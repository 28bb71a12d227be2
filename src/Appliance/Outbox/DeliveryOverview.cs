using Dapper;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Storage;

namespace DevRift.Hsm.Appliance.Outbox;

/// <summary>A recent delivery failure: when, which channel and application, and the reason (never the destination or body).</summary>
public sealed record DeliveryFailure(string Id, string ApplicationId, string Channel, string? Reason, long Attempts, DateTimeOffset CreatedAt);

/// <summary>The outbox as an operator looks at it: how many live messages per status, the last failures, and test messages kept.</summary>
public sealed class DeliveryOverview(Database db)
{
    public async Task<IReadOnlyDictionary<string, long>> LiveCountsAsync(CancellationToken ct = default)
    {
        var rows = await db.WithConnectionAsync(c => c.QueryAsync<(string Status, long Count)>(
            "SELECT status, COUNT(*) FROM outbox WHERE mode = @mode GROUP BY status", new { mode = Modes.Live }), ct);
        return rows.ToDictionary(r => r.Status, r => r.Count, StringComparer.Ordinal);
    }

    public async Task<long> TestCountAsync(CancellationToken ct = default) =>
        await db.WithConnectionAsync(c => c.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM outbox WHERE mode = @mode", new { mode = Modes.Test }), ct);

    /// <summary>Failed live messages and those retrying after a failure, newest first.</summary>
    public async Task<IReadOnlyList<DeliveryFailure>> RecentFailuresAsync(int limit, CancellationToken ct = default)
    {
        var rows = await db.WithConnectionAsync(c => c.QueryAsync<Row>(
            """
            SELECT id, application_id AS ApplicationId, channel, last_error AS Reason, attempts, created_at AS CreatedAt FROM outbox
            WHERE mode = @mode AND last_error IS NOT NULL ORDER BY created_at DESC LIMIT @limit
            """, new { mode = Modes.Live, limit }), ct);
        return rows.Select(r => new DeliveryFailure(r.Id, r.ApplicationId, r.Channel, r.Reason, r.Attempts, DateTimeOffset.FromUnixTimeMilliseconds(r.CreatedAt))).ToList();
    }

    private sealed class Row
    {
        public string Id { get; init; } = "";

        public string ApplicationId { get; init; } = "";

        public string Channel { get; init; } = "";

        public string? Reason { get; init; }

        public long Attempts { get; init; }

        public long CreatedAt { get; init; }
    }
}
