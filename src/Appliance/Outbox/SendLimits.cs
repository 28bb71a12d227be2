using System.Data.Common;
using Dapper;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Storage;

namespace DevRift.Hsm.Appliance.Outbox;

/// <summary>
/// The per-application send limit (<c>sends_per_application_per_hour</c>), enforced in the database: inside the send's
/// transaction, the application's lock row for this mode is taken (so concurrent sends on any node queue here), then
/// the code sends (challenges) of the last hour are counted. Each mode has its own budget, like everything else in a
/// mode: test traffic never throttles live traffic, and a test key cannot learn how much live traffic there is.
/// </summary>
public static class SendLimits
{
    private const long HourMs = 3_600_000;

    /// <summary>Throws 429 <c>rate_limited</c> (with Retry-After) when the application has used its hourly budget.</summary>
    public static async Task CheckApplicationAsync(DbConnection connection, DbTransaction transaction, Dialect dialect,
        string applicationId, string mode, int perHour, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(dialect);
        var key = new { app = applicationId, mode };
        await connection.ExecuteAsync(
            "INSERT INTO application_send_limits (application_id, mode) VALUES (@app, @mode) ON CONFLICT (application_id, mode) DO NOTHING",
            key, transaction);
        await connection.ExecuteScalarAsync<string>(
            "SELECT application_id FROM application_send_limits WHERE application_id = @app AND mode = @mode" + dialect.ForUpdate,
            key, transaction);

        var nowMs = now.ToUnixTimeMilliseconds();
        var since = nowMs - HourMs;
        var parameters = new { app = applicationId, mode, since, perHour };
        var recent = await connection.ExecuteScalarAsync<long>(
            "SELECT COUNT(*) FROM (SELECT 1 FROM challenges WHERE application_id = @app AND mode = @mode AND created_at > @since LIMIT @perHour) recent",
            parameters, transaction);
        if (recent < perHour)
        {
            return;
        }

        var oldest = await connection.ExecuteScalarAsync<long>(
            "SELECT MIN(created_at) FROM challenges WHERE application_id = @app AND mode = @mode AND created_at > @since",
            parameters, transaction);
        var wait = oldest + HourMs - nowMs;
        throw new MfaException(ErrorCode.RateLimited, $"this application may send at most {perHour} codes per hour; try again later")
        {
            RetryAfterSeconds = (int)Math.Max(1, Math.Ceiling(wait / 1000.0)),
        };
    }
}
