using System.Data.Common;
using System.Text.Json.Nodes;
using Dapper;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Audit;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Storage;

namespace DevRift.Hsm.Appliance.Factors;

/// <summary>A user's lockout as the factors summary shows it.</summary>
public sealed record LockoutState(int ConsecutiveFailures, DateTimeOffset? LockedUntil, bool HardLocked);

/// <summary>
/// Failed APP, BACKUP and KEY checks, counted in the database in one locked transaction per failure (shared by every
/// node and restart), under the application's <c>lockout_profile</c>:
/// <list type="bullet">
/// <item><c>strict</c>: per user, shared by every API key of the application. After <c>lockout_threshold</c>
/// consecutive failures the user is locked for <c>lockout_seconds</c>, doubling on each further lock, and after
/// <c>hard_lock_threshold</c> until the factor is reset.</item>
/// <item><c>source_aware</c>: per source first, a source being the API key and, when the integrator passes it, the end
/// user's <c>client_ip</c> (IPv6 by /64). After <c>source_failure_threshold</c> failures that source alone is refused
/// for <c>source_delay_seconds</c>, doubling up to <c>source_delay_max_seconds</c>. The user lock (same durations and
/// hard lock as strict) engages only when <c>user_lockout_sources</c> distinct sources failed within
/// <c>user_lockout_window_seconds</c> (since the previous user lock ended), or after <c>user_lockout_threshold</c>
/// failures in all; and it never refuses a known source, one that has succeeded for the user before (the newest
/// <see cref="KnownSourcesPerUser"/> per user), whose own failures are still throttled as its source.</item>
/// </list>
/// </summary>
public sealed class Lockouts(Database db, AuditLog audit, TimeProvider time, ApplianceMetrics metrics)
{
    /// <summary>How many sources that succeeded are remembered per user (the newest).</summary>
    public const int KnownSourcesPerUser = 20;

    private static readonly TimeSpan s_maxLock = TimeSpan.FromDays(30);

    private const string UserWhere = "application_id = @app AND mode = @mode AND user_key = @userKey";

    private const string SelectUser =
        "SELECT failures, locks, locked_until AS LockedUntil, hard_locked AS HardLocked FROM lockouts WHERE " + UserWhere;

    private const string SelectSource =
        "SELECT failures, blocks, blocked_until AS BlockedUntil, last_success_at AS LastSuccessAt FROM lockout_sources WHERE " + UserWhere + " AND source = @source";

    /// <summary>
    /// Throws 429 <c>too_many_attempts</c> while the caller's source is refused, or the user is locked (strict: for
    /// everyone; source_aware: for every source but the known ones). Reads only: a refused request changes nothing.
    /// </summary>
    public async Task EnsureNotLockedAsync(ApiCaller caller, string userKey, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var key = Key(caller, userKey);
        if (!IsSourceAware(caller))
        {
            ThrowIfLocked(await db.WithConnectionAsync(c => c.QuerySingleOrDefaultAsync<Row>(SelectUser, key), ct), now);
            return;
        }

        var (user, source) = await db.WithConnectionAsync(async c =>
            (await c.QuerySingleOrDefaultAsync<Row>(SelectUser, key), await c.QuerySingleOrDefaultAsync<SourceRow>(SelectSource, key)), ct);
        if (source is not null && source.BlockedUntil > now)
        {
            throw new MfaException(ErrorCode.TooManyAttempts, caller.ClientIp is null
                    ? "too many failed checks with this API key for this user: wait before trying again"
                    : "too many failed checks from this client_ip for this user: wait before trying again", SourceField(caller))
            { AttemptsRemaining = 0, RetryAfterSeconds = Seconds(source.BlockedUntil - now) };
        }

        if (source is not { LastSuccessAt: > 0 })
        {
            ThrowIfLocked(user, now);
        }
    }

