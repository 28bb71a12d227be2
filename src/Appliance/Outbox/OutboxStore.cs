using System.Data.Common;
using System.Text.Json;
using Dapper;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Challenges;
using DevRift.Hsm.Appliance.Events;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Appliance.Users;
using DevRift.Hsm.Crypto;

namespace DevRift.Hsm.Appliance.Outbox;

/// <summary>A message to queue: sealed before the transaction that inserts it.</summary>
public sealed record PendingMessage(string Id, string Kind, string Channel, string Destination, string Locale, byte[] SealedBody);

/// <summary>A live message claimed by one dispatcher node, still sealed.</summary>
public sealed record ClaimedMessage(
    string Id, string? ChallengeId, string Kind, string Channel, string Destination, string Locale, byte[]? SealedBody,
    int Attempts, DateTimeOffset CreatedAt, DateTimeOffset ExpiresAt, string ApplicationId, string Mode);

/// <summary>A message as the test outbox shows it.</summary>
public sealed record TestMessage(string Id, string Channel, string To, string? Subject, string Body, DateTimeOffset CreatedAt);

/// <summary>
/// The durable outbox. Rows are written in the transaction that accepts the request; bodies are sealed with the
/// HSM seal key bound to the row id. Test-mode rows never leave: they stay readable in the test outbox. A challenge
/// message's outcomes (sent, failed for good or expired, and a provider's delivery receipt) enqueue the application's
/// <c>challenge.*</c> event in the transaction that records them.
/// </summary>
public sealed class OutboxStore(Database db, Sealer sealer, EventOutbox events)
{
    public const string StatusQueued = "queued";
    public const string StatusTest = "test";
    public const string StatusSending = "sending";
    public const string StatusSent = "sent";
    public const string StatusFailed = "failed";
    public const string StatusDelivered = "delivered";
    public const string StatusUndelivered = "undelivered";
    public const string ExpiredReason = "expired before delivery";

    /// <summary>Renders and seals a message (an HSM operation; do it before opening the transaction).</summary>
    public PendingMessage Prepare(string kind, string channel, string destination, string locale, RenderedMessage message)
    {
        var id = Ids.New("msg_");
        var json = JsonSerializer.SerializeToUtf8Bytes(new SealedContent(message.Subject, message.Body));
        try
        {
            return new PendingMessage(id, kind, channel, destination, locale, sealer.Seal(json, id));
        }
        finally
        {
            Array.Clear(json);
        }
    }

    /// <summary>Inserts queued messages inside the caller's transaction.</summary>
    public static Task InsertAsync(DbConnection connection, DbTransaction transaction, string applicationId, string mode,
        string? challengeId, IEnumerable<PendingMessage> messages, DateTimeOffset now, DateTimeOffset expiresAt)
    {
        var rows = messages.Select(m => new
        {
            m.Id,
            ApplicationId = applicationId,
            Mode = mode,
            ChallengeId = challengeId,
            m.Kind,
            m.Channel,
            m.Destination,
            m.Locale,
            m.SealedBody,
            Status = mode == Modes.Test ? StatusTest : StatusQueued,
            Now = now.ToUnixTimeMilliseconds(),
            ExpiresAt = expiresAt.ToUnixTimeMilliseconds(),
        });
        return connection.ExecuteAsync(
            """
            INSERT INTO outbox (id, application_id, mode, challenge_id, kind, channel, destination, locale, sealed_body,
                                status, attempts, next_attempt_at, created_at, expires_at)
            VALUES (@Id, @ApplicationId, @Mode, @ChallengeId, @Kind, @Channel, @Destination, @Locale, @SealedBody,
                    @Status, 0, @Now, @Now, @ExpiresAt)
            """, rows, transaction);
    }

