using Dapper;
using DevRift.Hsm.Appliance.Storage;

namespace DevRift.Hsm.Appliance.Outbox;

/// <summary>
/// How many messages wait in the outbox, by status, read at scrape time: one indexed count over the statuses that
/// still need work (<c>queued</c>, <c>sending</c>). Delivered, failed and test-mode rows are history, not depth.
/// </summary>
public sealed class OutboxDepth(Database db)
{
    public static readonly IReadOnlyList<string> Statuses = [OutboxStore.StatusQueued, OutboxStore.StatusSending];

    public async Task<IReadOnlyDictionary<string, long>> ReadAsync(CancellationToken ct = default)
    {
        var rows = await db.WithConnectionAsync(c => c.QueryAsync<Row>(
            new CommandDefinition(
                "SELECT status, COUNT(*) AS count FROM outbox WHERE status = @queued OR status = @sending GROUP BY status",
                new { queued = OutboxStore.StatusQueued, sending = OutboxStore.StatusSending }, commandTimeout: 2, cancellationToken: ct)), ct);
        var depth = Statuses.ToDictionary(s => s, _ => 0L, StringComparer.Ordinal);
        foreach (var row in rows)
        {
            depth[row.Status] = row.Count;
        }

        return depth;
    }

    private sealed class Row
    {
        public string Status { get; init; } = "";

        public long Count { get; init; }
    }
}
