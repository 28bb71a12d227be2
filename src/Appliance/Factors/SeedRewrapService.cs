using Dapper;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Crypto;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace DevRift.Hsm.Appliance.Factors;

/// <summary>
/// Moves TOTP seeds to the newest seed KEK after a rotation, in the background: it finds factors whose
/// <c>kek_version</c> is older than the current KEK, re-wraps each inside the HSM (the seed never leaves it) and stores
/// the new blob with a conditional <c>UPDATE … WHERE id AND kek_version AND wrapped_seed</c> still match what it read,
/// so it never overwrites a re-enrolment or another node's re-wrap: the loser simply finds nothing to do. The old
/// blob stays in the row until the new one is committed, so a failure at any point loses no seed.
/// Runs at start, whenever the key ring's versions change (a rotation here, or another node's seen by a refresh),
/// and again after <see cref="RetryInterval"/> while some factor is left behind.
/// </summary>
public sealed partial class SeedRewrapService : BackgroundService
{
    public const int BatchSize = 100;

    public static readonly TimeSpan RetryInterval = TimeSpan.FromMinutes(1);

    private readonly Database _db;
    private readonly SeedVault _vault;
    private readonly HsmConnection _hsm;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _wake = new(0, 1);

    public SeedRewrapService(Database db, SeedVault vault, HsmConnection hsm, TimeProvider time, ILogger<SeedRewrapService> logger)
    {
        ArgumentNullException.ThrowIfNull(hsm);
        _db = db;
        _vault = vault;
        _hsm = hsm;
        _time = time;
        _logger = logger;
        hsm.KeysChanged += (_, _) => Wake();
    }

    /// <summary>Asks for a pass soon (coalesced: many wakes before the pass runs make one pass).</summary>
    public void Wake()
    {
        try
        {
            _wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // A pass is already due.
        }
        catch (ObjectDisposedException)
        {
            // Stopped.
        }
    }

    /// <summary>
    /// One pass over every factor older than the current KEK, in batches. Returns how many were re-wrapped and how many
    /// are still behind (refused by the HSM, or the HSM or database failed mid-way); those wait for a later pass.
    /// </summary>
    public async Task<(int Rewrapped, int Left)> RunOnceAsync(CancellationToken ct = default)
    {
        var current = _hsm.CurrentVersion(KeyPurpose.SeedKek);
        int rewrapped = 0, left = 0;
        var after = "";
        while (!ct.IsCancellationRequested)
        {
            var batch = (await _db.WithConnectionAsync(c => c.QueryAsync<(string Id, long KekVersion, byte[] Blob)>(
                $"SELECT id, CAST(kek_version AS BIGINT), wrapped_seed FROM totp_factors WHERE kek_version < @current AND id > @after ORDER BY id LIMIT {BatchSize}",
                new { current, after }), ct)).ToList();
            foreach (var (id, kekVersion, blob) in batch)
            {
                WrappedSeed fresh;
                try
                {
                    fresh = _vault.Rewrap(new WrappedSeed((int)kekVersion, blob));
                }
                catch (HsmDataException e)
                {
                    // A blob the HSM refuses (tampered, or its KEK is gone) stays as it is; it is reported, not lost.
                    LogRefused(_logger, id, e.Message);
                    left++;
                    continue;
                }

                if (fresh.KekVersion <= kekVersion)
                {
                    continue;
                }

                var updated = await _db.WithConnectionAsync(c => c.ExecuteAsync(
                    "UPDATE totp_factors SET kek_version = @newVersion, wrapped_seed = @newBlob WHERE id = @id AND kek_version = @oldVersion AND wrapped_seed = @oldBlob",
                    new { newVersion = fresh.KekVersion, newBlob = fresh.Blob, id, oldVersion = kekVersion, oldBlob = blob }), ct);
                rewrapped += updated;
            }

            if (batch.Count < BatchSize)
            {
                break;
            }

            after = batch[^1].Id;
        }

        return (rewrapped, left);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            var retry = false;
            try
            {
                var (rewrapped, left) = await RunOnceAsync(stoppingToken);
                if (rewrapped > 0 || left > 0)
                {
                    LogPass(_logger, rewrapped, left);
                }

                retry = left > 0;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (e is StorageUnavailableException or HsmException)
            {
                LogPassFailed(_logger, e.GetType().Name, e.Message);
                retry = true;
            }

            using var timeout = retry ? new CancellationTokenSource(RetryInterval, _time) : new CancellationTokenSource();
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, timeout.Token);
            try
            {
                await _wake.WaitAsync(wait.Token);
            }
            catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested)
            {
                // Retry interval over.
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    public override void Dispose()
    {
        _wake.Dispose();
        base.Dispose();
    }

    [LoggerMessage(EventId = 1201, Level = LogLevel.Information, Message = "Seed re-wrap: {Rewrapped} factor(s) moved to the current KEK, {Left} left for a later pass")]
    private static partial void LogPass(ILogger logger, int rewrapped, int left);

    [LoggerMessage(EventId = 1202, Level = LogLevel.Warning, Message = "Seed re-wrap: the HSM refused the seed of factor {FactorId}: {Reason}")]
    private static partial void LogRefused(ILogger logger, string factorId, string reason);

    [LoggerMessage(EventId = 1203, Level = LogLevel.Warning, Message = "Seed re-wrap pass failed ({ErrorType}: {Error}); retrying later")]
    private static partial void LogPassFailed(ILogger logger, string errorType, string error);
}
