using System.Security.Cryptography;
using Dapper;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Audit;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Appliance.Users;
using DevRift.Hsm.Crypto;

namespace DevRift.Hsm.Appliance.Factors;

/// <summary>What an enrolment returns once: the only time the seed is shown.</summary>
public sealed record AppEnrollment(
    string Id, string User, string Status, byte[] QrPng, string OtpAuthUri, string Secret,
    string Algorithm, int Digits, int Period, DateTimeOffset ExpiresAt, bool LiveMode);

/// <summary>An app factor as the factors summary shows it.</summary>
public sealed record AppFactorState(string Status, DateTimeOffset CreatedAt, DateTimeOffset? ConfirmedAt);

/// <summary>
/// Authenticator-app factors. The seed comes from the HSM, is wrapped under the seed KEK and stored only
/// wrapped; it is in host memory once, to draw the QR code. Verification runs the HMAC in the HSM on a cached
/// unwrapped handle and accepts a step only if it is newer than the last used one, through one conditional
/// update, so duplicates racing on any number of nodes get one success. A pending enrolment becomes active on
/// its first valid code; an active factor stays until a new one is confirmed.
/// </summary>
public sealed class TotpFactors(Database db, SeedVault vault, TotpVerifier verifier, Lockouts lockouts, Identities identities, AuditLog audit, TimeProvider time)
{
    public static readonly TimeSpan PendingLifetime = TimeSpan.FromMinutes(15);

    /// <summary>Starts an enrolment for the user's identity (linked to <paramref name="userId"/> when given).</summary>
    public async Task<AppEnrollment> EnrollAsync(ApiCaller caller, string? userValue, string? userId = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var settings = caller.Application.Settings;
        if (!settings.IsEnabled("APP"))
        {
            throw new MfaException(ErrorCode.MethodDisabled, "APP is not enabled in this application's settings", "type");
        }

        var user = MfaUser.Parse(userValue).WithUserId(userId);
        var mode = OtpAuth.Mode(settings.TotpAlgorithm);
        var seed = vault.GenerateSeed(mode);
        string secret;
        WrappedSeed wrapped;
        try
        {
            wrapped = vault.Wrap(seed);
            secret = OtpAuth.Base32(seed);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }

        var issuer = string.IsNullOrWhiteSpace(settings.TotpIssuer) ? caller.Application.Name : settings.TotpIssuer.Trim();
        var uri = OtpAuth.Uri(issuer, user.Key, secret, settings.TotpAlgorithm, settings.TotpDigits, settings.TotpPeriodSeconds);
        var now = time.GetUtcNow();
        var id = Ids.New("totp_");
        await db.InTransactionAsync(async (c, tx) =>
        {
            // A new enrolment replaces a pending one; an active factor stays until this one is confirmed.
            var owner = await identities.LinkAsync(c, tx, caller, user);
            await c.ExecuteAsync(
                "DELETE FROM totp_factors WHERE application_id = @app AND mode = @mode AND user_key = @user AND status = 'pending'",
                new { app = caller.Application.Id, mode = caller.Mode, user = owner }, tx);
            await c.ExecuteAsync(
                """
                INSERT INTO totp_factors (id, application_id, mode, user_key, status, algorithm, digits, period, kek_version, wrapped_seed, last_used_step, created_at, expires_at)
                VALUES (@id, @app, @mode, @user, 'pending', @algorithm, @digits, @period, @kek, @blob, -1, @now, @expires)
                """,
                new
                {
                    id, app = caller.Application.Id, mode = caller.Mode, user = owner, algorithm = settings.TotpAlgorithm,
                    digits = settings.TotpDigits, period = settings.TotpPeriodSeconds, kek = wrapped.KekVersion, blob = wrapped.Blob,
                    now = now.ToUnixTimeMilliseconds(), expires = (now + PendingLifetime).ToUnixTimeMilliseconds(),
                }, tx);
            return 0;
        }, ct);
        return new AppEnrollment(id, user.Key, "pending", OtpAuth.QrPng(uri), uri, secret, settings.TotpAlgorithm,
            settings.TotpDigits, settings.TotpPeriodSeconds, now + PendingLifetime, caller.LiveMode);
    }

    /// <summary>The code as the app shows it (6 to 8 digits, spaces ignored), or 400 <c>invalid_code_format</c>.</summary>
    public static string ParseCode(string? value)
    {
        var code = (value ?? "").Replace(" ", "", StringComparison.Ordinal);
        return code.Length is >= 6 and <= 8 && code.All(char.IsAsciiDigit)
            ? code
            : throw new MfaException(ErrorCode.InvalidCodeFormat, "'code' must be the 6 to 8 digits the authenticator app shows", "code");
    }