    /// <summary>Records a failed check; returns how many failures remain before the next lock (strict) or source refusal.</summary>
    /// <summary>
    /// Records a failed check of the user whose factors are stored under <paramref name="userKey"/> (their identity);
    /// a lock it engages is audited with <paramref name="subject"/>, the contact the integrator named.
    /// </summary>
    public async Task<int> RecordFailureAsync(ApiCaller caller, string userKey, string subject, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var outcome = await db.InTransactionAsync(async (c, tx) =>
        {
            var key = Key(caller, userKey);
            await c.ExecuteAsync(
                "INSERT INTO lockouts (application_id, mode, user_key, failures, locks, locked_until, hard_locked) VALUES (@app, @mode, @userKey, 0, 0, 0, 0) ON CONFLICT (application_id, mode, user_key) DO NOTHING",
                key, tx);
            // The user's row is the lock every failure of this user takes, whatever its source.
            var row = await c.QuerySingleAsync<Row>(SelectUser + db.Dialect.ForUpdate, key, tx);
            return IsSourceAware(caller)
                ? await SourceAwareFailureAsync(c, tx, caller, userKey, subject, row, now)
                : await StrictFailureAsync(c, tx, caller, userKey, subject, row, now);
        }, ct);

        // Counted once committed.
        if (outcome.SourceBlocked)
        {
            metrics.SourceBlocked();
        }

        if (outcome.UserLocked)
        {
            metrics.LockoutEngaged();
        }

        return outcome.Remaining;
    }

    private async Task<FailureOutcome> StrictFailureAsync(DbConnection c, DbTransaction tx, ApiCaller caller, string userKey, string subject, Row row, long now)
    {
        var threshold = caller.Application.Settings.LockoutThreshold;
        var engaged = await CountUserFailureAsync(c, tx, caller, userKey, subject, row, now,
            failures => failures % threshold == 0, failures => new JsonObject { ["consecutive_failures"] = failures });
        return new FailureOutcome(Remaining(row.Failures + 1, threshold), false, engaged);
    }

    private async Task<FailureOutcome> SourceAwareFailureAsync(DbConnection c, DbTransaction tx, ApiCaller caller, string userKey, string subject, Row row, long now)
    {
        var settings = caller.Application.Settings;
        var key = Key(caller, userKey);
        var windowMs = settings.UserLockoutWindowSeconds * 1000L;

        // Sources that are not known, not refused and quiet for a whole window are forgotten (their delay starts over),
        // so that rotating addresses cannot grow the table without bound.
        await c.ExecuteAsync(
            "DELETE FROM lockout_sources WHERE " + UserWhere + " AND source <> @source AND last_success_at = 0 AND blocked_until < @before AND last_failure_at < @before",
            new { key.app, key.mode, key.userKey, key.source, before = now - windowMs }, tx);
        await c.ExecuteAsync(
            "INSERT INTO lockout_sources (application_id, mode, user_key, source, failures, blocks, blocked_until, last_failure_at, last_success_at) VALUES (@app, @mode, @userKey, @source, 0, 0, 0, 0, 0) ON CONFLICT (application_id, mode, user_key, source) DO NOTHING",
            key, tx);
        var source = await c.QuerySingleAsync<SourceRow>(SelectSource + db.Dialect.ForUpdate, key, tx);

        // 1. The source: refused for a while after every source_failure_threshold failures, doubling.
        var sourceFailures = source.Failures + 1;
        var blocks = source.Blocks;
        var blockedUntil = source.BlockedUntil;
        if (sourceFailures % settings.SourceFailureThreshold == 0)
        {
            blockedUntil = now + LockMilliseconds(settings.SourceDelaySeconds, blocks, settings.SourceDelayMaxSeconds);
            blocks++;
        }

        await c.ExecuteAsync(
            "UPDATE lockout_sources SET failures = @sourceFailures, blocks = @blocks, blocked_until = @blockedUntil, last_failure_at = @now WHERE " + UserWhere + " AND source = @source",
            new { sourceFailures, blocks, blockedUntil, now, key.app, key.mode, key.userKey, key.source }, tx);
        var sourceBlocked = blocks > source.Blocks;
        if (sourceBlocked)
        {
            await audit.AppendAsync(c, tx, AuditEntry.ByCaller(caller, AuditEvents.LockoutEngaged, subject, "source_blocked",
                new JsonObject { ["level"] = "source", ["source"] = SourceName(caller), ["source_failures"] = sourceFailures, ["blocked_until"] = Utc(blockedUntil) }));
        }

        // 2. The user: locked only by failures from many sources since the previous lock ended, or by far more attempts.
        var distinct = await c.ExecuteScalarAsync<long>(
            "SELECT COUNT(*) FROM lockout_sources WHERE " + UserWhere + " AND failures > 0 AND last_failure_at >= @since",
            new { key.app, key.mode, key.userKey, since = Math.Max(now - windowMs, row.LockedUntil) }, tx);
        var userLocked = await CountUserFailureAsync(c, tx, caller, userKey, subject, row, now,
            failures => row.LockedUntil <= now && (distinct >= settings.UserLockoutSources || failures % settings.UserLockoutThreshold == 0),
            failures => new JsonObject { ["level"] = "user", ["source"] = SourceName(caller), ["consecutive_failures"] = failures, ["failing_sources"] = distinct });

        return new FailureOutcome(Remaining(sourceFailures, settings.SourceFailureThreshold), sourceBlocked, userLocked);
    }

