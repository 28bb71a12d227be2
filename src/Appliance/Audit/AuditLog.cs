using System.Buffers.Binary;
using System.Data.Common;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Dapper;
using DevRift.Hsm.Appliance.Events;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Crypto;
using Microsoft.Extensions.Logging;

namespace DevRift.Hsm.Appliance.Audit;

/// <summary>
/// The append-only, HMAC-chained audit log. <c>mac_i = HMAC-SHA256(audit key, mac_{i-1} ‖ canonical(record_i))</c>,
/// computed in the HSM with the audit key's current version (stored beside the mac); <c>mac_0</c> is 32 zero bytes.
/// <para>
/// Appending and chaining are two steps. An append writes the record to <c>audit_pending</c> inside the caller's
/// transaction: it commits with the change it describes or not at all, takes no lock and makes no HSM call, so
/// concurrent requests on every node do not queue behind one another. <see cref="ChainPendingAsync"/> (every node runs
/// it in the background, see <see cref="AuditChainer"/>, and every audit read runs it first) moves the pending records
/// into <c>audit_log</c> in batches: their MACs are computed in the HSM outside any transaction, then one short
/// transaction locks the head, checks that no other node extended the chain meanwhile (otherwise it starts over from
/// the new head), inserts the batch, deletes exactly the pending rows it chained and moves the head once.
/// </para>
/// <para>
/// The events a record reports (<see cref="EventTypes.FromAudit"/>) are enqueued in the append's transaction, for the
/// applications that have an event endpoint: an event exists exactly when its audit record does.
/// </para>
/// </summary>
public sealed partial class AuditLog(Database db, HsmMac mac, TimeProvider time, EventOutbox events, ILogger<AuditLog> logger) : IDisposable
{
    private const int MacLength = 32;
    private const int VerifyPage = 1000;

    /// <summary>Most records chained by one transaction.</summary>
    public const int ChainBatch = 256;

    // Rows per INSERT while chaining. PostgreSQL: a few, each statement is a round trip. SQLite: one, since a statement
    // costs no round trip and a prepared single-row statement (kept by the connection pool) is found by its text, while
    // Microsoft.Data.Sqlite finds each named parameter by a linear search of the statement's names, up to three times
    // (the name as given, then with each prefix): with 16 rows of 11 parameters that search was 5 % of the server's
    // CPU while it served valid verifications.
    private const int PostgresRowsPerStatement = 16;

    private static readonly byte[] s_domain = "devrift.audit.v1"u8.ToArray();
    private static readonly byte[] s_null = [0xff, 0xff, 0xff, 0xff]; // length −1: a null field, distinct from ""

    private readonly SemaphoreSlim _chaining = new(1, 1);
    private readonly SemaphoreSlim _appended = new(0, 1);

    public void Dispose()
    {
        _chaining.Dispose();
        _appended.Dispose();
    }

    /// <summary>Appends one record in its own transaction.</summary>
    public Task AppendAsync(AuditEntry entry, CancellationToken ct = default) =>
        db.InTransactionAsync(async (c, tx) =>
        {
            await AppendAsync(c, tx, entry);
            return true;
        }, ct);

    /// <summary>
    /// Appends one record inside the caller's transaction, so that the record commits (or not) with the change it
    /// describes. It is chained shortly after the commit.
    /// </summary>
    public async Task AppendAsync(DbConnection connection, DbTransaction transaction, AuditEntry entry)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(entry);
        try
        {
            await connection.ExecuteAsync(
                """
                INSERT INTO audit_pending (at, event, actor, application_id, mode, subject, outcome, detail)
                VALUES (@at, @evt, @actor, @app, @mode, @subject, @outcome, @detail)
                """,
                new
                {
                    at = time.GetUtcNow().ToUnixTimeMilliseconds(), evt = entry.Event, actor = entry.Actor, app = entry.ApplicationId,
                    mode = entry.Mode, subject = entry.Subject, outcome = entry.Outcome, detail = entry.Detail?.ToJsonString() ?? "{}",
                }, transaction);
            if (entry.ApplicationId is { } applicationId && entry.Mode is { } mode)
            {
                await events.EnqueueAsync(connection, transaction, applicationId, mode, EventTypes.FromAudit(entry));
            }
        }
        catch (DbException e)
        {
            // Whatever keeps the audit log from being written (an outage, a damaged or missing table), the operation it
            // describes must not be acknowledged: fail closed as unavailable, the way a lost database does.
            throw new StorageUnavailableException($"the audit log cannot be written ({e.GetType().Name})", e);
        }

