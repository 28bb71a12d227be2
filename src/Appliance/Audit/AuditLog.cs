using System.Buffers.Binary;
using System.Data.Common;
using System.Security.Cryptography;
using System.Text;
using Dapper;
using DevRift.Hsm.Appliance.Events;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Crypto;

namespace DevRift.Hsm.Appliance.Audit;

/// <summary>
/// The append-only, HMAC-chained audit log. <c>mac_i = HMAC-SHA256(audit key, mac_{i-1} ‖ canonical(record_i))</c>,
/// computed in the HSM with the audit key's current version (stored beside the mac); <c>mac_0</c> is 32 zero bytes.
/// An append is one short transaction that locks the one-row head, so appends from every node form one chain; a
/// failed append throws (storage or HSM unavailable), so the caller's request fails rather than losing the record.
/// The events a record reports (<see cref="EventTypes.FromAudit"/>) are enqueued in the same transaction, for the
/// applications that have an event endpoint: an event exists exactly when its audit record does.
/// </summary>
public sealed class AuditLog(Database db, HsmMac mac, TimeProvider time, EventOutbox events)
{
    private const int MacLength = 32;
    private const int VerifyPage = 1000;
    private static readonly byte[] s_domain = "devrift.audit.v1"u8.ToArray();
    private static readonly byte[] s_null = [0xff, 0xff, 0xff, 0xff]; // length −1: a null field, distinct from ""


    /// <summary>Appends one record in its own transaction; returns its seq.</summary>
    public Task<long> AppendAsync(AuditEntry entry, CancellationToken ct = default) =>
        db.InTransactionAsync((c, tx) => AppendAsync(c, tx, entry), ct);