    /// <summary>
    /// Counts a failure on the user's row: a timed lock (<c>lockout_seconds</c>, doubling) when <paramref name="engage"/>
    /// says so for the new consecutive count, a hard lock at <c>hard_lock_threshold</c>. A lock engaging is audited in
    /// the same transaction, so it commits with the lock or not at all. True when one engaged.
    /// </summary>
    private async Task<bool> CountUserFailureAsync(DbConnection c, DbTransaction tx, ApiCaller caller, string userKey, string subject, Row row, long now,
        Func<long, bool> engage, Func<long, JsonObject> detail)
    {
        var settings = caller.Application.Settings;
        var failures = row.Failures + 1;
        var locks = row.Locks;
        var lockedUntil = row.LockedUntil;
        var hard = row.HardLocked != 0 || failures >= settings.HardLockThreshold;
        if (engage(failures))
        {
            lockedUntil = now + LockMilliseconds(settings.LockoutSeconds, locks, s_maxLock.TotalSeconds);
            locks++;
        }

        await UpdateUserAsync(c, tx, caller, userKey, failures, locks, lockedUntil, hard);
        var engaged = locks > row.Locks || (hard && row.HardLocked == 0);
        if (engaged)
        {
            var record = detail(failures);
            record["locked_until"] = hard ? null : Utc(lockedUntil);
            await audit.AppendAsync(c, tx, AuditEntry.ByCaller(caller, AuditEvents.LockoutEngaged, subject, hard ? "hard_locked" : "locked", record));
        }

        return engaged;
    }

    private static Task<int> UpdateUserAsync(DbConnection c, DbTransaction tx, ApiCaller caller, string userKey, long failures, long locks, long lockedUntil, bool hard) =>
        c.ExecuteAsync(
            "UPDATE lockouts SET failures = @failures, locks = @locks, locked_until = @lockedUntil, hard_locked = @hard WHERE " + UserWhere,
            new { failures, locks, lockedUntil, hard = hard ? 1 : 0, app = caller.Application.Id, mode = caller.Mode, userKey }, tx);

