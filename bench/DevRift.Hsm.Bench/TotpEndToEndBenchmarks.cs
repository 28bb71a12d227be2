using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Dapper;
using DevRift.Hsm.Appliance;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Factors;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Appliance.Users;
using DevRift.Hsm.Crypto;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OtpNet;

namespace DevRift.Hsm.Bench;

/// <summary>
/// A valid TOTP code verified end to end at the service layer (no HTTP): <see cref="TotpFactors.VerifyAsync"/> as
/// the appliance runs it — SQLite read of the factor, lockout check, one <c>C_Sign</c> on the cached seed handle,
/// the conditional <c>UPDATE … last_used_step</c> and the lockout reset — against Otp.NET verifying the same code in
/// memory, with variants that take the service apart: HSM only, database only, its reads only, the step update only,
/// and the whole verify and the database part with <c>PRAGMA synchronous = NORMAL</c> (no <c>fsync</c> per commit;
/// the appliance runs with SQLite's default, <c>FULL</c>).
/// </summary>
/// <remarks>
/// <para>
/// <c>[GlobalSetup]</c> builds the appliance's own service collection (<c>AddAppliance()</c>) on in-memory
/// configuration: a private SoftHSM2 token (<see cref="BenchTokenDirectory"/>), a SQLite file beside it, and a
/// <see cref="SteppingClock"/>. It runs <c>init</c> (keys, migrations, demo application and test key),
/// authenticates the test key, enrols a user and confirms the factor with the code of the first step.
/// </para>
/// <para>
/// The service accepts a step only if it is newer than the factor's last used one, so every stateful invocation
/// moves the clock one period (30 s) on and presents that step's code, taken from a table computed in setup
/// (index + array read: nanoseconds, nothing allocated). Every invocation must succeed: a failure throws, which
/// aborts the run, and <c>[GlobalCleanup]</c> checks that the factor's <c>last_used_step</c> in the database moved by
/// exactly the number of successful invocations.
/// </para>
/// </remarks>
[MemoryDiagnoser]
public class TotpEndToEndBenchmarks
{
    private const string User = "ada@example.com";
    private const int Period = 30;
    private const int Digits = 6;
    private const int CodeTableSize = 1 << 16;

    private const string SelectFactors =
        "SELECT id, user_key AS UserKey, status, algorithm, digits, period, kek_version AS KekVersion, wrapped_seed AS WrappedSeed, last_used_step AS LastUsedStep, created_at AS CreatedAt, expires_at AS ExpiresAt, confirmed_at AS ConfirmedAt "
        + "FROM totp_factors WHERE application_id = @app AND mode = @mode AND user_key = @user ORDER BY status, created_at DESC";

    private const string UpdateStep =
        "UPDATE totp_factors SET last_used_step = @step WHERE id = @id AND status = 'active' AND last_used_step < @step";

    private static readonly VerificationWindow s_window = new(previous: 1, future: 1);

    // Five seconds into a step, so the results do not depend on the wall clock.
    private static readonly DateTimeOffset s_start = new(2026, 6, 1, 12, 0, 5, TimeSpan.Zero);

    private readonly SteppingClock _clock = new(s_start);

    private BenchAppliance? _appliance;
    private ServiceProvider _services = null!;
    private Database _db = null!;
    private TotpFactors _factors = null!;
    private TotpVerifier _verifier = null!;
    private Lockouts _lockouts = null!;
    private ApiCaller _caller = null!;
    private string _factorId = null!;
    private WrappedSeed _wrapped = null!;
    private TotpParameters _parameters;
    private byte[] _seed = null!;
    private string[] _codes = null!;
    private long _step0;

    // Steps moved on since setup (stateful benchmarks), and invocations that succeeded (all of them).
    private long _steps;
    private long _successes;
    private long _codesComputed;
    private string? _expectedSynchronous;

    /// <summary>Builds the appliance, enrols and confirms the user, fills the code table.</summary>
    private string _owner = "";

