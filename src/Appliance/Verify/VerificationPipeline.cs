using System.Text.Json;
using System.Text.Json.Nodes;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Audit;
using DevRift.Hsm.Appliance.Backup;
using DevRift.Hsm.Appliance.Challenges;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Factors;
using DevRift.Hsm.Appliance.Payments;
using DevRift.Hsm.Appliance.SecurityKeys;
using DevRift.Hsm.Appliance.Users;

namespace DevRift.Hsm.Appliance.Verify;

/// <summary>What the caller sent to <c>POST /v1/mfa/verify</c>, unparsed.</summary>
/// <param name="User">The end user's contact (<c>email</c>, <c>phone</c> or <c>email:phone</c>).</param>
/// <param name="Type">EMAIL, PHONE, APP, DUAL, BACKUP or KEY.</param>
/// <param name="Code">What the user typed (every type but KEY).</param>
/// <param name="Credential">The WebAuthn assertion response (KEY).</param>
/// <param name="Transaction">The payment the user is approving, when there is one (PSD2 dynamic linking).</param>
/// <param name="UserId">The integrator's own name for the end user, when given: it names the identity whose factors are checked.</param>
public sealed record VerifyRequest(string? User, string? Type, string? Code, JsonElement? Credential, TransactionInput? Transaction = null, string? UserId = null);

/// <summary>
/// Every verification, whatever its type, in one order: the method and whether the application allows it → the user,
/// parsed once as the method expects it → the input's shape (a malformed code is a 400 whatever the user's state) →
/// the lockout, for the methods that share it → the method's own check. A success consumes the challenge, step, backup
/// code or counter and appends its audit record in one transaction (no 2xx without its record, no code consumed by a
/// request that is then refused); a failure counts where the method counts it (the challenge's attempts, or the
/// lockout) and is recorded by the caller. A transaction is checked by the method that can carry it (the challenge's
/// HSM-derived code, the security key's WebAuthn challenge); APP and BACKUP codes cannot, so their verification records
/// the transaction it authorised (audit detail and response). Every success's record names the transaction.
/// </summary>
public sealed class VerificationPipeline(ChallengeService challenges, TotpFactors apps, BackupCodes backups, SecurityKeyService keys, Lockouts lockouts, Identities identities)
{
    public async Task<Verification> VerifyAsync(ApiCaller caller, VerifyRequest request, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(request);

        // 1. The method, and whether this application allows it.
        var method = VerifyMethods.Parse(request.Type);
        method.EnsureEnabled(caller.Application);

        // 2. The user, parsed once.
        var user = method switch
        {
            VerifyMethod.Email => MfaUser.ParseEmail(request.User ?? ""),
            VerifyMethod.Phone => MfaUser.ParsePhone(request.User ?? ""),
            VerifyMethod.Dual => MfaUser.ParseDual(request.User),
            _ => MfaUser.Parse(request.User),
        };
        user = user.WithUserId(request.UserId);

        // 3. The input's shape.
        var assertion = method == VerifyMethod.Key ? SecurityKeyService.ParseAssertion(request.Credential) : null;
        var code = method switch
        {
            VerifyMethod.Key => "",
            VerifyMethod.App => TotpFactors.ParseCode(Required(request.Code)),
            VerifyMethod.Backup => BackupCodes.ParseCode(Required(request.Code)),
            _ => ChallengeService.NormaliseCode(Required(request.Code)),
        };
        var transaction = Transaction.Parse(request.Transaction);

        // 4. The identity whose factors APP, BACKUP and KEY check (one end user across contacts), and its lockout (a
        // challenge belongs to the contact it was sent to, and has its own attempts).
        var owner = user.Key;
        if (method.SharesLockout())
        {
            owner = await identities.KeyAsync(caller, user, ct);
            await lockouts.EnsureNotLockedAsync(caller, owner, ct);
        }

        // 5. The method's own check; its success commits with this record.
        var detail = new JsonObject { ["type"] = method.Name() };
        if (transaction is not null)
        {
            detail["transaction"] = transaction.ToJson();
        }

        var record = AuditEntry.ByCaller(caller, AuditEvents.Verification, user.Key, "valid", detail);
        return method switch
        {
            VerifyMethod.App => new Verification(user.Key, method.Name(), await apps.CheckAsync(caller, user, owner, code, record, ct), caller.LiveMode, Transaction: transaction),
            VerifyMethod.Backup => new Verification(user.Key, method.Name(), await backups.CheckAsync(caller, user, owner, code, record, ct), caller.LiveMode, Transaction: transaction),
            VerifyMethod.Key => new Verification(user.Key, method.Name(), await keys.CheckAsync(caller, user, owner, assertion!, transaction, record, ct), caller.LiveMode, Transaction: transaction),
            _ => await challenges.CheckAsync(caller, method.Name(), user, code, transaction, record, ct),
        };
    }

    private static string Required(string? code) =>
        code is { Length: > 0 } ? code : throw new MfaException(ErrorCode.InvalidCodeFormat, "'code' is required", "code");
}
