using DevRift.Hsm.Api.Auth;
using DevRift.Hsm.Appliance.Backup;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Factors;
using DevRift.Hsm.Appliance.SecurityKeys;
using DevRift.Hsm.Appliance.Users;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace DevRift.Hsm.Api.V1;

public sealed record AppEnrollmentResponse(
    string Object, string Id, string User, string Status, string QrCode, string OtpauthUri, string Secret,
    string Algorithm, int Digits, int Period, DateTime ExpiresAt, bool Livemode);

public sealed record BackupSetResponse(string Object, string Id, string User, int Count, int Length, IReadOnlyList<MaskedDestination> Destinations, DateTime CreatedAt, bool Livemode);

public sealed record FactorsResponse(string Object, string User, AppFactorResponse App, IReadOnlyList<SecurityKeyResponse> SecurityKeys,
    BackupFactorResponse BackupCodes, LockoutResponse Lockout, bool Livemode);

public sealed record AppFactorResponse(string Status, DateTime? CreatedAt, DateTime? ConfirmedAt);

public sealed record BackupFactorResponse(int Remaining, int Total, DateTime? CreatedAt);

public sealed record LockoutResponse(bool Locked, bool HardLocked, int ConsecutiveFailures, DateTime? LockedUntil);

/// <summary>Authenticator-app enrolment, backup codes and the factors summary.</summary>
public static class FactorEndpoints
{
    public static RouteGroupBuilder MapFactors(this RouteGroupBuilder v1)
    {
        ArgumentNullException.ThrowIfNull(v1);
        v1.MapPost("/mfa/app", EnrollAsync)
            .WithName("EnrollApp")
            .WithSummary("Start authenticator-app enrolment: the seed is returned once as a QR code, otpauth URI and base32 secret");
        v1.MapDelete("/mfa/app", async (HttpContext http, TotpFactors apps, string? user, [FromQuery(Name = "user_id")] string? userId) =>
        {
            await apps.RemoveAsync(http.Caller(), Required(user), userId, http.RequestAborted);
            return TypedResults.NoContent();
        }).WithName("RemoveApp").WithSummary("Remove the user's authenticator-app factor (and clear their lockout)");
        v1.MapPost("/mfa/backup", GenerateBackupAsync)
            .WithName("GenerateBackupCodes")
            .WithSummary("Generate a new set of backup codes and deliver it to the user's email and/or phone; the codes are never returned");
        v1.MapGet("/mfa/factors", FactorsAsync)
            .WithName("Factors")
            .WithSummary("What the user has: authenticator-app status, security keys, backup codes remaining, lockout");
        return v1;
    }

    private static async Task<Ok<AppEnrollmentResponse>> EnrollAsync(HttpContext http, TotpFactors apps)
    {
        var body = await RequestBody.ReadAsync(http.Request, http.RequestAborted);
        var e = await apps.EnrollAsync(http.Caller(), body.Require("user", ErrorCode.InvalidUser), body.UserId, http.RequestAborted);
        http.Response.Headers.CacheControl = "no-store";
        http.Response.Headers.Pragma = "no-cache";
        return TypedResults.Ok(new AppEnrollmentResponse("app_enrollment", e.Id, e.User, e.Status, Convert.ToBase64String(e.QrPng),
            e.OtpAuthUri, e.Secret, e.Algorithm, e.Digits, e.Period, e.ExpiresAt.UtcDateTime, e.LiveMode));
    }

    private static async Task<Accepted<BackupSetResponse>> GenerateBackupAsync(HttpContext http, BackupCodes backups)
    {
        var body = await RequestBody.ReadAsync(http.Request, http.RequestAborted);
        var set = await backups.GenerateAsync(http.Caller(), body.Require("user", ErrorCode.InvalidUser), body.Require("type", ErrorCode.InvalidType),
            body.Locale, body.UserId, http.RequestAborted);
        return TypedResults.Accepted((string?)null, new BackupSetResponse("backup_set", set.Id, set.User, set.Count, set.Length, set.Destinations,
            set.CreatedAt.UtcDateTime, set.LiveMode));
    }

    private static async Task<Ok<FactorsResponse>> FactorsAsync(HttpContext http, TotpFactors apps, SecurityKeyService keys, BackupCodes backups, Lockouts lockouts,
        Identities identities, string? user, [FromQuery(Name = "user_id")] string? userId)
    {
        var caller = http.Caller();
        var parsed = MfaUser.Parse(Required(user)).WithUserId(userId);
        var key = await identities.KeyAsync(caller, parsed, http.RequestAborted);
        var app = await apps.StateAsync(caller, key, http.RequestAborted);
        var securityKeys = await keys.ListAsync(caller, key, parsed.Key, http.RequestAborted);
        var backup = await backups.StateAsync(caller, key, http.RequestAborted);
        var lockout = await lockouts.StateAsync(caller, key, http.RequestAborted);
        return TypedResults.Ok(new FactorsResponse("factors", parsed.Key,
            new AppFactorResponse(app?.Status ?? "none", app?.CreatedAt.UtcDateTime, app?.ConfirmedAt?.UtcDateTime),
            securityKeys.Select(k => SecurityKeyResponse.From(k, caller.LiveMode)).ToList(),
            new BackupFactorResponse(backup?.Remaining ?? 0, backup?.Total ?? 0, backup?.CreatedAt.UtcDateTime),
            new LockoutResponse(lockout.LockedUntil is not null || lockout.HardLocked, lockout.HardLocked, lockout.ConsecutiveFailures, lockout.LockedUntil?.UtcDateTime),
            caller.LiveMode));
    }

    /// <summary>Query-string users: a '+' decoded as a space by form rules is put back.</summary>
    internal static string Required(string? user) =>
        user is { Length: > 0 } u
            ? (u.StartsWith(' ') ? "+" + u[1..] : u)
            : throw new MfaException(ErrorCode.InvalidUser, "'user' is required in the query string", "user");
}