    [GlobalSetup]
    public async Task Setup()
    {
        _appliance = BenchAppliance.Create(_clock);
        _services = _appliance.Services;

        _db = _services.GetRequiredService<Database>();
        _factors = _services.GetRequiredService<TotpFactors>();
        _verifier = _services.GetRequiredService<TotpVerifier>();
        _lockouts = _services.GetRequiredService<Lockouts>();

        var init = await _services.GetRequiredService<ApplianceInitializer>().InitializeAsync(createDemo: true);
        _caller = await _services.GetRequiredService<ApiKeys>().AuthenticateAsync(init.DemoTestKey)
            ?? throw new InvalidOperationException("the demo test key does not authenticate");
        var settings = _caller.Application.Settings;
        if (settings.TotpAlgorithm != "SHA1" || settings.TotpDigits != Digits || settings.TotpPeriodSeconds != Period
            || settings.TotpWindowBack != 1 || settings.TotpWindowForward != 1)
        {
            throw new InvalidOperationException("the demo application's TOTP settings are not SHA-1, 6 digits, 30 s, window -1/+1");
        }

        var enrolment = await _factors.EnrollAsync(_caller, User);
        _owner = await _services.GetRequiredService<Identities>().KeyAsync(_caller, MfaUser.Parse(User));
        _seed = Base32Encoding.ToBytes(enrolment.Secret);
        _parameters = new TotpParameters(OtpHashMode.Sha1, Digits, Period);
        _step0 = s_start.ToUnixTimeSeconds() / Period;
        _codes = new string[CodeTableSize];
        for (var i = 0; i < _codes.Length; i++)
        {
            _codes[i] = ComputeCode(_seed, _step0 + i);
        }

        // The table must be what an authenticator app shows: check it against Otp.NET at a few steps.
        var otp = new Totp(_seed, Period, OtpHashMode.Sha1, Digits);
        foreach (var i in (int[])[0, 1, 2, 1000, CodeTableSize - 1])
        {
            if (_codes[i] != otp.ComputeTotp(s_start.UtcDateTime.AddSeconds((double)i * Period)))
            {
                throw new InvalidOperationException($"code table entry {i} differs from Otp.NET's");
            }
        }

        // Confirm the pending factor with the first step's code (this also unwraps the seed into the handle cache).
        if (await _factors.CheckAsync(_caller, MfaUser.Parse(User), _owner, _codes[0], null) != s_start)
        {
            throw new InvalidOperationException("confirming the factor did not succeed");
        }

        var factor = await ReadFactorAsync();
        if (factor.Status != "active" || factor.LastUsedStep != _step0)
        {
            throw new InvalidOperationException($"after confirmation the factor is {factor.Status} at step {factor.LastUsedStep}, not active at {_step0}");
        }

        _factorId = factor.Id;
        _wrapped = new WrappedSeed((int)factor.KekVersion, factor.WrappedSeed);

        // The stateless benchmarks verify the first step's code at the start time; check both say yes.
        if (!OtpNetInMemoryCore() || !HsmVerifyOnlyCore())
        {
            throw new InvalidOperationException("the first step's code does not verify in memory and in the HSM");
        }

        var journal = await PragmaAsync("journal_mode");
        var synchronous = await PragmaAsync("synchronous");
        _expectedSynchronous ??= synchronous;
        Console.WriteLine($"// TotpEndToEnd setup: SQLite journal_mode={journal} synchronous={synchronous} ({_appliance.Root})");
    }

    /// <summary>
    /// As <see cref="Setup"/>, then <c>PRAGMA synchronous = NORMAL</c> on every connection the pool will hand out: in
    /// WAL mode a commit then writes the WAL without waiting for <c>fsync</c> (durable at the next checkpoint).
    /// </summary>
    [GlobalSetup(Targets = [nameof(VerifyAsyncSynchronousNormal), nameof(DatabaseOnlySynchronousNormal)])]
    public async Task SetupSynchronousNormal()
    {
        _expectedSynchronous = "1";
        await Setup();

        // Open several at once so that the pool holds only connections set here; a sequential caller reuses one.
        var connections = new List<System.Data.Common.DbConnection>();
        for (var i = 0; i < 8; i++)
        {
            connections.Add(await _db.OpenAsync());
        }

        foreach (var c in connections)
        {
            await c.ExecuteAsync("PRAGMA synchronous = NORMAL");
            await c.DisposeAsync();
        }

        var synchronous = await PragmaAsync("synchronous");
        if (synchronous != "1")
        {
            throw new InvalidOperationException($"PRAGMA synchronous is {synchronous} after setting NORMAL");
        }
    }

    /// <summary>Checks that every invocation succeeded and the database saw each step, then deletes everything.</summary>
    [GlobalCleanup]
    public async Task Cleanup()
    {
        try
        {
            var factor = await ReadFactorAsync();
            var synchronous = await PragmaAsync("synchronous");
            var stepsStored = factor.LastUsedStep - _step0;
            Console.WriteLine(
                $"// TotpEndToEnd cleanup: {_successes} successful invocations, {_steps} clock steps, last_used_step moved by {stepsStored}, "
                + $"synchronous={synchronous}, codes computed beyond the table: {_codesComputed}");
            if (_successes == 0)
            {
                throw new InvalidOperationException("no invocation succeeded");
            }

            // Stateful benchmarks that write the step: one stored step per success, no more, no less.
            var writes = _steps > 0 && _successes == _steps && stepsStored == _steps;
            var reads = _steps > 0 && _successes == _steps && stepsStored == 0;
            var stateless = _steps == 0 && stepsStored == 0;
            if (!(writes || reads || stateless))
            {
                throw new InvalidOperationException(
                    $"inconsistent run: {_successes} successes, {_steps} steps, last_used_step moved by {stepsStored}");
            }

            if (synchronous != _expectedSynchronous)
            {
                throw new InvalidOperationException($"PRAGMA synchronous changed from {_expectedSynchronous} to {synchronous} during the run");
            }
        }
        finally
        {
            if (_seed is not null)
            {
                CryptographicOperations.ZeroMemory(_seed);
            }

            if (_appliance is not null)
            {
                await _appliance.DisposeAsync();
            }
        }
    }