    /// <summary>Messages the appliance would have sent to these destinations in test mode, newest first.</summary>
    public async Task<IReadOnlyList<TestMessage>> TestMessagesAsync(string applicationId, IReadOnlyCollection<string> destinations, int limit, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(destinations);
        if (destinations.Count is < 1 or > 2)
        {
            throw new ArgumentOutOfRangeException(nameof(destinations), "one email and/or one phone");
        }

        var rows = await db.WithConnectionAsync(c => c.QueryAsync<Row>(
            $"""
            SELECT id, channel, destination, sealed_body AS SealedBody, created_at AS CreatedAt FROM outbox
            WHERE application_id = @applicationId AND mode = '{Modes.Test}' AND destination IN (@d1, @d2) AND sealed_body IS NOT NULL
            ORDER BY created_at DESC, id DESC LIMIT @limit
            """,
            new { applicationId, d1 = destinations.First(), d2 = destinations.Last(), limit }), ct);
        return rows.Select(r =>
        {
            var plain = sealer.Open(r.SealedBody!, r.Id);
            try
            {
                var content = JsonSerializer.Deserialize<SealedContent>(plain)!;
                return new TestMessage(r.Id, r.Channel, r.Destination, content.Subject, content.Body, DateTimeOffset.FromUnixTimeMilliseconds(r.CreatedAt));
            }
            finally
            {
                Array.Clear(plain);
            }
        }).ToList();
    }

    /// <summary>Opens one sealed body (the dispatcher, just before delivery).</summary>
    public RenderedMessage Open(string id, byte[] sealedBody)
    {
        var plain = sealer.Open(sealedBody, id);
        try
        {
            var content = JsonSerializer.Deserialize<SealedContent>(plain)!;
            return new RenderedMessage(content.Subject, content.Body);
        }
        finally
        {
            Array.Clear(plain);
        }
    }

    // ---- the dispatcher's side: claims with a lease, outcomes, sweeps. Every change to an outbox row that belongs
    // to a challenge is mirrored on its challenge_channels row in the same transaction. ----

    /// <summary>
    /// Claims up to <paramref name="max"/> due live messages for <paramref name="node"/> until now + <paramref name="lease"/>:
    /// one statement, <c>FOR UPDATE SKIP LOCKED</c> on PostgreSQL (SQLite has one writer at a time), so each row has one
    /// claimant however many nodes poll. A row whose claimant died is due again once its lease has passed.
    /// </summary>
    public async Task<IReadOnlyList<ClaimedMessage>> ClaimAsync(string node, int max, DateTimeOffset now, TimeSpan lease, CancellationToken ct = default)
    {
        var nowMs = now.ToUnixTimeMilliseconds();
        var until = (now + lease).ToUnixTimeMilliseconds();
        return await db.InTransactionAsync(async (c, tx) =>
        {
            var rows = (await c.QueryAsync<ClaimRow>(
                $"""
                UPDATE outbox SET status = '{StatusSending}', attempts = attempts + 1, claimed_by = @node, claimed_until = @until
                WHERE id IN (
                    SELECT id FROM outbox
                    WHERE mode = '{Modes.Live}' AND status IN ('{StatusQueued}', '{StatusSending}') AND next_attempt_at <= @now
                      AND expires_at > @now AND (claimed_until IS NULL OR claimed_until <= @now) AND sealed_body IS NOT NULL
                    ORDER BY next_attempt_at, id LIMIT @max{db.Dialect.ForUpdateSkipLocked})
                  AND status IN ('{StatusQueued}', '{StatusSending}') AND (claimed_until IS NULL OR claimed_until <= @now)
                RETURNING id, challenge_id AS ChallengeId, kind, channel, destination, locale, sealed_body AS SealedBody,
                          attempts, created_at AS CreatedAt, expires_at AS ExpiresAt, application_id AS ApplicationId, mode
                """,
                new { node, until, now = nowMs, max }, tx)).ToList();
            await MirrorAsync(c, tx, rows.Select(r => (r.ChallengeId, r.Channel)), StatusSending, null, nowMs);
            return (IReadOnlyList<ClaimedMessage>)rows.Select(r => new ClaimedMessage(
                r.Id, r.ChallengeId, r.Kind, r.Channel, r.Destination, r.Locale, r.SealedBody, (int)r.Attempts,
                DateTimeOffset.FromUnixTimeMilliseconds(r.CreatedAt), DateTimeOffset.FromUnixTimeMilliseconds(r.ExpiresAt), r.ApplicationId, r.Mode)).ToList();
        }, ct);
    }