    /// <summary>
    /// A success, inside the caller's transaction so that it commits (or not) with the code it consumed. It clears the
    /// user's consecutive count (not a hard lock, which only a reset clears). The number of locks so far stays, so that
    /// the next lock still doubles ("doubling on each repeat"): otherwise every legitimate sign-in would hand a guesser
    /// a fresh schedule. strict: it also ends a timed lock. source_aware: the source's count and delay start over and it
    /// becomes a known source; a user lock engaged by other sources stays (it does not bind known sources), so a success
    /// does not reopen the guessers' window either.
    /// </summary>
    public async Task RecordSuccessAsync(DbConnection connection, DbTransaction transaction, ApiCaller caller, string userKey)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(caller);
        var key = Key(caller, userKey);
        if (!IsSourceAware(caller))
        {
            await connection.ExecuteAsync(
                "UPDATE lockouts SET failures = 0, locked_until = 0 WHERE " + UserWhere + " AND hard_locked = 0 AND (failures <> 0 OR locked_until <> 0)",
                key, transaction);
            return;
        }

        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        await connection.ExecuteAsync(
            "UPDATE lockouts SET failures = 0 WHERE " + UserWhere + " AND hard_locked = 0 AND failures <> 0", key, transaction);
        await connection.ExecuteAsync(
            """
            INSERT INTO lockout_sources (application_id, mode, user_key, source, failures, blocks, blocked_until, last_failure_at, last_success_at)
            VALUES (@app, @mode, @userKey, @source, 0, 0, 0, 0, @now)
            ON CONFLICT (application_id, mode, user_key, source) DO UPDATE SET failures = 0, blocks = 0, blocked_until = 0, last_success_at = @now
            """,
            new { key.app, key.mode, key.userKey, key.source, now }, transaction);
        await connection.ExecuteAsync(
            "UPDATE lockout_sources SET last_success_at = 0 WHERE " + UserWhere + " AND last_success_at > 0 AND source NOT IN " +
            "(SELECT source FROM lockout_sources WHERE " + UserWhere + " AND last_success_at > 0 ORDER BY last_success_at DESC, source LIMIT @keep)",
            new { key.app, key.mode, key.userKey, keep = KnownSourcesPerUser }, transaction);
    }

    /// <summary><see cref="RecordSuccessAsync(DbConnection, DbTransaction, ApiCaller, string)"/> in a transaction of its own.</summary>
    public Task RecordSuccessAsync(ApiCaller caller, string userKey, CancellationToken ct = default) =>
        db.InTransactionAsync(async (c, tx) =>
        {
            await RecordSuccessAsync(c, tx, caller, userKey);
            return true;
        }, ct);

    /// <summary>Clears everything, including a hard lock and the user's sources (the factor was reset).</summary>
    public Task ResetAsync(ApiCaller caller, string userKey, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        return db.InTransactionAsync(async (c, tx) =>
        {
            var key = Key(caller, userKey);
            await c.ExecuteAsync("DELETE FROM lockouts WHERE " + UserWhere, key, tx);
            await c.ExecuteAsync("DELETE FROM lockout_sources WHERE " + UserWhere, key, tx);
            return true;
        }, ct);
    }

    /// <summary>The user-level lockout (what locks the user, not one source's delay).</summary>
    public async Task<LockoutState> StateAsync(ApiCaller caller, string userKey, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var row = await db.WithConnectionAsync(c => c.QuerySingleOrDefaultAsync<Row>(SelectUser, Key(caller, userKey)), ct);
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        return row is null
            ? new LockoutState(0, null, false)
            : new LockoutState((int)row.Failures, row.LockedUntil > now ? DateTimeOffset.FromUnixTimeMilliseconds(row.LockedUntil) : null, row.HardLocked != 0);
    }

    private static bool IsSourceAware(ApiCaller caller) => caller.Application.Settings.LockoutProfile == LockoutProfiles.SourceAware;

    private static LockoutKey Key(ApiCaller caller, string userKey) => new(caller.Application.Id, caller.Mode, userKey,
        caller.ClientIp is { } ip ? caller.KeyId + " " + ip.Network : caller.KeyId);

    /// <summary>The source as audit detail shows it: the client_ip network, or the API key id when none was given.</summary>
    private static string SourceName(ApiCaller caller) => caller.ClientIp?.Network ?? caller.KeyId;

    private static string SourceField(ApiCaller caller) => caller.ClientIp is null ? "user" : ClientIp.Field;

    /// <summary><paramref name="baseSeconds"/> doubled <paramref name="repeats"/> times, at most <paramref name="maxSeconds"/>, in milliseconds.</summary>
    private static long LockMilliseconds(int baseSeconds, long repeats, double maxSeconds) =>
        (long)(Math.Min(baseSeconds * Math.Pow(2, Math.Min(repeats, 30)), maxSeconds) * 1000);

    /// <summary>Failures left before the next lock when one comes every <paramref name="threshold"/> failures.</summary>
    private static int Remaining(long failures, int threshold) => (int)((threshold - (failures % threshold)) % threshold);

    private static DateTime Utc(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms).UtcDateTime;

    private static int Seconds(long ms) => (int)Math.Ceiling(ms / 1000.0);

    private static void ThrowIfLocked(Row? row, long now)
    {
        if (row is null)
        {
            return;
        }

        if (row.HardLocked != 0)
        {
            throw new MfaException(ErrorCode.TooManyAttempts, "too many consecutive failed checks: this user's factors are locked until the authenticator app is reset", "user")
            { AttemptsRemaining = 0 };
        }

        if (row.LockedUntil > now)
        {
            throw new MfaException(ErrorCode.TooManyAttempts, "too many consecutive failed checks: this user is locked out for a while", "user")
            { AttemptsRemaining = 0, RetryAfterSeconds = Seconds(row.LockedUntil - now) };
        }
    }

    private sealed record LockoutKey(string app, string mode, string userKey, string source);

    private sealed record FailureOutcome(int Remaining, bool SourceBlocked, bool UserLocked);

    private sealed class Row
    {
        public long Failures { get; init; }

        public long Locks { get; init; }

        public long LockedUntil { get; init; }

        public long HardLocked { get; init; }
    }

    private sealed class SourceRow
    {
        public long Failures { get; init; }

        public long Blocks { get; init; }

        public long BlockedUntil { get; init; }

        public long LastSuccessAt { get; init; }
    }
}