    /// <summary>Otp.NET with the seed in memory, the same code and window (a new <see cref="Totp"/> per call, as in <see cref="TotpBenchmarks"/>).</summary>
    [Benchmark(Baseline = true)]
    public bool OtpNetInMemory()
    {
        var valid = OtpNetInMemoryCore();
        Expect(valid, "Otp.NET rejected the code");
        return valid;
    }

    /// <summary><see cref="TotpFactors.VerifyAsync"/> for the next step's code: the whole service-layer verify.</summary>
    [Benchmark]
    public async Task<DateTimeOffset> VerifyAsyncEndToEnd()
    {
        var now = NextStep();
        var at = await _factors.CheckAsync(_caller, MfaUser.Parse(User), _owner, CurrentCode(), null); // throws MfaException on any failure
        Expect(at == now, "VerifyAsync returned another time");
        return at;
    }

    /// <summary>As <see cref="VerifyAsyncEndToEnd"/> with <c>PRAGMA synchronous = NORMAL</c>: no <c>fsync</c> per commit.</summary>
    [Benchmark]
    public async Task<DateTimeOffset> VerifyAsyncSynchronousNormal()
    {
        var now = NextStep();
        var at = await _factors.CheckAsync(_caller, MfaUser.Parse(User), _owner, CurrentCode(), null);
        Expect(at == now, "VerifyAsync returned another time");
        return at;
    }

    /// <summary>The HSM part alone: <see cref="TotpVerifier.Verify"/> on the factor's wrapped seed (one <c>C_Sign</c>, cached handle).</summary>
    [Benchmark]
    public bool HsmVerifyOnly()
    {
        var valid = HsmVerifyOnlyCore();
        Expect(valid, "the HSM verifier rejected the code");
        return valid;
    }

    /// <summary>
    /// The database part alone: the statements <see cref="TotpFactors.VerifyAsync"/> runs for an active factor, each
    /// on its own pooled connection as there — SELECT the factors, <see cref="Lockouts.EnsureNotLockedAsync"/>, the
    /// conditional step UPDATE, <see cref="Lockouts.RecordSuccessAsync"/>.
    /// </summary>
    [Benchmark]
    public Task<int> DatabaseOnly() => DatabaseOnlyCore();

    /// <summary>As <see cref="DatabaseOnly"/> with <c>PRAGMA synchronous = NORMAL</c>.</summary>
    [Benchmark]
    public Task<int> DatabaseOnlySynchronousNormal() => DatabaseOnlyCore();

    /// <summary>The two reads of <see cref="DatabaseOnly"/> (factors, lockout), no write.</summary>
    [Benchmark]
    public async Task<int> DatabaseReadsOnly()
    {
        var now = NextStep();
        var factors = await SelectFactorsAsync(now);
        await _lockouts.EnsureNotLockedAsync(_caller, _owner);
        Expect(factors[0].Status == "active", "the factor is not active");
        return factors.Count;
    }

    /// <summary>The conditional step UPDATE of <see cref="DatabaseOnly"/> alone (one autocommit write).</summary>
    [Benchmark]
    public async Task<int> DatabaseStepUpdateOnly()
    {
        _ = NextStep();
        var updated = await _db.WithConnectionAsync(c => c.ExecuteAsync(UpdateStep, new { step = _step0 + _steps, id = _factorId }));
        Expect(updated == 1, "the step UPDATE changed no row");
        return updated;
    }

    private bool OtpNetInMemoryCore() =>
        new Totp(_seed, Period, OtpHashMode.Sha1, Digits).VerifyTotp(s_start.UtcDateTime, _codes[0], out _, s_window);

    private bool HsmVerifyOnlyCore()
    {
        var result = _verifier.Verify(_wrapped, _parameters, _codes[0], s_start, 1, 1, lastUsedStep: -1);
        return result.Valid && result.MatchedStep == _step0;
    }

