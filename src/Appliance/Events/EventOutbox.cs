using System.Data.Common;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapper;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Appliance.Users;
using Microsoft.Extensions.Options;

namespace DevRift.Hsm.Appliance.Events;

/// <summary>An event claimed by one dispatcher node: its exact body and how often it was tried.</summary>
public sealed record ClaimedEvent(string Id, string ApplicationId, string Type, string Payload, int Attempts, DateTimeOffset GiveUpAt);

/// <summary>
/// The durable event outbox. <see cref="EnqueueAsync"/> runs inside the transaction of the change an event reports,
/// so the event commits (or not) with it; an application without an endpoint, or whose endpoint does not subscribe to
/// the type, stores nothing. The dispatcher's side claims due events with a lease (one claimant per row across
/// nodes) and records outcomes.
/// </summary>
public sealed class EventOutbox(Database db, TimeProvider time, IOptions<EventOptions> options)
{
    public const string StatusQueued = "queued";
    public const string StatusSending = "sending";
    public const string StatusDelivered = "delivered";
    public const string StatusFailed = "failed";

    private static readonly JsonSerializerOptions s_json = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Enqueues events of one application and mode in the caller's transaction (nothing when it has no endpoint for them).</summary>
    public async Task EnqueueAsync(DbConnection connection, DbTransaction transaction, string applicationId, string mode, IReadOnlyList<PendingEvent> events)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(events);
        if (events.Count == 0)
        {
            return;
        }

        var filter = await connection.QuerySingleOrDefaultAsync<string>(
            "SELECT events FROM event_endpoints WHERE application_id = @applicationId", new { applicationId }, transaction);
        if (filter is null)
        {
            return;
        }

