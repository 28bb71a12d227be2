using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using BenchmarkDotNet.Attributes;
using Dapper;
using DevRift.Hsm.Appliance;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Audit;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Appliance.Users;
using DevRift.Hsm.Crypto;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace DevRift.Hsm.Bench;

/// <summary>
/// One audit record appended the way every <c>/v1</c> call now does — <see cref="AuditLog.AppendAsync(AuditEntry, CancellationToken)"/>
/// in its own transaction: read the head row, one HMAC-SHA256 in the HSM with the audit key over the previous mac and
/// the canonical record, insert the row and move the head — against the same kind of transaction without the chain
/// (one INSERT of an equivalent row into a scratch table of the same shape, same database, same connection set-up),
/// and the HSM HMAC alone.
/// </summary>
/// <remarks>
/// <para>
/// <c>[GlobalSetup]</c> builds the appliance's own service collection (<c>AddAppliance()</c>) on in-memory
/// configuration: a private SoftHSM2 token (<see cref="BenchTokenDirectory"/>) and a SQLite file beside it, as
/// <see cref="TotpEndToEndBenchmarks"/> does. It runs <c>init</c> (keys, migrations, demo application and test key),
/// authenticates the test key for a real caller, creates the scratch table, and checks each side once: an append that
/// the chain check accepts, a baseline row that reads back, an HSM MAC that is 32 bytes and repeatable.
/// </para>
/// <para>
/// <c>[GlobalCleanup]</c> runs <see cref="AuditLog.VerifyAsync"/> over the whole log (every mac recomputed in the HSM)
/// and throws unless the chain is valid and holds exactly the records appended — by set-up and by every invocation —
/// and the last one is the benchmark's entry; it also checks the scratch table's row count against the baseline's
/// inserts. So the benchmark proves it appended real, chained records, and that the others appended none.
/// </para>
/// </remarks>
[MemoryDiagnoser]
public class AuditAppendBenchmarks
{
    private const string User = "ada@example.com";
    private const int MacLength = 32;
    private const int RecordInputLength = 200;

    /// <summary>The columns of <c>audit_log</c> (migration 0006), under another name: the chain-less baseline's table.</summary>
    private const string CreateScratch =
        """
        CREATE TABLE bench_audit_scratch (
            seq            BIGINT PRIMARY KEY,
            at             BIGINT NOT NULL,
            event          TEXT NOT NULL,
            actor          TEXT NOT NULL,
            application_id TEXT NULL,
            mode           TEXT NULL,
            subject        TEXT NULL,
            outcome        TEXT NOT NULL,
            detail         TEXT NOT NULL,
            key_version    INTEGER NOT NULL,
            mac            BLOB NOT NULL
        )
        """;

    /// <summary>The INSERT of <see cref="AuditLog"/>'s append, without the head UPDATE.</summary>
    private const string InsertScratch =
        """
        INSERT INTO bench_audit_scratch (seq, at, event, actor, application_id, mode, subject, outcome, detail, key_version, mac)
        VALUES (@seq, @at, @evt, @actor, @app, @mode, @subject, @outcome, @detail, @version, @mac)
        """;

    private BenchAppliance? _appliance;
    private ServiceProvider _services = null!;
    private Database _db = null!;
    private AuditLog _audit = null!;
    private HsmMac _mac = null!;
    private TimeProvider _time = null!;
    private AuditEntry _entry = null!;
    private byte[] _macInput = null!;
    private byte[] _scratchMac = null!;
    private int _auditKeyVersion;

    // Audit records before the measured invocations (set-up's own append included), and records appended since.
    private long _recordsAtStart;
    private long _appended;

    // Scratch rows inserted by set-up and by the baseline, and HMACs made by the HSM benchmark.
    private long _scratchRows;
    private long _macs;