    private async Task<int> DatabaseOnlyCore()
    {
        var now = NextStep();
        var factors = await SelectFactorsAsync(now);
        await _lockouts.EnsureNotLockedAsync(_caller, _owner);
        var updated = await _db.WithConnectionAsync(c => c.ExecuteAsync(UpdateStep, new { step = _step0 + _steps, id = factors[0].Id }));
        Expect(updated == 1, "the step UPDATE changed no row");
        await _lockouts.RecordSuccessAsync(_caller, _owner);
        return updated;
    }

    /// <summary>Moves the clock one period on (a field add).</summary>
    private DateTimeOffset NextStep()
    {
        _steps++;
        _clock.Advance(TimeSpan.FromSeconds(Period));
        return _clock.GetUtcNow();
    }

    /// <summary>
    /// The code of the current step, from the table (an array read); computed in memory beyond it, which the
    /// VerifyAsync benchmarks (≥ 0.1 ms per call, a few tens of thousands of calls per run) do not reach —
    /// <c>[GlobalCleanup]</c> prints how often it happened.
    /// </summary>
    private string CurrentCode()
    {
        if (_steps < _codes.Length)
        {
            return _codes[_steps];
        }

        _codesComputed++;
        return ComputeCode(_seed, _step0 + _steps);
    }

    /// <summary>Counts a success, or throws: a benchmark of failures would measure the wrong thing.</summary>
    private void Expect(bool condition, string message)
    {
        if (!condition)
        {
            throw new InvalidOperationException($"{message} (after {_successes} successes)");
        }

        _successes++;
    }

    private async Task<List<FactorRow>> SelectFactorsAsync(DateTimeOffset now)
    {
        var nowMs = now.ToUnixTimeMilliseconds();
        var factors = (await _db.WithConnectionAsync(c => c.QueryAsync<FactorRow>(
                SelectFactors, new { app = _caller.Application.Id, mode = _caller.Mode, user = User })))
            .Where(f => f.Status == "active" || f.ExpiresAt > nowMs)
            .ToList();
        if (factors.Count != 1)
        {
            throw new InvalidOperationException($"{factors.Count} factors found, not one");
        }

        return factors;
    }

    private async Task<FactorRow> ReadFactorAsync() =>
        (await _db.WithConnectionAsync(c => c.QueryAsync<FactorRow>(
            SelectFactors, new { app = _caller.Application.Id, mode = _caller.Mode, user = User }))).Single();

    private Task<string> PragmaAsync(string name) =>
        _db.WithConnectionAsync(async c => Convert.ToString(await c.ExecuteScalarAsync($"PRAGMA {name}"), CultureInfo.InvariantCulture) ?? "");

    /// <summary>RFC 6238 code of <paramref name="step"/> (SHA-1, 6 digits), in memory.</summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Security", "CA5350", Justification = "RFC 4226/6238 TOTP is HMAC-SHA1; these are the codes an authenticator app would show.")]
    private static string ComputeCode(byte[] seed, long step)
    {
        Span<byte> counter = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(counter, step);
        Span<byte> mac = stackalloc byte[HMACSHA1.HashSizeInBytes];
        HMACSHA1.HashData(seed, counter, mac);
        var offset = mac[^1] & 0x0f;
        var value = (BinaryPrimitives.ReadInt32BigEndian(mac[offset..]) & 0x7fff_ffff) % 1_000_000;
        return value.ToString("D6", CultureInfo.InvariantCulture);
    }

    /// <summary>The columns <see cref="TotpFactors"/> reads (its row type is private).</summary>
    private sealed class FactorRow
    {
        public string Id { get; init; } = "";

        public string UserKey { get; init; } = "";

        public string Status { get; init; } = "";

        public string Algorithm { get; init; } = "";

        public long Digits { get; init; }

        public long Period { get; init; }

        public long KekVersion { get; init; }

        public byte[] WrappedSeed { get; init; } = [];

        public long LastUsedStep { get; init; }

        public long CreatedAt { get; init; }

        public long? ExpiresAt { get; init; }

        public long? ConfirmedAt { get; init; }
    }
}

/// <summary>
/// A wall clock the benchmark moves by hand (<see cref="GetUtcNow"/>); timestamps stay real, so the HSM
/// connection's 250 ms token-store check keeps its real rhythm instead of firing on every 30 s step.
/// </summary>
public sealed class SteppingClock(DateTimeOffset start) : TimeProvider
{
    private long _utcTicks = start.UtcTicks;

    /// <inheritdoc/>
    public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref _utcTicks), TimeSpan.Zero);

    /// <summary>Moves the clock on.</summary>
    public void Advance(TimeSpan by) => Interlocked.Add(ref _utcTicks, by.Ticks);
}