        var subscribed = EventEndpoints.Split(filter);
        var now = time.GetUtcNow();
        var nowMs = now.ToUnixTimeMilliseconds();
        var rows = events.Where(e => subscribed.Count == 0 || subscribed.Contains(e.Type, StringComparer.Ordinal)).Select(e =>
        {
            var id = Ids.New("evt_");
            return new
            {
                Id = id, ApplicationId = applicationId, Mode = mode, e.Type, Payload = Payload(id, applicationId, mode, e, now),
                Now = nowMs, GiveUpAt = (now + options.Value.RetryHorizon).ToUnixTimeMilliseconds(),
            };
        }).ToList();
        if (rows.Count > 0)
        {
            await connection.ExecuteAsync(
                $"""
                INSERT INTO events (id, application_id, mode, type, payload, status, attempts, next_attempt_at, created_at, give_up_at)
                VALUES (@Id, @ApplicationId, @Mode, @Type, @Payload, '{StatusQueued}', 0, @Now, @Now, @GiveUpAt)
                """, rows, transaction);
        }
    }

    /// <summary>
    /// Claims up to <paramref name="max"/> due events for <paramref name="node"/> until now + <paramref name="lease"/> in one
    /// statement (<c>FOR UPDATE SKIP LOCKED</c> on PostgreSQL; SQLite has one writer), oldest first.
    /// </summary>
    public Task<IReadOnlyList<ClaimedEvent>> ClaimAsync(string node, int max, TimeSpan lease, CancellationToken ct = default)
    {
        var now = time.GetUtcNow();
        var nowMs = now.ToUnixTimeMilliseconds();
        var until = (now + lease).ToUnixTimeMilliseconds();
        return db.InTransactionAsync(async (c, tx) =>
        {
            var rows = await c.QueryAsync<ClaimRow>(
                $"""
                UPDATE events SET status = '{StatusSending}', attempts = attempts + 1, claimed_by = @node, claimed_until = @until
                WHERE id IN (
                    SELECT id FROM events
                    WHERE status IN ('{StatusQueued}', '{StatusSending}') AND next_attempt_at <= @now AND give_up_at > @now
                      AND (claimed_until IS NULL OR claimed_until <= @now)
                    ORDER BY next_attempt_at, id LIMIT @max{db.Dialect.ForUpdateSkipLocked})
                  AND status IN ('{StatusQueued}', '{StatusSending}') AND (claimed_until IS NULL OR claimed_until <= @now)
                RETURNING id, application_id AS ApplicationId, type, payload, attempts, give_up_at AS GiveUpAt
                """,
                new { node, until, now = nowMs, max }, tx);
            return (IReadOnlyList<ClaimedEvent>)rows.Select(r => new ClaimedEvent(r.Id, r.ApplicationId, r.Type, r.Payload, (int)r.Attempts,
                DateTimeOffset.FromUnixTimeMilliseconds(r.GiveUpAt))).OrderBy(e => e.Id, StringComparer.Ordinal).ToList();
        }, ct);
    }

    /// <summary>The receiver answered 2xx: delivered (recorded even if the lease lapsed meanwhile — it did arrive).</summary>
    public Task MarkDeliveredAsync(ClaimedEvent claimed, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(claimed);
        return db.WithConnectionAsync(c => c.ExecuteAsync(
            $"UPDATE events SET status = '{StatusDelivered}', delivered_at = @now, claimed_until = NULL, last_error = NULL WHERE id = @Id",
            new { claimed.Id, now = time.GetUtcNow().ToUnixTimeMilliseconds() }), ct);
    }

    /// <summary>Given up: status <c>failed</c> with the last reason (past the horizon, or the endpoint was removed).</summary>
    public Task MarkFailedAsync(ClaimedEvent claimed, string reason, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(claimed);
        return db.WithConnectionAsync(c => c.ExecuteAsync(
            $"UPDATE events SET status = '{StatusFailed}', claimed_until = NULL, last_error = @reason WHERE id = @Id AND status <> '{StatusDelivered}'",
            new { claimed.Id, reason }), ct);
    }

    /// <summary>A failed attempt, due again at <paramref name="next"/>; only the claimant can record it.</summary>
    public Task RetryLaterAsync(ClaimedEvent claimed, string node, string reason, DateTimeOffset next, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(claimed);
        return db.WithConnectionAsync(c => c.ExecuteAsync(
            $"""
            UPDATE events SET status = '{StatusQueued}', next_attempt_at = @next, last_error = @reason, claimed_by = NULL, claimed_until = NULL
            WHERE id = @Id AND status = '{StatusSending}' AND claimed_by = @node
            """,
            new { claimed.Id, next = next.ToUnixTimeMilliseconds(), reason, node }), ct);
    }

    /// <summary>Gives a claim back untouched (the node is stopping): due again at once.</summary>
    public Task ReleaseAsync(ClaimedEvent claimed, string node, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(claimed);
        return db.WithConnectionAsync(c => c.ExecuteAsync(
            $"""
            UPDATE events SET status = '{StatusQueued}', next_attempt_at = @now, claimed_by = NULL, claimed_until = NULL
            WHERE id = @Id AND status = '{StatusSending}' AND claimed_by = @node
            """,
            new { claimed.Id, now = time.GetUtcNow().ToUnixTimeMilliseconds(), node }), ct);
    }

    /// <summary>Marks <c>failed</c> the events past their horizon that no node holds (e.g. after a long outage); returns how many.</summary>
    public Task<int> SweepAsync(CancellationToken ct = default) =>
        db.WithConnectionAsync(c => c.ExecuteAsync(
            $"""
            UPDATE events SET status = '{StatusFailed}', claimed_until = NULL, last_error = COALESCE(last_error, 'not attempted') || '; retry horizon passed'
            WHERE status IN ('{StatusQueued}', '{StatusSending}') AND give_up_at <= @now AND (claimed_until IS NULL OR claimed_until <= @now)
            """,
            new { now = time.GetUtcNow().ToUnixTimeMilliseconds() }), ct);

    /// <summary>The body as sent: <c>{"id","object":"event","type","created_at","livemode","application_id","data"}</c>.</summary>
    private static string Payload(string id, string applicationId, string mode, PendingEvent e, DateTimeOffset now)
    {
        var body = new JsonObject
        {
            ["id"] = id,
            ["object"] = "event",
            ["type"] = e.Type,
            ["created_at"] = now.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture),
            ["livemode"] = mode == Modes.Live,
            ["application_id"] = applicationId,
            ["data"] = e.Data.DeepClone(),
        };
        return body.ToJsonString(s_json);
    }

    private sealed class ClaimRow
    {
        public string Id { get; init; } = "";

        public string ApplicationId { get; init; } = "";

        public string Type { get; init; } = "";

        public string Payload { get; init; } = "";

        public long Attempts { get; init; }

        public long GiveUpAt { get; init; }
    }
}