        // Wake this node's chainer (it finds the record once the caller's transaction has committed).
        if (_appended.CurrentCount == 0)
        {
            try
            {
                _appended.Release();
            }
            catch (SemaphoreFullException)
            {
                // another append woke it first
            }
        }
    }

    /// <summary>Waits until a record is appended on this node or <paramref name="timeout"/> passes.</summary>
    internal Task<bool> WaitForAppendAsync(TimeSpan timeout, CancellationToken ct) => _appended.WaitAsync(timeout, ct);

    /// <summary>
    /// Chains every record pending now, in batches of at most <see cref="ChainBatch"/>; returns how many this call
    /// chained. No lock is held across an HSM call: the MACs are computed first, and the transaction that writes them
    /// starts over if another node moved the head meanwhile.
    /// </summary>
    public async Task<int> ChainPendingAsync(CancellationToken ct = default)
    {
        await _chaining.WaitAsync(ct);
        try
        {
            var chained = 0;
            while (true)
            {
                var head = await HeadAsync(ct);
                var pending = (await db.WithConnectionAsync(c => c.QueryAsync<PendingRow>(
                    $"SELECT id, {PendingRow.Columns} FROM audit_pending ORDER BY id LIMIT @limit", new { limit = ChainBatch }), ct)).ToList();
                if (pending.Count == 0)
                {
                    return chained;
                }

                var macs = mac.SignChained(KeyPurpose.Audit, head.LastMac ?? new byte[MacLength],
                    pending.Select((p, i) => Canonical(p.Record(head.LastSeq + i + 1))).ToList());
                var rows = pending.Select((p, i) => (Pending: p, Seq: head.LastSeq + i + 1, Mac: macs[i])).ToList();

                if (await WriteChainedAsync(head.LastSeq, rows, ct))
                {
                    chained += rows.Count;
                }
                else
                {
                    LogHeadMoved(logger, head.LastSeq);
                }
            }
        }
        finally
        {
            _chaining.Release();
        }
    }

    /// <summary>Records written but not chained yet.</summary>
    public Task<long> PendingCountAsync(CancellationToken ct = default) =>
        db.WithConnectionAsync(c => c.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM audit_pending"), ct);

    /// <summary>The batch's rows, the deletion of exactly its pending rows and the head, if the head is still at <paramref name="expectedSeq"/>.</summary>
    private Task<bool> WriteChainedAsync(long expectedSeq, List<(PendingRow Pending, long Seq, KeyedMac Mac)> rows, CancellationToken ct) =>
        db.InTransactionAsync(async (c, tx) =>
        {
            var lastSeq = await c.ExecuteScalarAsync<long>("SELECT last_seq FROM audit_head WHERE id = 1" + db.Dialect.ForUpdate, transaction: tx);
            if (lastSeq != expectedSeq)
            {
                return false;
            }

            foreach (var chunk in rows.Chunk(db.Provider == StorageProvider.Sqlite ? 1 : PostgresRowsPerStatement))
            {
                var insert = new StringBuilder("INSERT INTO audit_log (seq, at, event, actor, application_id, mode, subject, outcome, detail, key_version, mac) VALUES ");
                var delete = new StringBuilder("DELETE FROM audit_pending WHERE id IN (");
                var args = new DynamicParameters();
                var ids = new DynamicParameters();
                for (var i = 0; i < chunk.Length; i++)
                {
                    var (p, seq, signed) = chunk[i];
                    insert.Append(i == 0 ? "" : ", ").Append(CultureInfo.InvariantCulture,
                        $"(@s{i}, @a{i}, @e{i}, @ac{i}, @ap{i}, @m{i}, @su{i}, @o{i}, @d{i}, @v{i}, @mac{i})");
                    delete.Append(i == 0 ? "" : ", ").Append(CultureInfo.InvariantCulture, $"@id{i}");
                    args.Add($"s{i}", seq);
                    args.Add($"a{i}", p.At);
                    args.Add($"e{i}", p.Event);
                    args.Add($"ac{i}", p.Actor);
                    args.Add($"ap{i}", p.ApplicationId);
                    args.Add($"m{i}", p.Mode);
                    args.Add($"su{i}", p.Subject);
                    args.Add($"o{i}", p.Outcome);
                    args.Add($"d{i}", p.Detail);
                    args.Add($"v{i}", signed.Version);
                    args.Add($"mac{i}", signed.Mac);
                    ids.Add($"id{i}", p.Id);
                }

                await c.ExecuteAsync(insert.ToString(), args, tx);
                var deleted = await c.ExecuteAsync(delete.Append(')').ToString(), ids, tx);
                if (deleted != chunk.Length)
                {
                    // Someone else chained some of these rows without moving the head: refuse to chain them twice.
                    throw new StorageUnavailableException($"audit chaining found {deleted} of {chunk.Length} pending records; starting over");
                }
            }

            await c.ExecuteAsync("UPDATE audit_head SET last_seq = @seq, last_mac = @mac WHERE id = 1", new { seq = rows[^1].Seq, mac = rows[^1].Mac.Mac }, tx);
            return true;
        }, ct);

    /// <summary>
    /// Records with seq greater than <paramref name="after"/>, oldest first, at most <paramref name="limit"/>; what is
    /// pending is chained first (if the HSM cannot chain now, the records chained so far are listed).
    /// </summary>
    public async Task<IReadOnlyList<AuditRecord>> ListAsync(long after, int limit, CancellationToken ct = default)
    {
        await TryChainPendingAsync(ct);
        return await ListChainedAsync(after, limit, ct);
    }

    private async Task<IReadOnlyList<AuditRecord>> ListChainedAsync(long after, int limit, CancellationToken ct)
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

        await TryChainPendingAsync(ct);
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
    /// is read after the rows, and since every chaining moves the head in the transaction that inserts its rows, a head
    /// ahead of the rows read is either a concurrent chaining (read it and go on) or a cut-off tail (nothing more to
    /// read). What is pending is chained first; <see cref="AuditVerification.Pending"/> counts what is still pending
    /// after the check (records committed meanwhile).
    /// </summary>
    public async Task<AuditVerification> VerifyAsync(CancellationToken ct = default)
    {
        await ChainPendingAsync(ct);
        var result = await VerifyChainAsync(ct);
        return result with { Pending = await PendingCountAsync(ct) };
    }

    private async Task<AuditVerification> VerifyChainAsync(CancellationToken ct)
    {
        var expected = 1L;
        var previous = new byte[MacLength];
        long? firstBad = null;
        var records = 0L;
        var cursor = long.MinValue; // rows numbered 0 or below are forgeries too: read them
        while (true)
        {
            var page = await ListChainedAsync(cursor, VerifyPage, ct);
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

    private async Task TryChainPendingAsync(CancellationToken ct)
    {
        try
        {
            await ChainPendingAsync(ct);
        }
        catch (HsmException e)
        {
            LogChainFailed(logger, e.Message);
        }
    }

    [LoggerMessage(EventId = 4201, Level = LogLevel.Information, Message = "Audit chaining: another node extended the chain past seq {Seq}; chaining again from its head")]
    private static partial void LogHeadMoved(ILogger logger, long seq);

    [LoggerMessage(EventId = 4202, Level = LogLevel.Warning, Message = "Audit records are not chained yet: {Reason}")]
    internal static partial void LogChainFailed(ILogger logger, string reason);

    /// <summary>The columns a record has before and after it is chained.</summary>
    private abstract class RecordColumns
    {
        public long At { get; init; }

        public string Event { get; init; } = "";

        public string Actor { get; init; } = "";

        public string? ApplicationId { get; init; }

        public string? Mode { get; init; }

        public string? Subject { get; init; }

        public string Outcome { get; init; } = "";

        public string Detail { get; init; } = "";

        protected AuditRecord ToRecord(long seq, int keyVersion, byte[] mac) =>
            new(seq, DateTimeOffset.FromUnixTimeMilliseconds(At), Event, Actor, ApplicationId, Mode, Subject, Outcome, Detail, keyVersion, mac);
    }

    private sealed class PendingRow : RecordColumns
    {
        public const string Columns = "at, event, actor, application_id AS ApplicationId, mode, subject, outcome, detail";

        public long Id { get; init; }

        /// <summary>The record as it will be chained at <paramref name="seq"/> (no MAC yet).</summary>
        public AuditRecord Record(long seq) => ToRecord(seq, 0, []);
    }

    private sealed class HeadRow
    {
        public long LastSeq { get; init; }

        public byte[]? LastMac { get; init; }
    }

    private sealed class Row : RecordColumns
    {
        public const string Columns =
            "seq, at, event, actor, application_id AS ApplicationId, mode, subject, outcome, detail, key_version AS KeyVersion, mac";

        public long Seq { get; init; }

        public int KeyVersion { get; init; }

        public byte[] Mac { get; init; } = [];

        public AuditRecord Record => ToRecord(Seq, KeyVersion, Mac);
    }
}