    /// <summary>
    /// Appends one record inside the caller's transaction, so that the record commits (or not) with the change it
    /// describes. Call it last in the transaction: it locks the head until commit.
    /// </summary>
    public async Task<long> AppendAsync(DbConnection connection, DbTransaction transaction, AuditEntry entry)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(entry);
        try
        {
            return await AppendCoreAsync(connection, transaction, entry);
        }
        catch (DbException e)
        {
            // Whatever keeps the audit log from being written (an outage, a damaged or missing table), the operation it
            // describes must not be acknowledged: fail closed as unavailable, the way a lost database does.
            throw new StorageUnavailableException($"the audit log cannot be written ({e.GetType().Name})", e);
        }
    }

    private async Task<long> AppendCoreAsync(DbConnection connection, DbTransaction transaction, AuditEntry entry)
    {
        var head = await connection.QuerySingleAsync<HeadRow>(
            "SELECT last_seq AS LastSeq, last_mac AS LastMac FROM audit_head WHERE id = 1" + db.Dialect.ForUpdate, transaction: transaction);
        var seq = head.LastSeq + 1;
        var at = time.GetUtcNow().ToUnixTimeMilliseconds();
        var detail = entry.Detail?.ToJsonString() ?? "{}";
        var record = new AuditRecord(seq, DateTimeOffset.FromUnixTimeMilliseconds(at), entry.Event, entry.Actor, entry.ApplicationId, entry.Mode,
            entry.Subject, entry.Outcome, detail, 0, []);
        var signed = mac.Sign(KeyPurpose.Audit, ChainInput(head.LastMac ?? new byte[MacLength], record));
        // One round trip for the row and the head.
        await connection.ExecuteAsync(
            """
            INSERT INTO audit_log (seq, at, event, actor, application_id, mode, subject, outcome, detail, key_version, mac)
            VALUES (@seq, @at, @evt, @actor, @app, @mode, @subject, @outcome, @detail, @version, @mac);
            UPDATE audit_head SET last_seq = @seq, last_mac = @mac WHERE id = 1;
            """,
            new
            {
                seq, at, evt = entry.Event, actor = entry.Actor, app = entry.ApplicationId, mode = entry.Mode, subject = entry.Subject,
                outcome = entry.Outcome, detail, version = signed.Version, mac = signed.Mac,
            }, transaction);
        if (entry.ApplicationId is { } applicationId && entry.Mode is { } mode)
        {
            await events.EnqueueAsync(connection, transaction, applicationId, mode, EventTypes.FromAudit(entry));
        }

        return seq;
    }

    /// <summary>Records with seq greater than <paramref name="after"/>, oldest first, at most <paramref name="limit"/>.</summary>
    public async Task<IReadOnlyList<AuditRecord>> ListAsync(long after, int limit, CancellationToken ct = default)
    {
        var rows = await db.WithConnectionAsync(c => c.QueryAsync<Row>(
            $"SELECT {Row.Columns} FROM audit_log WHERE seq > @after ORDER BY seq LIMIT @limit", new { after, limit }), ct);
        return rows.Select(r => r.Record).ToList();
    }

    /// <summary>
    /// Records matching every condition of <paramref name="filter"/> that is set, with seq greater than
    /// <paramref name="after"/>, oldest first, at most <paramref name="limit"/>.
    /// </summary>
    public async Task<IReadOnlyList<AuditRecord>> QueryAsync(AuditFilter filter, long after, int limit, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        var where = new List<string> { "seq > @after" };
        if (filter.Event is not null)
        {
            where.Add("event = @Event");
        }

        if (filter.ApplicationId is not null)
        {
            where.Add("application_id = @ApplicationId");
        }

        if (filter.Subject is not null)
        {
            where.Add("subject = @Subject");
        }

        if (filter.Outcome is not null)
        {
            where.Add("outcome = @Outcome");
        }

        if (filter.From is not null)
        {
            where.Add("at >= @from");
        }

        if (filter.To is not null)
        {
            where.Add("at < @to");
        }

        var sql = $"SELECT {Row.Columns} FROM audit_log WHERE {string.Join(" AND ", where)} ORDER BY seq LIMIT @limit";
        var rows = await db.WithConnectionAsync(c => c.QueryAsync<Row>(sql, new
        {
            after, limit, filter.Event, filter.ApplicationId, filter.Subject, filter.Outcome,
            from = filter.From?.ToUnixTimeMilliseconds(), to = filter.To?.ToUnixTimeMilliseconds(),
        }), ct);
        return rows.Select(r => r.Record).ToList();
    }

    /// <summary>
    /// Recomputes the whole chain in the HSM, each row with the key version it names (older versions keep verifying
    /// after a rotation), and compares the end of the chain with the head. Runs without a long transaction: the head
    /// is read after the rows, and since every insert moves the head in its own transaction, a head ahead of the rows
    /// read is either a concurrent append (read it and go on) or a cut-off tail (nothing more to read).
    /// </summary>
    public async Task<AuditVerification> VerifyAsync(CancellationToken ct = default)
    {
        var expected = 1L;
        var previous = new byte[MacLength];
        long? firstBad = null;
        var records = 0L;
        var cursor = long.MinValue; // rows numbered 0 or below are forgeries too: read them
        while (true)
        {
            var page = await ListAsync(cursor, VerifyPage, ct);
            if (page.Count > 0)
            {
                cursor = page[^1].Seq;
                foreach (var row in page)
                {
                    records++;
                    if (firstBad is not null)
                    {
                        continue;
                    }

                    if (row.Seq != expected)
                    {
                        // A gap (a deleted row) breaks at the first missing seq; a forged row numbered below it, at its own.
                        firstBad = Math.Min(expected, row.Seq);
                        continue;
                    }

                    if (!MacMatches(previous, row))
                    {
                        firstBad = row.Seq;
                        continue;
                    }

                    previous = row.Mac;
                    expected++;
                }

                if (firstBad is not null)
                {
                    // Count the rest without checking them.
                    records += await db.WithConnectionAsync(c => c.ExecuteScalarAsync<long>(
                        "SELECT COUNT(*) FROM audit_log WHERE seq > @cursor", new { cursor }), ct);
                    var h = await HeadAsync(ct);
                    return new AuditVerification(false, records, firstBad, h.LastSeq, h.LastMac);
                }

                continue;
            }

            var head = await HeadAsync(ct);
            var lastSeq = expected - 1;
            if (head.LastSeq == lastSeq)
            {
                var matches = lastSeq == 0 ? head.LastMac is null : head.LastMac is { } m && CryptographicOperations.FixedTimeEquals(m, previous);
                return new AuditVerification(matches, records, matches ? null : Math.Max(lastSeq, 1), head.LastSeq, head.LastMac);
            }

            if (head.LastSeq < lastSeq)
            {
                // Rows beyond the head: nothing this appliance appended (the head moves with every insert).
                return new AuditVerification(false, records, head.LastSeq + 1, head.LastSeq, head.LastMac);
            }

            // The head is ahead: appends made since the rows were read, or a cut-off tail.
            var more = await db.WithConnectionAsync(c => c.ExecuteScalarAsync<long>(
                "SELECT COUNT(*) FROM audit_log WHERE seq > @lastSeq", new { lastSeq }), ct);
            if (more == 0)
            {
                return new AuditVerification(false, records, lastSeq + 1, head.LastSeq, head.LastMac);
            }
        }
    }

    /// <summary>
    /// The record as MAC input: a domain label, then every field length-prefixed (4 bytes big-endian; −1 for null),
    /// seq and time as 8-byte big-endian integers. No two different records encode alike.
    /// </summary>
    public static byte[] Canonical(AuditRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        using var buffer = new MemoryStream(256);
        Field(buffer, s_domain);
        Span<byte> number = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(number, record.Seq);
        Field(buffer, number);
        BinaryPrimitives.WriteInt64BigEndian(number, record.At.ToUnixTimeMilliseconds());
        Field(buffer, number);
        foreach (var text in (string?[])[record.Event, record.Actor, record.ApplicationId, record.Mode, record.Subject, record.Outcome, record.Detail])
        {
            if (text is null)
            {
                buffer.Write(s_null);
            }
            else
            {
                Field(buffer, Encoding.UTF8.GetBytes(text));
            }
        }

        return buffer.ToArray();
    }

    private static byte[] ChainInput(byte[] previousMac, AuditRecord record) => [.. previousMac, .. Canonical(record)];

    private bool MacMatches(byte[] previous, AuditRecord row)
    {
        if (row.Mac.Length != MacLength)
        {
            return false;
        }

        try
        {
            return CryptographicOperations.FixedTimeEquals(mac.Sign(KeyPurpose.Audit, row.KeyVersion, ChainInput(previous, row)), row.Mac);
        }
        catch (HsmDataException)
        {
            // The row names a key version the token does not have.
            return false;
        }
    }

    private static void Field(MemoryStream buffer, ReadOnlySpan<byte> value)
    {
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(length, value.Length);
        buffer.Write(length);
        buffer.Write(value);
    }

    private Task<HeadRow> HeadAsync(CancellationToken ct) =>
        db.WithConnectionAsync(c => c.QuerySingleAsync<HeadRow>("SELECT last_seq AS LastSeq, last_mac AS LastMac FROM audit_head WHERE id = 1"), ct);

    private sealed class HeadRow
    {
        public long LastSeq { get; init; }

        public byte[]? LastMac { get; init; }
    }

    private sealed class Row
    {
        public const string Columns =
            "seq, at, event, actor, application_id AS ApplicationId, mode, subject, outcome, detail, key_version AS KeyVersion, mac";

        public long Seq { get; init; }

        public long At { get; init; }

        public string Event { get; init; } = "";

        public string Actor { get; init; } = "";

        public string? ApplicationId { get; init; }

        public string? Mode { get; init; }

        public string? Subject { get; init; }

        public string Outcome { get; init; } = "";

        public string Detail { get; init; } = "";

        public int KeyVersion { get; init; }

        public byte[] Mac { get; init; } = [];

        public AuditRecord Record => new(Seq, DateTimeOffset.FromUnixTimeMilliseconds(At), Event, Actor, ApplicationId, Mode, Subject, Outcome, Detail, KeyVersion, Mac);
    }
}