    /// <summary>
    /// Accepted by the provider: status <c>sent</c>, sealed body deleted. Recorded even if the lease was lost meanwhile
    /// (it did go out); a delivery receipt that arrived first is kept (its status is the newer news).
    /// </summary>
    public Task MarkSentAsync(ClaimedMessage message, DateTimeOffset now, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        var nowMs = now.ToUnixTimeMilliseconds();
        return db.InTransactionAsync(async (c, tx) =>
        {
            var changed = await c.ExecuteAsync(
                $"""
                UPDATE outbox SET status = '{StatusSent}', sent_at = @nowMs, sealed_body = NULL, claimed_until = NULL, last_error = NULL
                WHERE id = @Id AND status NOT IN ('{StatusDelivered}', '{StatusUndelivered}')
                """,
                new { message.Id, nowMs }, tx);
            if (changed == 1)
            {
                await MirrorAsync(c, tx, [(message.ChallengeId, message.Channel)], StatusSent, null, nowMs);
                await ChannelEventAsync(c, tx, message.ApplicationId, message.Mode, message.ChallengeId, message.Channel, EventTypes.ChallengeSent, null);
            }

            return 0;
        }, ct);
    }

    /// <summary>
    /// A provider's delivery receipt for a live message it accepted: <see cref="StatusDelivered"/> or
    /// <see cref="StatusUndelivered"/> (with the provider's reason, an error code — never its text), mirrored on the
    /// challenge's channel, with its <c>challenge.delivered</c> / <c>challenge.failed</c> event. Only the first receipt
    /// counts; returns false when the message is unknown, not live, not yet handed over, or already has one.
    /// </summary>
    public Task<bool> RecordReceiptAsync(string outboxId, bool delivered, string? reason, DateTimeOffset now, CancellationToken ct = default)
    {
        var nowMs = now.ToUnixTimeMilliseconds();
        var status = delivered ? StatusDelivered : StatusUndelivered;
        return db.InTransactionAsync(async (c, tx) =>
        {
            var row = await c.QuerySingleOrDefaultAsync<ReceiptRow>(
                $"""
                UPDATE outbox SET status = @status, last_error = @reason, sealed_body = NULL, claimed_until = NULL
                WHERE id = @outboxId AND mode = '{Modes.Live}' AND status IN ('{StatusSending}', '{StatusSent}')
                RETURNING application_id AS ApplicationId, mode, challenge_id AS ChallengeId, channel
                """,
                new { outboxId, status, reason }, tx);
            if (row is null)
            {
                return false;
            }

            await MirrorAsync(c, tx, [(row.ChallengeId, row.Channel)], status, reason, nowMs);
            await ChannelEventAsync(c, tx, row.ApplicationId, row.Mode, row.ChallengeId, row.Channel,
                delivered ? EventTypes.ChallengeDelivered : EventTypes.ChallengeFailed, reason);
            return true;
        }, ct);
    }

    /// <summary>Refused for good (or undeliverable): status <c>failed</c> with <paramref name="reason"/>, sealed body deleted.</summary>
    public Task MarkFailedAsync(ClaimedMessage message, string reason, DateTimeOffset now, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        var nowMs = now.ToUnixTimeMilliseconds();
        return db.InTransactionAsync(async (c, tx) =>
        {
            var changed = await c.ExecuteAsync(
                $"""
                UPDATE outbox SET status = '{StatusFailed}', sealed_body = NULL, claimed_until = NULL, last_error = @reason
                WHERE id = @Id AND status <> '{StatusSent}'
                """,
                new { message.Id, reason }, tx);
            if (changed == 1)
            {
                await MirrorAsync(c, tx, [(message.ChallengeId, message.Channel)], StatusFailed, reason, nowMs);
                await ChannelEventAsync(c, tx, message.ApplicationId, message.Mode, message.ChallengeId, message.Channel, EventTypes.ChallengeFailed, reason);
            }

            return 0;
        }, ct);
    }