    /// <summary>
    /// The APP check of the verification pipeline (which has checked the method, the user and the lockout): on success
    /// the step is consumed, the lockout cleared and <paramref name="record"/> appended to the audit log in one
    /// transaction, so a failure to audit leaves the step unconsumed; a wrong code counts toward the lockout.
    /// </summary>
    public async Task<DateTimeOffset> CheckAsync(ApiCaller caller, MfaUser user, string owner, string code, AuditEntry? record, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(user);
        var settings = caller.Application.Settings;

        var now = time.GetUtcNow();
        var factors = (await db.WithConnectionAsync(c => c.QueryAsync<FactorRow>(
            $"SELECT {FactorRow.Columns} FROM totp_factors WHERE application_id = @app AND mode = @mode AND user_key = @user ORDER BY status, created_at DESC",
            new { app = caller.Application.Id, mode = caller.Mode, user = owner }), ct))
            .Where(f => f.Status == "active" || f.ExpiresAt > now.ToUnixTimeMilliseconds())
            .ToList();
        if (factors.Count == 0)
        {
            throw new MfaException(ErrorCode.NotEnrolled, "this user has no authenticator app; enrol one with POST /v1/mfa/app", "user");
        }

        var replayed = false;
        foreach (var factor in factors)
        {
            // "active" sorts first: the common case is one factor and one C_Sign.
            var result = verifier.Verify(
                new WrappedSeed((int)factor.KekVersion, factor.WrappedSeed),
                new TotpParameters(OtpAuth.Mode(factor.Algorithm), (int)factor.Digits, (int)factor.Period),
                code, now, settings.TotpWindowBack, settings.TotpWindowForward, factor.LastUsedStep);
            if (result.Valid && await AcceptAsync(caller, user.Key, factor, result.MatchedStep, now, record, ct))
            {
                return now;
            }

            replayed |= result.Replayed || result.Valid;
        }

        if (replayed)
        {
            // A real code that was already used (or lost a race): not a guess, so not a lockout failure.
            throw new MfaException(ErrorCode.InvalidCode, "this code was already used; wait for the next one", "code");
        }

        var remaining = await lockouts.RecordFailureAsync(caller, owner, user.Key, ct);
        throw new MfaException(ErrorCode.InvalidCode, "the code is not valid", "code") { AttemptsRemaining = remaining };
    }

    /// <summary>Removes the user's app factors (pending and active) and clears their lockout. True if any existed.</summary>
    public async Task<bool> RemoveAsync(ApiCaller caller, string? userValue, string? userId = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var owner = await identities.KeyAsync(caller, MfaUser.Parse(userValue).WithUserId(userId), ct);
        var removed = await db.WithConnectionAsync(c => c.ExecuteAsync(
            "DELETE FROM totp_factors WHERE application_id = @app AND mode = @mode AND user_key = @user",
            new { app = caller.Application.Id, mode = caller.Mode, user = owner }), ct);
        await lockouts.ResetAsync(caller, owner, ct);
        return removed > 0;
    }

    public async Task<AppFactorState?> StateAsync(ApiCaller caller, string userKey, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var factors = await db.WithConnectionAsync(c => c.QueryAsync<FactorRow>(
            $"SELECT {FactorRow.Columns} FROM totp_factors WHERE application_id = @app AND mode = @mode AND user_key = @user ORDER BY status, created_at DESC",
            new { app = caller.Application.Id, mode = caller.Mode, user = userKey }), ct);
        var f = factors.FirstOrDefault(f => f.Status == "active" || f.ExpiresAt > now);
        return f is null ? null : new AppFactorState(f.Status, DateTimeOffset.FromUnixTimeMilliseconds(f.CreatedAt),
            f.ConfirmedAt is { } c ? DateTimeOffset.FromUnixTimeMilliseconds(c) : null);
    }

    private async Task<bool> AcceptAsync(ApiCaller caller, string subject, FactorRow factor, long step, DateTimeOffset now, AuditEntry? record, CancellationToken ct)
    {
        var nowMs = now.ToUnixTimeMilliseconds();
        if (factor.Status == "active")
        {
            return await db.InTransactionAsync(async (c, tx) =>
            {
                if (await c.ExecuteAsync(
                    "UPDATE totp_factors SET last_used_step = @step WHERE id = @id AND status = 'active' AND last_used_step < @step",
                    new { step, id = factor.Id }, tx) != 1)
                {
                    return false;
                }

                await lockouts.RecordSuccessAsync(c, tx, caller, factor.UserKey);
                if (record is not null)
                {
                    await audit.AppendAsync(c, tx, record);
                }

                return true;
            }, ct);
        }

        // Confirming a pending enrolment: it becomes the user's only active factor, atomically.
        return await db.InTransactionAsync(async (c, tx) =>
        {
            var confirmed = await c.ExecuteAsync(
                "UPDATE totp_factors SET last_used_step = @step, status = 'active', confirmed_at = @now, expires_at = NULL WHERE id = @id AND status = 'pending' AND last_used_step < @step AND expires_at > @now",
                new { step, id = factor.Id, now = nowMs }, tx);
            if (confirmed != 1)
            {
                return false;
            }

            await c.ExecuteAsync(
                "DELETE FROM totp_factors WHERE application_id = @app AND mode = @mode AND user_key = @user AND status = 'active' AND id <> @id",
                new { app = caller.Application.Id, mode = caller.Mode, user = factor.UserKey, id = factor.Id }, tx);
            await lockouts.RecordSuccessAsync(c, tx, caller, factor.UserKey);
            await audit.AppendAsync(c, tx, AuditEntry.ByCaller(caller, AuditEvents.AppFactorConfirm, subject, "active",
                new System.Text.Json.Nodes.JsonObject { ["factor_id"] = factor.Id }));
            if (record is not null)
            {
                await audit.AppendAsync(c, tx, record);
            }

            return true;
        }, ct);
    }

    private sealed class FactorRow
    {
        public const string Columns =
            "id, user_key AS UserKey, status, algorithm, digits, period, kek_version AS KekVersion, wrapped_seed AS WrappedSeed, last_used_step AS LastUsedStep, created_at AS CreatedAt, expires_at AS ExpiresAt, confirmed_at AS ConfirmedAt";

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