    /// <summary>Builds the appliance, authenticates the demo test key, checks each benchmark's operation once.</summary>
    [GlobalSetup]
    public async Task Setup()
    {
        _appliance = BenchAppliance.Create();
        _services = _appliance.Services;

        _db = _services.GetRequiredService<Database>();
        _audit = _services.GetRequiredService<AuditLog>();
        _mac = _services.GetRequiredService<HsmMac>();
        _time = _services.GetRequiredService<TimeProvider>();

        var init = await _services.GetRequiredService<ApplianceInitializer>().InitializeAsync(createDemo: true);
        var caller = await _services.GetRequiredService<ApiKeys>().AuthenticateAsync(init.DemoTestKey)
            ?? throw new InvalidOperationException("the demo test key does not authenticate");

        // What the /v1 filter appends after a successful POST /v1/mfa/verify of an authenticator-app (TOTP) code.
        _entry = AuditEntry.ByCaller(caller, AuditEvents.Verification, MfaUser.Parse(User).Key, "valid", new JsonObject { ["type"] = "APP" });

        // HSM side: the audit key signs, 32 bytes, the same MAC twice, and the version-pinned call agrees.
        _auditKeyVersion = _mac.CurrentVersion(KeyPurpose.Audit);
        _macInput = RandomNumberGenerator.GetBytes(MacLength + RecordInputLength);
        var first = _mac.Sign(KeyPurpose.Audit, _macInput);
        var second = _mac.Sign(KeyPurpose.Audit, _auditKeyVersion, _macInput);
        if (first.Version != _auditKeyVersion || first.Mac.Length != MacLength || !first.Mac.AsSpan().SequenceEqual(second))
        {
            throw new InvalidOperationException("the HSM's audit MAC is not a repeatable 32-byte HMAC under the current audit key");
        }

        // Chain side: the log is valid before, one append extends it by one record that the check accepts.
        var before = await VerifyChainAsync(expectedRecords: null);
        await _audit.AppendAsync(_entry);
        if (await _audit.ChainPendingAsync() != 1)
        {
            throw new InvalidOperationException("the set-up append did not leave exactly one record to chain");
        }

        _recordsAtStart = before.Records + 1;
        await VerifyChainAsync(_recordsAtStart);
        var stored = (await _audit.ListAsync(_recordsAtStart - 1, 1)).Single();
        _scratchMac = stored.Mac; // a real 32-byte mac for the baseline's rows

        // Baseline side: the scratch table exists, one insert in a transaction lands one row.
        await _db.WithConnectionAsync(c => c.ExecuteAsync(CreateScratch));
        await InsertScratchAsync();
        await CheckScratchRowsAsync();

        var chainInput = MacLength + AuditLog.Canonical(stored).Length;
        var journal = await PragmaAsync("journal_mode");
        var synchronous = await PragmaAsync("synchronous");
        Console.WriteLine(
            $"// AuditAppend setup: {_recordsAtStart} record(s) in the chain, chain input of the entry {chainInput} bytes, "
            + $"HMAC benchmark input {_macInput.Length} bytes, audit key v{_auditKeyVersion}, "
            + $"SQLite journal_mode={journal} synchronous={synchronous} ({_appliance.Root})");
    }