    /// <summary>
    /// A failed attempt to retry at <paramref name="nextAttempt"/>: back to <c>queued</c>, the claim released. Only the
    /// claimant can do this (a node whose lease lapsed and was taken over changes nothing).
    /// </summary>
    public Task RetryLaterAsync(ClaimedMessage message, string node, string reason, DateTimeOffset nextAttempt, DateTimeOffset now, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        var nowMs = now.ToUnixTimeMilliseconds();
        return db.InTransactionAsync(async (c, tx) =>
        {
            var changed = await c.ExecuteAsync(
                $"""
                UPDATE outbox SET status = '{StatusQueued}', next_attempt_at = @next, last_error = @reason, claimed_by = NULL, claimed_until = NULL
                WHERE id = @Id AND status = '{StatusSending}' AND claimed_by = @node
                """,
                new { message.Id, next = nextAttempt.ToUnixTimeMilliseconds(), reason, node }, tx);
            if (changed == 1)
            {
                var shown = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"attempt {message.Attempts} failed: {reason}; retrying");
                await MirrorAsync(c, tx, [(message.ChallengeId, message.Channel)], StatusQueued, shown, nowMs);
            }

            return 0;
        }, ct);
    }

    /// <summary>Gives a claim back untouched (the node is stopping): due again at once, for any node.</summary>
    public Task ReleaseAsync(ClaimedMessage message, string node, DateTimeOffset now, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(message);
        var nowMs = now.ToUnixTimeMilliseconds();
        return db.InTransactionAsync(async (c, tx) =>
        {
            var changed = await c.ExecuteAsync(
                $"""
                UPDATE outbox SET status = '{StatusQueued}', next_attempt_at = @nowMs, claimed_by = NULL, claimed_until = NULL
                WHERE id = @Id AND status = '{StatusSending}' AND claimed_by = @node
                """,
                new { message.Id, nowMs, node }, tx);
            if (changed == 1)
            {
                await MirrorAsync(c, tx, [(message.ChallengeId, message.Channel)], StatusQueued, null, nowMs);
            }

            return 0;
        }, ct);
    }

    /// <summary>
    /// Closes live messages that must not go out any more: past their expiry (<see cref="ExpiredReason"/>), or whose
    /// challenge is no longer pending (replaced by a newer code, already verified, out of attempts). Rows under a live
    /// claim are left to their claimant. Sealed bodies are deleted. Returns how many were closed.
    /// </summary>
    public Task<int> SweepAsync(DateTimeOffset now, CancellationToken ct = default)
    {
        var nowMs = now.ToUnixTimeMilliseconds();
        return db.InTransactionAsync(async (c, tx) =>
        {
            var expired = (await c.QueryAsync<ClosedRow>(
                $"""
                UPDATE outbox SET status = '{StatusFailed}', sealed_body = NULL, claimed_until = NULL, last_error = '{ExpiredReason}'
                WHERE id IN (
                    SELECT id FROM outbox
                    WHERE mode = '{Modes.Live}' AND status IN ('{StatusQueued}', '{StatusSending}') AND expires_at <= @nowMs
                      AND (claimed_until IS NULL OR claimed_until <= @nowMs){db.Dialect.ForUpdateSkipLocked})
                  AND status IN ('{StatusQueued}', '{StatusSending}') AND (claimed_until IS NULL OR claimed_until <= @nowMs)
                RETURNING challenge_id AS ChallengeId, channel, application_id AS ApplicationId, mode
                """,
                new { nowMs }, tx)).ToList();
            await MirrorAsync(c, tx, expired.Select(r => (r.ChallengeId, r.Channel)), StatusFailed, ExpiredReason, nowMs);
            foreach (var row in expired)
            {
                await ChannelEventAsync(c, tx, row.ApplicationId, row.Mode, row.ChallengeId, row.Channel, EventTypes.ChallengeFailed, ExpiredReason);
            }

            var closed = (await c.QueryAsync<ClosedRow>(
                $"""
                UPDATE outbox SET status = '{StatusFailed}', sealed_body = NULL, claimed_until = NULL,
                    last_error = 'not sent: the challenge is no longer pending (' || (SELECT ch.status FROM challenges ch WHERE ch.id = outbox.challenge_id) || ')'
                WHERE id IN (
                    SELECT o.id FROM outbox o
                    WHERE o.mode = '{Modes.Live}' AND o.status IN ('{StatusQueued}', '{StatusSending}') AND o.challenge_id IS NOT NULL
                      AND (o.claimed_until IS NULL OR o.claimed_until <= @nowMs)
                      AND EXISTS (SELECT 1 FROM challenges ch WHERE ch.id = o.challenge_id AND ch.status <> 'pending'){db.Dialect.ForUpdateSkipLocked})
                  AND status IN ('{StatusQueued}', '{StatusSending}') AND (claimed_until IS NULL OR claimed_until <= @nowMs)
                RETURNING challenge_id AS ChallengeId, channel, last_error AS LastError
                """,
                new { nowMs }, tx)).ToList();
            foreach (var row in closed)
            {
                await MirrorAsync(c, tx, [(row.ChallengeId, row.Channel)], StatusFailed, row.LastError, nowMs);
            }

            return expired.Count + closed.Count;
        }, ct);
    }

    private static Task MirrorAsync(DbConnection c, DbTransaction tx, IEnumerable<(string? ChallengeId, string Channel)> rows, string status, string? reason, long nowMs)
    {
        var items = rows.Where(r => r.ChallengeId is not null)
            .Select(r => new { r.ChallengeId, r.Channel, status, reason, nowMs }).ToList();
        return items.Count == 0
            ? Task.CompletedTask
            : c.ExecuteAsync(
                "UPDATE challenge_channels SET status = @status, reason = @reason, updated_at = @nowMs WHERE challenge_id = @ChallengeId AND channel = @Channel",
                items, tx);
    }

    /// <summary>A challenge channel's delivery event (the user read from its challenge), in the caller's transaction.</summary>
    private async Task ChannelEventAsync(DbConnection c, DbTransaction tx, string applicationId, string mode, string? challengeId, string channel, string type, string? reason)
    {
        if (challengeId is null)
        {
            return;
        }

        var user = await c.QuerySingleOrDefaultAsync<string>("SELECT user_key FROM challenges WHERE id = @challengeId", new { challengeId }, tx);
        var data = new System.Text.Json.Nodes.JsonObject { ["user"] = user, ["challenge_id"] = challengeId, ["channel"] = channel };
        if (reason is not null)
        {
            data["reason"] = reason;
        }

        await events.EnqueueAsync(c, tx, applicationId, mode, [new PendingEvent(type, data)]);
    }

    private sealed record SealedContent(string? Subject, string Body);

    private sealed class ReceiptRow
    {
        public string ApplicationId { get; init; } = "";

        public string Mode { get; init; } = "";

        public string? ChallengeId { get; init; }

        public string Channel { get; init; } = "";
    }

    private sealed class ClaimRow
    {
        public string Id { get; init; } = "";

        public string? ChallengeId { get; init; }

        public string Kind { get; init; } = "";

        public string Channel { get; init; } = "";

        public string Destination { get; init; } = "";

        public string Locale { get; init; } = "";

        public byte[]? SealedBody { get; init; }

        public long Attempts { get; init; }

        public long CreatedAt { get; init; }

        public long ExpiresAt { get; init; }

        public string ApplicationId { get; init; } = "";

        public string Mode { get; init; } = "";
    }

    private sealed class ClosedRow
    {
        public string? ChallengeId { get; init; }

        public string Channel { get; init; } = "";

        public string ApplicationId { get; init; } = "";

        public string Mode { get; init; } = "";

        public string? LastError { get; init; }
    }

    private sealed class Row
    {
        public string Id { get; init; } = "";

        public string Channel { get; init; } = "";

        public string Destination { get; init; } = "";

        public byte[]? SealedBody { get; init; }

        public long CreatedAt { get; init; }
    }
}
