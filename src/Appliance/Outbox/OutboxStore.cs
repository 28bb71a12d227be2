using System.Data.Common;
using System.Text.Json;
using Dapper;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Challenges;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Appliance.Users;
using DevRift.Hsm.Crypto;

namespace DevRift.Hsm.Appliance.Outbox;

/// <summary>A message to queue: sealed before the transaction that inserts it.</summary>
public sealed record PendingMessage(string Id, string Kind, string Channel, string Destination, string Locale, byte[] SealedBody);

/// <summary>A message as the test outbox shows it.</summary>
public sealed record TestMessage(string Id, string Channel, string To, string? Subject, string Body, DateTimeOffset CreatedAt);

/// <summary>
/// The durable outbox. Rows are written in the transaction that accepts the request; bodies are sealed with the
/// HSM seal key bound to the row id. Test-mode rows never leave: they stay readable in the test outbox.
/// </summary>
public sealed class OutboxStore(Database db, Sealer sealer)
{
    public const string StatusQueued = "queued";
    public const string StatusTest = "test";

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

    private sealed record SealedContent(string? Subject, string Body);

    private sealed class Row
    {
        public string Id { get; init; } = "";

        public string Channel { get; init; } = "";

        public string Destination { get; init; } = "";

        public byte[]? SealedBody { get; init; }

        public long CreatedAt { get; init; }
    }
}
