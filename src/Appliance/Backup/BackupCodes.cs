using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Dapper;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Audit;
using DevRift.Hsm.Appliance.Challenges;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Factors;
using DevRift.Hsm.Appliance.Fraud;
using DevRift.Hsm.Appliance.Outbox;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Appliance.Users;
using DevRift.Hsm.Crypto;

namespace DevRift.Hsm.Appliance.Backup;

/// <summary>A destination a backup set went to, masked.</summary>
public sealed record MaskedDestination(string Channel, string To);

/// <summary>What the integrator learns about a new set: metadata only, never a code.</summary>
public sealed record BackupSet(string Id, string User, int Count, int Length, IReadOnlyList<MaskedDestination> Destinations, DateTimeOffset CreatedAt, bool LiveMode);

/// <summary>Remaining backup codes as the factors summary shows them.</summary>
public sealed record BackupState(int Remaining, int Total, DateTimeOffset CreatedAt);

/// <summary>
/// Backup codes: drawn from HSM randomness, stored only as HSM-keyed verifiers, delivered to the user's email
/// and/or phone through the outbox, never returned to the caller. A new set invalidates the previous one.
/// Each code works once (one conditional update), shares the lockout with the other factors, and its use is
/// announced to the user with the count left.
/// </summary>
public sealed class BackupCodes(
    Database db, HsmRandom random, LookupVerifiers verifiers, OutboxStore outbox, DeliveryRouting routing, Lockouts lockouts, Identities identities, AuditLog audit, FraudGuard fraudGuard, TimeProvider time)
{
    private const string Purpose = "backup_code";
    private static readonly string[] s_types = ["EMAIL", "SMS", "DUAL"];

    /// <summary>
    /// A new set for the user's identity (a DUAL set links the email and the phone into one identity, so either
    /// verifies its codes; <paramref name="userId"/> names the identity when given).
    /// </summary>
    public async Task<BackupSet> GenerateAsync(ApiCaller caller, string? userValue, string? typeValue, string? locale, string? userId = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var settings = caller.Application.Settings;
        var type = typeValue?.Trim().ToUpperInvariant();
        if (type is null || !s_types.Contains(type, StringComparer.Ordinal))
        {
            throw new MfaException(ErrorCode.InvalidType, "'type' must be EMAIL, SMS or DUAL: where to deliver the backup codes", "type");
        }

        if (type == "DUAL" && caller.Application.Plan != Plans.Enterprise)
        {
            throw new MfaException(ErrorCode.PlanRequired, "backup codes by the Dual MFA System need the enterprise plan", "type");
        }

        if (!settings.IsEnabled("BACKUP"))
        {
            throw new MfaException(ErrorCode.MethodDisabled, "BACKUP is not enabled in this application's settings", "type");
        }

        var user = type switch
        {
            "EMAIL" => MfaUser.ParseEmail(userValue ?? ""),
            "SMS" => MfaUser.ParsePhone(userValue ?? ""),
            _ => MfaUser.ParseDual(userValue),
        };
        user = user.WithUserId(userId);
        var destinations = new List<(string Channel, string To)>();
        if (user.Email is not null)
        {
            destinations.Add((Channels.Email, user.Email));
        }

        if (user.Phone is not null)
        {
            destinations.Add((Channels.Sms, user.Phone));
        }

        if (caller.LiveMode && destinations.FirstOrDefault(d => !routing.IsConfigured(d.Channel)) is { Channel: not null } missing)
        {
            throw new MfaException(ErrorCode.ChannelNotConfigured, $"no delivery provider is configured for {missing.Channel}; nothing was generated", "type");
        }

        // The fraud guard before any HSM work or write: SMS backup codes cost what an SMS code costs.
        await fraudGuard.CheckAsync(caller, type, user, ct);

        var resolvedLocale = MessageTemplates.ResolveLocale(locale);
        var now = time.GetUtcNow();
        var setId = Ids.New("bks_");
        var codes = new List<string>(settings.BackupCodeCount);
        var rows = new List<(string Id, byte[] Verifier, int Version)>(settings.BackupCodeCount);
        try
        {
            var bytesPerCode = ((settings.BackupCodeLength * 5) + 7) / 8;
            var entropy = random.GetBytes(bytesPerCode * settings.BackupCodeCount);
            try
            {
                for (var i = 0; i < settings.BackupCodeCount; i++)
                {
                    var code = BackupCodeFormat.FromRandom(entropy.AsSpan(i * bytesPerCode, bytesPerCode), settings.BackupCodeLength);
                    codes.Add(code);
                    // Bound to its set (stored as the code's owner), not to the user: the identity the set belongs to is
                    // decided in the transaction, and may later merge with another without its codes changing.
                    var mac = verifiers.Compute(Purpose, Owner(caller, setId), code);
                    rows.Add((Ids.New("bkc_"), mac.Mac, mac.Version));
                }
            }
            finally
            {
                CryptographicOperations.ZeroMemory(entropy);
            }

            var list = string.Join("\n", codes.Select(BackupCodeFormat.Grouped));
            var messages = destinations.Select(d => outbox.Prepare("backup_codes", d.Channel, d.To, resolvedLocale,
                new RenderedMessage(
                    d.Channel == Channels.Email ? $"Your {caller.Application.Name} backup codes" : null,
                    $"Your {caller.Application.Name} backup codes. Each works once; keep them somewhere safe. Any earlier codes no longer work.\n{list}")))
                .ToList();

            await db.InTransactionAsync(async (c, tx) =>
            {
                var identity = await identities.LinkAsync(c, tx, caller, user);
                var key = new { app = caller.Application.Id, mode = caller.Mode, user = identity, now = now.ToUnixTimeMilliseconds() };
                await c.ExecuteAsync("DELETE FROM backup_codes WHERE application_id = @app AND mode = @mode AND user_key = @user", key, tx);
                await c.ExecuteAsync("UPDATE backup_sets SET revoked_at = @now WHERE application_id = @app AND mode = @mode AND user_key = @user AND revoked_at IS NULL", key, tx);
                await c.ExecuteAsync(
                    "INSERT INTO backup_sets (id, application_id, mode, user_key, email, phone, count, created_at) VALUES (@setId, @app, @mode, @user, @email, @phone, @count, @now)",
                    new { setId, key.app, key.mode, key.user, email = user.Email, phone = user.Phone, count = codes.Count, key.now }, tx);
                await c.ExecuteAsync(
                    "INSERT INTO backup_codes (id, set_id, application_id, mode, user_key, owner, verifier, verifier_version) VALUES (@id, @setId, @app, @mode, @user, @owner, @verifier, @version)",
                    rows.Select(r => new { id = r.Id, setId, key.app, key.mode, key.user, owner = setId, verifier = r.Verifier, version = r.Version }), tx);
                await OutboxStore.InsertAsync(c, tx, caller.Application.Id, caller.Mode, null, messages, now, now + TimeSpan.FromDays(1));
                return 0;
            }, ct);
        }
        finally
        {
            codes.Clear();
        }

        return new BackupSet(setId, user.Key, settings.BackupCodeCount, settings.BackupCodeLength,
            destinations.Select(d => new MaskedDestination(d.Channel, Mask(d.To))).ToList(), now, caller.LiveMode);
    }

    /// <summary>A backup code normalised (case, spaces, hyphens, look-alikes), or 400 <c>invalid_code_format</c>.</summary>
    public static string ParseCode(string? value)
    {
        var code = BackupCodeFormat.Normalise(value);
        return code is { Length: >= 8 and <= 20 }
            ? code
            : throw new MfaException(ErrorCode.InvalidCodeFormat, "'code' must be a backup code: 8 to 20 letters and digits, spaces and hyphens ignored", "code");
    }

    /// <summary>
    /// The BACKUP check of the verification pipeline: on success the code is used up, the lockout cleared and
    /// <paramref name="record"/> appended to the audit log in one transaction; a wrong code counts toward the lockout.
    /// </summary>
    public async Task<DateTimeOffset> CheckAsync(ApiCaller caller, MfaUser user, string userKey, string code, AuditEntry? record, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(user);

        // Used codes of the current set are candidates too: a code that was already used (a double submit, or the
        // loser of a race) is not a guess and must not count toward the lockout.
        var candidates = (await db.WithConnectionAsync(c => c.QueryAsync<CodeRow>(
            "SELECT id, set_id AS SetId, COALESCE(owner, user_key) AS Owner, verifier, verifier_version AS VerifierVersion, used_at AS UsedAt FROM backup_codes WHERE application_id = @app AND mode = @mode AND user_key = @user",
            new { app = caller.Application.Id, mode = caller.Mode, user = userKey }), ct)).ToList();
        if (!candidates.Any(c => c.UsedAt is null))
        {
            throw new MfaException(ErrorCode.NotEnrolled, "this user has no unused backup codes; generate a set with POST /v1/mfa/backup", "user");
        }

        // One MAC per owner the codes were bound to (their set; before identities, the user key) and key version.
        CodeRow? match = null;
        foreach (var (issuedTo, version) in candidates.Select(c => (c.Owner, c.VerifierVersion)).Distinct())
        {
            var mac = verifiers.Compute(Purpose, Owner(caller, issuedTo), code, (int)version);
            foreach (var candidate in candidates.Where(c => c.Owner == issuedTo && c.VerifierVersion == version))
            {
                // Compare with every row: no early exit on the match.
                if (CryptographicOperations.FixedTimeEquals(mac, candidate.Verifier))
                {
                    match = candidate;
                }
            }
        }

        var now = time.GetUtcNow();
        if (match is null)
        {
            var remaining = await lockouts.RecordFailureAsync(caller, userKey, user.Key, ct);
            throw new MfaException(ErrorCode.InvalidCode, "the backup code is not valid", "code") { AttemptsRemaining = remaining };
        }

        if (match.UsedAt is not null)
        {
            throw new MfaException(ErrorCode.InvalidCode, "this backup code was already used", "code");
        }

        // The "a backup code was used" notice is queued in the same transaction: a use is never without its notice.
        var set = await db.WithConnectionAsync(c => c.QuerySingleAsync<SetRow>(
            "SELECT id, email, phone, count, created_at AS CreatedAt FROM backup_sets WHERE id = @setId", new { setId = match.SetId }), ct);
        var left = await db.InTransactionAsync(async (c, tx) =>
        {
            var used = await c.ExecuteAsync(
                "UPDATE backup_codes SET used_at = @now WHERE id = @id AND used_at IS NULL",
                new { id = match.Id, now = now.ToUnixTimeMilliseconds() }, tx);
            if (used != 1)
            {
                return -1;
            }

            await lockouts.RecordSuccessAsync(c, tx, caller, userKey);
            if (record is not null)
            {
                await audit.AppendAsync(c, tx, record);
            }

            var remaining = await c.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM backup_codes WHERE set_id = @set AND used_at IS NULL", new { set = match.SetId }, tx);
            await OutboxStore.InsertAsync(c, tx, caller.Application.Id, caller.Mode, null, UseNotice(caller, set, (int)remaining), now, now + TimeSpan.FromDays(1));
            return remaining;
        }, ct);
        if (left < 0)
        {
            throw new MfaException(ErrorCode.InvalidCode, "this backup code was already used", "code");
        }

        return now;
    }

    public async Task<BackupState?> StateAsync(ApiCaller caller, string userKey, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var set = await db.WithConnectionAsync(c => c.QueryFirstOrDefaultAsync<SetRow>(
            "SELECT id, email, phone, count, created_at AS CreatedAt FROM backup_sets WHERE application_id = @app AND mode = @mode AND user_key = @user AND revoked_at IS NULL ORDER BY created_at DESC",
            new { app = caller.Application.Id, mode = caller.Mode, user = userKey }), ct);
        if (set is null)
        {
            return null;
        }

        var remaining = await db.WithConnectionAsync(c => c.ExecuteScalarAsync<long>(
            "SELECT COUNT(*) FROM backup_codes WHERE set_id = @id AND used_at IS NULL", new { id = set.Id }), ct);
        return new BackupState((int)remaining, (int)set.Count, DateTimeOffset.FromUnixTimeMilliseconds(set.CreatedAt));
    }

    /// <summary>"ada@example.com" → "a**@example.com"; "+14155550123" → "+1*******123".</summary>
    public static string Mask(string destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var at = destination.IndexOf('@', StringComparison.Ordinal);
        if (at > 0)
        {
            return destination[0] + new string('*', Math.Max(1, at - 1)) + destination[at..];
        }

        return destination.Length > 6
            ? destination[..2] + new string('*', destination.Length - 5) + destination[^3..]
            : new string('*', destination.Length);
    }

    private List<PendingMessage> UseNotice(ApiCaller caller, SetRow set, int left)
    {
        var app = caller.Application.Name;
        var text = string.Create(CultureInfo.InvariantCulture,
            $"A backup code for {app} was just used. {left} unused backup code(s) remain. If this was not you, contact {app} at once.");
        var messages = new List<PendingMessage>();
        if (set.Email is not null)
        {
            messages.Add(outbox.Prepare("notice", Channels.Email, set.Email, "en", new RenderedMessage($"A {app} backup code was used", text)));
        }

        if (set.Phone is not null)
        {
            messages.Add(outbox.Prepare("notice", Channels.Sms, set.Phone, "en", new RenderedMessage(null, text)));
        }

        // A live deployment without a provider for the channel cannot deliver the notice; queue only what can go.
        messages.RemoveAll(m => caller.LiveMode && !routing.IsConfigured(m.Channel));
        return messages;
    }

    /// <summary>What a verifier is bound to: the application, the mode and the code's owner (its set; before identities, the user key).</summary>
    private static string Owner(ApiCaller caller, string owner) =>
        new StringBuilder().Append(caller.Application.Id).Append('/').Append(caller.Mode).Append('/').Append(owner).ToString();

    private sealed class CodeRow
    {
        public string Id { get; init; } = "";

        public string SetId { get; init; } = "";

        public string Owner { get; init; } = "";

        public byte[] Verifier { get; init; } = [];

        public long VerifierVersion { get; init; }

        public long? UsedAt { get; init; }
    }

    private sealed class SetRow
    {
        public string Id { get; init; } = "";

        public string? Email { get; init; }

        public string? Phone { get; init; }

        public long Count { get; init; }

        public long CreatedAt { get; init; }
    }
}