    /// <summary>Recomputes the whole chain and checks the counts of records and scratch rows, then deletes everything.</summary>
    [GlobalCleanup]
    public async Task Cleanup()
    {
        try
        {
            Console.WriteLine($"// AuditAppend cleanup: {_appended} appended, {_scratchRows} scratch rows, {_macs} HSM MACs");
            if (_appended == 0 && _scratchRows <= 1 && _macs == 0)
            {
                throw new InvalidOperationException("no invocation ran");
            }

            var verification = await VerifyChainAsync(_recordsAtStart + _appended);
            var last = (await _audit.ListAsync(verification.LastSeq - 1, 1)).Single();
            if (last.Event != _entry.Event || last.Actor != _entry.Actor || last.ApplicationId != _entry.ApplicationId || last.Mode != _entry.Mode
                || last.Subject != _entry.Subject || last.Outcome != _entry.Outcome || last.Detail != _entry.Detail!.ToJsonString()
                || last.KeyVersion != _auditKeyVersion)
            {
                throw new InvalidOperationException($"the last audit record (seq {last.Seq}) is not the benchmark's entry");
            }

            await CheckScratchRowsAsync();
            Console.WriteLine($"// AuditAppend cleanup: chain valid, {verification.Records} records, head seq {verification.LastSeq}");
        }
        finally
        {
            if (_appliance is not null)
            {
                await _appliance.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// The same kind of transaction without the chain: through the appliance's <see cref="Database.InTransactionAsync"/>
    /// (pooled connection, its PRAGMAs, <c>BEGIN IMMEDIATE</c>, commit), one INSERT of the row <see cref="AuditLog"/> would
    /// write for the entry — same columns, same values but a fixed mac, the detail serialised per call as there.
    /// </summary>
    [Benchmark(Baseline = true)]
    public Task<int> InsertWithoutChain() => InsertScratchAsync();

    /// <summary><see cref="AuditLog.AppendAsync(AuditEntry, CancellationToken)"/>: what a request pays, the pending record's insert and commit.</summary>
    [Benchmark]
    public async Task AuditLogAppend()
    {
        await _audit.AppendAsync(_entry);
        _appended++;
    }

    /// <summary>
    /// An append and its chaining alone (the worst case: a batch of one): the insert, then the chainer's head read,
    /// HSM HMAC, and the transaction that inserts the chained row, deletes the pending one and moves the head.
    /// </summary>
    [Benchmark]
    public async Task<int> AuditLogAppendAndChain()
    {
        await _audit.AppendAsync(_entry);
        var chained = await _audit.ChainPendingAsync();
        if (chained < 1)
        {
            throw new InvalidOperationException($"append {_appended + 1} left nothing to chain");
        }

        _appended++;
        return chained;
    }

    /// <summary>The append's HSM part alone: <see cref="HsmMac.Sign(KeyPurpose, byte[])"/> with the audit key over 32 + 200 bytes.</summary>
    [Benchmark]
    public KeyedMac HsmAuditMacOnly()
    {
        var signed = _mac.Sign(KeyPurpose.Audit, _macInput);
        if (signed.Mac.Length != MacLength)
        {
            throw new InvalidOperationException($"the HSM returned a {signed.Mac.Length}-byte MAC");
        }

        _macs++;
        return signed;
    }

    private async Task<int> InsertScratchAsync()
    {
        var seq = _scratchRows + 1;
        var at = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var detail = _entry.Detail?.ToJsonString() ?? "{}";
        var inserted = await _db.InTransactionAsync((c, tx) => c.ExecuteAsync(
            InsertScratch,
            new
            {
                seq, at, evt = _entry.Event, actor = _entry.Actor, app = _entry.ApplicationId, mode = _entry.Mode, subject = _entry.Subject,
                outcome = _entry.Outcome, detail, version = _auditKeyVersion, mac = _scratchMac,
            }, tx));
        if (inserted != 1)
        {
            throw new InvalidOperationException($"the scratch INSERT wrote {inserted} rows");
        }

        _scratchRows = seq;
        return inserted;
    }

    private async Task CheckScratchRowsAsync()
    {
        var rows = await _db.WithConnectionAsync(c => c.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM bench_audit_scratch"));
        var maxSeq = await _db.WithConnectionAsync(c => c.ExecuteScalarAsync<long>("SELECT MAX(seq) FROM bench_audit_scratch"));
        if (rows != _scratchRows || maxSeq != _scratchRows)
        {
            throw new InvalidOperationException($"the scratch table holds {rows} rows up to seq {maxSeq}, not {_scratchRows}");
        }
    }

    /// <summary><see cref="AuditLog.VerifyAsync"/>; throws unless valid and, when given, holding exactly that many records.</summary>
    private async Task<AuditVerification> VerifyChainAsync(long? expectedRecords)
    {
        var v = await _audit.VerifyAsync();
        if (!v.Valid)
        {
            throw new InvalidOperationException($"the audit chain is broken at seq {v.FirstBad} ({v.Records} records, head {v.LastSeq})");
        }

        if (expectedRecords is { } n && (v.Records != n || v.LastSeq != n))
        {
            throw new InvalidOperationException($"the audit chain holds {v.Records} records (head {v.LastSeq}), not the {n} appended");
        }

        return v;
    }

    private Task<string> PragmaAsync(string name) =>
        _db.WithConnectionAsync(async c => Convert.ToString(await c.ExecuteScalarAsync($"PRAGMA {name}"), CultureInfo.InvariantCulture) ?? "");
}
