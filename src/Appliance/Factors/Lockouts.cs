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
/// Consecutive failed APP, BACKUP and KEY checks per user (shared by every API key of the application, every
/// node, every restart): after <c>lockout_threshold</c> failures the user is locked for <c>lockout_seconds</c>,
/// doubling on each further lock, and after <c>hard_lock_threshold</c> consecutive failures until the factor is
/// reset. Counted in the database in one locked transaction.
/// </summary>
public sealed class Lockouts(Database db, AuditLog audit, TimeProvider time, ApplianceMetrics metrics)
{
    private static readonly TimeSpan s_maxLock = TimeSpan.FromDays(30);

    /// <summary>Throws 429 <c>too_many_attempts</c> while the user is locked.</summary>
    public async Task EnsureNotLockedAsync(ApiCaller caller, string userKey, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var row = await db.WithConnectionAsync(c => c.QuerySingleOrDefaultAsync<Row>(
            "SELECT failures, locks, locked_until AS LockedUntil, hard_locked AS HardLocked FROM lockouts WHERE application_id = @app AND mode = @mode AND user_key = @userKey",
            new { app = caller.Application.Id, mode = caller.Mode, userKey }), ct);
        ThrowIfLocked(row, time.GetUtcNow().ToUnixTimeMilliseconds());
    }

    /// <summary>Records a failed check; returns how many failures remain before the next lock.</summary>
    public async Task<int> RecordFailureAsync(ApiCaller caller, string userKey, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var settings = caller.Application.Settings;
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var engaged = false;
        var remaining = await db.InTransactionAsync(async (c, tx) =>
        {
            var key = new { app = caller.Application.Id, mode = caller.Mode, userKey };
            await c.ExecuteAsync(
                "INSERT INTO lockouts (application_id, mode, user_key, failures, locks, locked_until, hard_locked) VALUES (@app, @mode, @userKey, 0, 0, 0, 0) ON CONFLICT (application_id, mode, user_key) DO NOTHING",
                key, tx);
            var row = await c.QuerySingleAsync<Row>(
                "SELECT failures, locks, locked_until AS LockedUntil, hard_locked AS HardLocked FROM lockouts WHERE application_id = @app AND mode = @mode AND user_key = @userKey" + db.Dialect.ForUpdate,
                key, tx);
            var failures = row.Failures + 1;
            var locks = row.Locks;
            var lockedUntil = row.LockedUntil;
            var hard = row.HardLocked != 0 || failures >= settings.HardLockThreshold;
            if (failures % settings.LockoutThreshold == 0)
            {
                var seconds = Math.Min(settings.LockoutSeconds * Math.Pow(2, Math.Min(locks, 30)), s_maxLock.TotalSeconds);
                lockedUntil = now + (long)(seconds * 1000);
                locks++;
            }

            engaged = lockedUntil != row.LockedUntil || (hard && row.HardLocked == 0);

            await c.ExecuteAsync(
                "UPDATE lockouts SET failures = @failures, locks = @locks, locked_until = @lockedUntil, hard_locked = @hard WHERE application_id = @app AND mode = @mode AND user_key = @userKey",
                new { failures, locks, lockedUntil, hard = hard ? 1 : 0, key.app, key.mode, key.userKey }, tx);
            if (locks > row.Locks || (hard && row.HardLocked == 0))
            {
                // A lock engaging is audited in the same transaction: it commits with the lock or not at all.
                await audit.AppendAsync(c, tx, AuditEntry.ByCaller(caller, AuditEvents.LockoutEngaged, userKey, hard ? "hard_locked" : "locked",
                    new JsonObject { ["consecutive_failures"] = failures, ["locked_until"] = hard ? null : DateTimeOffset.FromUnixTimeMilliseconds(lockedUntil).UtcDateTime }));
            }

            return (int)(settings.LockoutThreshold - (failures % settings.LockoutThreshold)) % settings.LockoutThreshold;
        }, ct);
        if (engaged)
        {
            metrics.LockoutEngaged(); // counted once committed
        }

        return remaining;
    }

    /// <summary>
    /// A success clears the consecutive count (not a hard lock, which only a reset clears). The number of locks so far
    /// stays, so that the next lock still doubles ("doubling on each repeat"): otherwise every legitimate sign-in would
    /// hand a guesser a fresh 300 s schedule.
    /// </summary>
    public Task RecordSuccessAsync(ApiCaller caller, string userKey, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        return db.WithConnectionAsync(c => c.ExecuteAsync(
            "UPDATE lockouts SET failures = 0, locked_until = 0 WHERE application_id = @app AND mode = @mode AND user_key = @userKey AND hard_locked = 0",
            new { app = caller.Application.Id, mode = caller.Mode, userKey }), ct);
    }

    /// <summary>
    /// <see cref="RecordSuccessAsync(ApiCaller, string, CancellationToken)"/> inside the caller's transaction, so that the
    /// success commits (or not) with the code it consumed.
    /// </summary>
    public static Task RecordSuccessAsync(DbConnection connection, DbTransaction transaction, ApiCaller caller, string userKey)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(caller);
        return connection.ExecuteAsync(
            "UPDATE lockouts SET failures = 0, locked_until = 0 WHERE application_id = @app AND mode = @mode AND user_key = @userKey AND hard_locked = 0 AND (failures <> 0 OR locked_until <> 0)",
            new { app = caller.Application.Id, mode = caller.Mode, userKey }, transaction);
    }

    /// <summary>Clears everything, including a hard lock (the factor was reset).</summary>
    public Task ResetAsync(ApiCaller caller, string userKey, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        return db.WithConnectionAsync(c => c.ExecuteAsync(
            "DELETE FROM lockouts WHERE application_id = @app AND mode = @mode AND user_key = @userKey",
            new { app = caller.Application.Id, mode = caller.Mode, userKey }), ct);
    }

    public async Task<LockoutState> StateAsync(ApiCaller caller, string userKey, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var row = await db.WithConnectionAsync(c => c.QuerySingleOrDefaultAsync<Row>(
            "SELECT failures, locks, locked_until AS LockedUntil, hard_locked AS HardLocked FROM lockouts WHERE application_id = @app AND mode = @mode AND user_key = @userKey",
            new { app = caller.Application.Id, mode = caller.Mode, userKey }), ct);
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        return row is null
            ? new LockoutState(0, null, false)
            : new LockoutState((int)row.Failures, row.LockedUntil > now ? DateTimeOffset.FromUnixTimeMilliseconds(row.LockedUntil) : null, row.HardLocked != 0);
    }

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
            { AttemptsRemaining = 0, RetryAfterSeconds = (int)Math.Ceiling((row.LockedUntil - now) / 1000.0) };
        }
    }

    private sealed class Row
    {
        public long Failures { get; init; }

        public long Locks { get; init; }

        public long LockedUntil { get; init; }

        public long HardLocked { get; init; }
    }
}
