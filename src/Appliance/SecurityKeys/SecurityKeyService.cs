using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text.Json;
using Dapper;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Audit;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Factors;
using DevRift.Hsm.Appliance.Payments;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Appliance.Users;
using DevRift.Hsm.Crypto;
using Fido2NetLib;
using Fido2NetLib.Exceptions;
using Fido2NetLib.Objects;

namespace DevRift.Hsm.Appliance.SecurityKeys;

/// <summary>A registered security key as the API shows it.</summary>
public sealed record SecurityKeyInfo(string Id, string User, string CredentialId, IReadOnlyList<string> Transports, string Aaguid,
    DateTimeOffset CreatedAt, DateTimeOffset? LastUsedAt);

/// <summary>
/// The origins allowed when an application names relying party <c>localhost</c> and lists no origins: the
/// appliance's own listening URLs (the HTTP layer knows them).
/// </summary>
public interface ILocalOrigins
{
    IReadOnlyCollection<string> Origins { get; }
}

/// <summary>
/// WebAuthn security keys with Fido2: registration and assertion options whose challenges come from the HSM,
/// are stored server-side, expire, and are used once; verification by Fido2 of everything the spec asks
/// (type, challenge, origin, rpIdHash, user presence, user verification per settings, signature), then a
/// signature counter that must advance, taken with one conditional update. Failures share the user's lockout.
/// Assertion options for a payment get the WebAuthn challenge SHA-256(tag ‖ HSM random seed ‖ canonical transaction), so
/// the authenticator's signature (over clientDataJSON, which holds the challenge) covers the transaction; verification
/// recomputes the challenge from the stored seed and the transaction presented.
/// </summary>
public sealed class SecurityKeyService(Database db, HsmRandom random, Lockouts lockouts, Identities identities, AuditLog audit, ILocalOrigins localOrigins, TimeProvider time)
{
    private const string Registration = "registration", Assertion = "assertion";

    /// <summary>How long an expired ceremony is kept before the user's next options request removes it.</summary>
    public static readonly TimeSpan CeremonyRetention = TimeSpan.FromDays(1);

    /// <summary>Creation options for the user's identity (linked to <paramref name="userId"/> when given).</summary>
    public async Task<string> RegistrationOptionsAsync(ApiCaller caller, string? userValue, string? userId = null, CancellationToken ct = default)
    {
        var (settings, fido) = Configure(caller);
        var user = MfaUser.Parse(userValue).WithUserId(userId);
        var owner = await db.InTransactionAsync((c, tx) => identities.LinkAsync(c, tx, caller, user), ct);
        var handle = await UserHandleAsync(caller, owner, ct);
        var existing = await KeysAsync(caller, owner, ct);
        var options = CredentialCreateOptions.Create(
            fido,
            random.GetBytes(32),
            new Fido2User { Id = handle, Name = user.Key, DisplayName = user.Key },
            new AuthenticatorSelection
            {
                ResidentKey = ResidentKeyRequirement.Discouraged,
                UserVerification = Uv(settings),
            },
            AttestationConveyancePreference.None,
            existing.Select(k => new PublicKeyCredentialDescriptor(k.CredentialIdBytes)).ToList(),
            null,
            [PubKeyCredParam.ES256, PubKeyCredParam.RS256, PubKeyCredParam.Ed25519]);
        var json = options.ToJson();
        await StoreCeremonyAsync(caller, owner, Registration, options.Challenge, json, settings, ct);
        return json;
    }

    public async Task<SecurityKeyInfo> RegisterAsync(ApiCaller caller, string? userValue, JsonElement? credential, string? userId = null, CancellationToken ct = default)
    {
        var (_, fido) = Configure(caller);
        var user = MfaUser.Parse(userValue).WithUserId(userId);
        var raw = Parse<AuthenticatorAttestationRawResponse>(credential);
        RequireFields(raw.RawId, raw.Response?.ClientDataJson, raw.Response?.AttestationObject, "attestationObject");
        var owner = await identities.KeyAsync(caller, user, ct);
        var ceremony = await TakeCeremonyAsync(caller, owner, Registration, raw.Response?.ClientDataJson, ct);
        var options = CredentialCreateOptions.FromJson(ceremony.Options);
        RegisteredPublicKeyCredential registered;
        try
        {
            registered = await new Fido2(fido).MakeNewCredentialAsync(new MakeNewCredentialParams
            {
                AttestationResponse = raw,
                OriginalOptions = options,
                IsCredentialIdUniqueToUserCallback = async (p, token) => !await CredentialExistsAsync(caller, p.CredentialId, token),
            }, ct);
        }
        catch (Fido2VerificationException e)
        {
            throw new MfaException(ErrorCode.InvalidRequest, $"the attestation was refused: {Describe(e.Code)}", "credential");
        }

        var id = Ids.New("key_");
        var now = time.GetUtcNow();
        var transports = string.Join(",", (registered.Transports ?? []).Select(t => t.ToString().ToLowerInvariant()));

        // Two registrations of one credential racing both pass the uniqueness check; the unique index decides.
        var inserted = await db.WithConnectionAsync(c => c.ExecuteAsync(
            """
            INSERT INTO security_keys (id, application_id, mode, user_key, credential_id, public_key, sign_count, transports, aaguid, attestation, created_at, user_handle)
            VALUES (@id, @app, @mode, @user, @credentialId, @publicKey, @signCount, @transports, @aaguid, @attestation, @now, @handle)
            ON CONFLICT (application_id, mode, credential_id) DO NOTHING
            """,
            new
            {
                id, app = caller.Application.Id, mode = caller.Mode, user = owner, credentialId = registered.Id, handle = options.User.Id,
                publicKey = registered.PublicKey, signCount = (long)registered.SignCount, transports,
                aaguid = registered.AaGuid.ToString(), attestation = registered.AttestationFormat ?? "none", now = now.ToUnixTimeMilliseconds(),
            }), ct);
        if (inserted != 1)
        {
            throw new MfaException(ErrorCode.InvalidRequest, "the attestation was refused: this credential is already registered", "credential");
        }

        return new SecurityKeyInfo(id, user.Key, Base64Url.EncodeToString(registered.Id), SplitTransports(transports), registered.AaGuid.ToString(), now, null);
    }

    /// <summary>Separates a payment's WebAuthn challenge from any other use of SHA-256 over these fields.</summary>
    public const string TransactionChallengeTag = "devrift.webauthn-challenge.transaction.v1";

    public async Task<string> AssertionOptionsAsync(ApiCaller caller, string? userValue, TransactionInput? transactionInput = null, string? userId = null, CancellationToken ct = default)
    {
        var (settings, fido) = Configure(caller);
        var user = MfaUser.Parse(userValue).WithUserId(userId);
        var transaction = Transaction.Parse(transactionInput);
        var owner = await identities.KeyAsync(caller, user, ct);
        var keys = await KeysAsync(caller, owner, ct);
        if (keys.Count == 0)
        {
            throw new MfaException(ErrorCode.NotEnrolled, "this user has no security key; register one first", "user");
        }

        var seed = random.GetBytes(32);
        var options = AssertionOptions.Create(fido, transaction is null ? seed : TransactionChallenge(seed, transaction),
            keys.Select(k => new PublicKeyCredentialDescriptor(PublicKeyCredentialType.PublicKey, k.CredentialIdBytes, ParseTransports(k.Transports))).ToList(),
            Uv(settings), null);
        var json = options.ToJson();
        await StoreCeremonyAsync(caller, owner, Assertion, options.Challenge, json, settings, ct, transaction is null ? null : (seed, transaction));
        return json;
    }

    /// <summary>The assertion response JSON as Fido2 reads it, or 400 <c>invalid_request</c> naming <c>credential</c>.</summary>
    public static AuthenticatorAssertionRawResponse ParseAssertion(JsonElement? credential)
    {
        var raw = Parse<AuthenticatorAssertionRawResponse>(credential);
        RequireFields(raw.RawId, raw.Response?.ClientDataJson, raw.Response?.AuthenticatorData, "authenticatorData");
        RequireFields(raw.RawId, raw.Response?.ClientDataJson, raw.Response?.Signature, "signature");
        return raw;
    }

    /// <summary>
    /// The KEY check of the verification pipeline: on success the signature counter advances, the lockout is cleared
    /// and <paramref name="record"/> is appended to the audit log in one transaction; a forgery counts toward the lockout,
    /// and so does a <paramref name="transaction"/> that is not the one the options were issued for (401
    /// <c>transaction_mismatch</c>; the options are used up either way).
    /// </summary>
    public async Task<DateTimeOffset> CheckAsync(ApiCaller caller, MfaUser user, string owner, AuthenticatorAssertionRawResponse raw, Transaction? transaction, AuditEntry? record, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentNullException.ThrowIfNull(raw);
        var (_, fido) = Configure(caller);
        var ceremony = await TakeCeremonyAsync(caller, owner, Assertion, raw.Response?.ClientDataJson, ct);
        if (!Transaction.Matches(ceremony.Transaction, transaction))
        {
            await FailAsync(caller, owner, user.Key, "the transaction presented is not the one these options were issued for", ct, ErrorCode.TransactionMismatch, "transaction");
        }

        var originalOptions = AssertionOptions.FromJson(ceremony.Options);
        if (transaction is not null && ceremony.ChallengeSeed is { } seed)
        {
            // The challenge Fido2 checks clientDataJSON against (and so the signature) is recomputed from the presented transaction.
            originalOptions.Challenge = TransactionChallenge(seed, transaction);
        }

        var key = (await KeysAsync(caller, owner, ct)).FirstOrDefault(k => raw.RawId is not null && CryptographicOperations.FixedTimeEquals(k.CredentialIdBytes, raw.RawId));
        if (key is null)
        {
            await FailAsync(caller, owner, user.Key, "the credential is not one of this user's security keys", ct);
        }

        // The handle the key was registered with (an identity that merged two users holds keys under both).
        var handle = key!.UserHandle ?? await UserHandleAsync(caller, owner, ct);
        VerifyAssertionResult result;
        try
        {
            result = await new Fido2(fido).MakeAssertionAsync(new MakeAssertionParams
            {
                AssertionResponse = raw,
                OriginalOptions = originalOptions,
                StoredPublicKey = key!.PublicKey,
                StoredSignatureCounter = (uint)key.SignCount,
                IsUserHandleOwnerOfCredentialIdCallback = (p, _) => Task.FromResult(
                    CryptographicOperations.FixedTimeEquals(p.CredentialId, key.CredentialIdBytes)
                    && (p.UserHandle is null || CryptographicOperations.FixedTimeEquals(p.UserHandle, handle))),
            }, ct);
        }
        catch (Fido2VerificationException e)
        {
            await FailAsync(caller, owner, user.Key, Describe(e.Code), ct);
            throw; // unreachable: FailAsync throws
        }

        // The counter must advance (authenticators without one report 0 throughout); one conditional update.
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var updated = await db.InTransactionAsync(async (c, tx) =>
        {
            var n = await c.ExecuteAsync(
                "UPDATE security_keys SET sign_count = @count, last_used_at = @now WHERE id = @id AND (sign_count < @count OR (@count = 0 AND sign_count = 0))",
                new { count = (long)result.SignCount, now, id = key.Id }, tx);
            if (n == 1)
            {
                await lockouts.RecordSuccessAsync(c, tx, caller, owner);
                if (record is not null)
                {
                    await audit.AppendAsync(c, tx, record);
                }
            }

            return n;
        }, ct);
        if (updated != 1)
        {
            await FailAsync(caller, owner, user.Key, "the signature counter did not advance (a cloned key or a replay)", ct);
        }

        return DateTimeOffset.FromUnixTimeMilliseconds(now);
    }

    /// <summary>The keys stored under <paramref name="userKey"/> (the user's identity), shown as belonging to <paramref name="subject"/>.</summary>
    public async Task<IReadOnlyList<SecurityKeyInfo>> ListAsync(ApiCaller caller, string userKey, string subject, CancellationToken ct = default) =>
        (await KeysAsync(caller, userKey, ct)).Select(k => k.Info with { User = subject }).ToList();

    public async Task RemoveAsync(ApiCaller caller, string id, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var removed = await db.WithConnectionAsync(c => c.ExecuteAsync(
            "DELETE FROM security_keys WHERE id = @id AND application_id = @app AND mode = @mode",
            new { id, app = caller.Application.Id, mode = caller.Mode }), ct);
        if (removed == 0)
        {
            throw new MfaException(ErrorCode.NotFound, $"no security key '{id}'", "id");
        }
    }

    private async Task FailAsync(ApiCaller caller, string userKey, string subject, string reason, CancellationToken ct, ErrorCode? error = null, string param = "credential")
    {
        var remaining = await lockouts.RecordFailureAsync(caller, userKey, subject, ct);
        throw new MfaException(error ?? ErrorCode.InvalidCode, $"the security-key assertion was refused: {reason}", param) { AttemptsRemaining = remaining };
    }

    private static byte[] TransactionChallenge(byte[] seed, Transaction transaction) =>
        SHA256.HashData(HsmMac.Encode(TransactionChallengeTag, Convert.ToBase64String(seed), transaction.Canonical));

    private (ApplicationSettings Settings, Fido2Configuration Fido) Configure(ApiCaller caller)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var settings = caller.Application.Settings;
        if (!settings.IsEnabled("KEY"))
        {
            throw new MfaException(ErrorCode.MethodDisabled, "KEY is not enabled in this application's settings", "type");
        }

        if (string.IsNullOrEmpty(settings.WebauthnRpId))
        {
            throw new MfaException(ErrorCode.MethodDisabled, "security keys need webauthn_rp_id (and webauthn_origins) in this application's settings", "type");
        }

        var origins = settings.WebauthnOrigins.Count > 0
            ? settings.WebauthnOrigins.Select(o => o.TrimEnd('/')).ToHashSet(StringComparer.Ordinal)
            : settings.WebauthnRpId == "localhost" ? localOrigins.Origins.ToHashSet(StringComparer.Ordinal) : [];
        if (origins.Count == 0)
        {
            throw new MfaException(ErrorCode.MethodDisabled, "security keys need webauthn_origins in this application's settings", "type");
        }

        return (settings, new Fido2Configuration
        {
            RPID = settings.WebauthnRpId,
            RPName = caller.Application.Name,
            Origins = origins,
            ChallengeSize = 32,
            Timeout = (uint)settings.WebauthnTimeoutSeconds * 1000,
        });
    }

    private static UserVerificationRequirement Uv(ApplicationSettings settings) => settings.WebauthnUserVerification switch
    {
        "required" => UserVerificationRequirement.Required,
        "discouraged" => UserVerificationRequirement.Discouraged,
        _ => UserVerificationRequirement.Preferred,
    };

    private static T Parse<T>(JsonElement? credential)
        where T : class
    {
        if (credential is not { ValueKind: JsonValueKind.Object or JsonValueKind.String } element)
        {
            throw new MfaException(ErrorCode.InvalidRequest, "'credential' is required: the WebAuthn response as JSON", "credential");
        }

        try
        {
            var parsed = element.ValueKind == JsonValueKind.String
                ? JsonSerializer.Deserialize<T>(element.GetString()!)
                : element.Deserialize<T>();
            return parsed ?? throw new MfaException(ErrorCode.InvalidRequest, "'credential' is empty", "credential");
        }
        catch (Exception e) when (e is JsonException or FormatException or NotSupportedException or InvalidOperationException)
        {
            throw new MfaException(ErrorCode.InvalidRequest, "'credential' is not a WebAuthn response (base64url fields id, rawId, response…)", "credential");
        }
    }

    /// <summary>The fields every response needs before any of it is looked at (the JSON binding leaves missing ones null).</summary>
    private static void RequireFields(byte[]? rawId, byte[]? clientDataJson, byte[]? payload, string payloadName)
    {
        if (rawId is not { Length: > 0 } || clientDataJson is not { Length: > 0 } || payload is not { Length: > 0 })
        {
            throw new MfaException(ErrorCode.InvalidRequest,
                $"'credential' must carry rawId and response.clientDataJSON and response.{payloadName} (base64url)", "credential");
        }
    }

    private async Task StoreCeremonyAsync(ApiCaller caller, string userKey, string kind, byte[] challenge, string options, ApplicationSettings settings, CancellationToken ct,
        (byte[] Seed, Transaction Transaction)? payment = null)
    {
        var now = time.GetUtcNow();

        // The user's ceremonies that expired over a day ago go (used or not): the table stays bounded, and for a day an
        // expired response is still told code_expired rather than no_pending_challenge.
        await db.WithConnectionAsync(c => c.ExecuteAsync(
            "DELETE FROM webauthn_ceremonies WHERE application_id = @app AND mode = @mode AND user_key = @user AND expires_at <= @cutoff",
            new { app = caller.Application.Id, mode = caller.Mode, user = userKey, cutoff = (now - CeremonyRetention).ToUnixTimeMilliseconds() }), ct);
        await db.WithConnectionAsync(c => c.ExecuteAsync(
            """
            INSERT INTO webauthn_ceremonies (id, application_id, mode, user_key, kind, challenge, options, created_at, expires_at,
                                             challenge_seed, transaction_amount, transaction_currency, transaction_payee, transaction_reference)
            VALUES (@id, @app, @mode, @user, @kind, @challenge, @options, @now, @expires, @seed, @amount, @currency, @payee, @reference)
            """,
            new
            {
                id = Ids.New("wac_"), app = caller.Application.Id, mode = caller.Mode, user = userKey, kind,
                challenge = Base64Url.EncodeToString(challenge), options, now = now.ToUnixTimeMilliseconds(),
                expires = (now + TimeSpan.FromSeconds(settings.WebauthnTimeoutSeconds)).ToUnixTimeMilliseconds(),
                seed = payment?.Seed, amount = payment?.Transaction.Amount, currency = payment?.Transaction.Currency,
                payee = payment?.Transaction.Payee, reference = payment?.Transaction.Reference,
            }), ct);
    }

    /// <summary>Finds the ceremony named by the response's challenge and marks it used, once.</summary>
    private async Task<CeremonyRow> TakeCeremonyAsync(ApiCaller caller, string userKey, string kind, byte[]? clientDataJson, CancellationToken ct)
    {
        string? challenge;
        try
        {
            using var doc = JsonDocument.Parse(clientDataJson ?? []);
            challenge = doc.RootElement.GetProperty("challenge").GetString();
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new MfaException(ErrorCode.InvalidRequest, "'credential' has no readable clientDataJSON", "credential");
        }

        var row = await db.WithConnectionAsync(c => c.QuerySingleOrDefaultAsync<CeremonyRow>(
            """
            SELECT id, user_key AS UserKey, kind, options, expires_at AS ExpiresAt, used_at AS UsedAt, challenge_seed AS ChallengeSeed,
                   transaction_amount AS TransactionAmount, transaction_currency AS TransactionCurrency, transaction_payee AS TransactionPayee, transaction_reference AS TransactionReference
            FROM webauthn_ceremonies WHERE application_id = @app AND mode = @mode AND challenge = @challenge
            """,
            new { app = caller.Application.Id, mode = caller.Mode, challenge }), ct);
        // A registration is not a verification: its refusals are bad requests (400), an assertion's are 401s.
        ErrorCode Refusal(ErrorCode assertionCode) => kind == Registration ? ErrorCode.InvalidRequest : assertionCode;
        if (row is null || row.Kind != kind || row.UserKey != userKey)
        {
            throw new MfaException(Refusal(ErrorCode.NoPendingChallenge), $"no {kind} options were issued to this user with this challenge", "credential");
        }

        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        if (row.ExpiresAt <= now)
        {
            throw new MfaException(Refusal(ErrorCode.CodeExpired), $"the {kind} options have expired; request new ones", "credential");
        }

        var taken = await db.WithConnectionAsync(c => c.ExecuteAsync(
            "UPDATE webauthn_ceremonies SET used_at = @now WHERE id = @id AND used_at IS NULL", new { now, id = row.Id }), ct);
        if (taken != 1)
        {
            throw new MfaException(Refusal(ErrorCode.NoPendingChallenge), $"these {kind} options were already used; request new ones", "credential");
        }

        return row;
    }

    private async Task<byte[]> UserHandleAsync(ApiCaller caller, string userKey, CancellationToken ct)
    {
        var key = new { app = caller.Application.Id, mode = caller.Mode, user = userKey };
        var existing = await db.WithConnectionAsync(c => c.QuerySingleOrDefaultAsync<byte[]>(
            "SELECT handle FROM webauthn_users WHERE application_id = @app AND mode = @mode AND user_key = @user", key), ct);
        if (existing is not null)
        {
            return existing;
        }

        await db.WithConnectionAsync(c => c.ExecuteAsync(
            "INSERT INTO webauthn_users (application_id, mode, user_key, handle) VALUES (@app, @mode, @user, @handle) ON CONFLICT (application_id, mode, user_key) DO NOTHING",
            new { key.app, key.mode, key.user, handle = random.GetBytes(32) }), ct);
        return await db.WithConnectionAsync(c => c.QuerySingleAsync<byte[]>(
            "SELECT handle FROM webauthn_users WHERE application_id = @app AND mode = @mode AND user_key = @user", key), ct);
    }

    private Task<bool> CredentialExistsAsync(ApiCaller caller, byte[] credentialId, CancellationToken ct) =>
        db.WithConnectionAsync(async c => await c.ExecuteScalarAsync<long>(
            "SELECT COUNT(*) FROM security_keys WHERE application_id = @app AND mode = @mode AND credential_id = @credentialId",
            new { app = caller.Application.Id, mode = caller.Mode, credentialId }) > 0, ct);

    private async Task<List<KeyRow>> KeysAsync(ApiCaller caller, string userKey, CancellationToken ct) =>
        (await db.WithConnectionAsync(c => c.QueryAsync<KeyRow>(
            "SELECT id, user_key AS UserKey, credential_id AS CredentialIdBytes, public_key AS PublicKey, sign_count AS SignCount, transports, aaguid, created_at AS CreatedAt, last_used_at AS LastUsedAt, user_handle AS UserHandle FROM security_keys WHERE application_id = @app AND mode = @mode AND user_key = @user ORDER BY created_at",
            new { app = caller.Application.Id, mode = caller.Mode, user = userKey }), ct)).ToList();

    private static string Describe(Fido2ErrorCode code) => code switch
    {
        Fido2ErrorCode.InvalidAuthenticatorResponseOrigin => "origin not allowed",
        Fido2ErrorCode.InvalidRpidHash => "rpIdHash does not match the relying party",
        Fido2ErrorCode.UserPresentFlagNotSet => "user presence flag not set",
        Fido2ErrorCode.UserVerificationRequirementNotMet => "user verification required but not performed",
        Fido2ErrorCode.InvalidSignature => "signature does not verify",
        Fido2ErrorCode.InvalidSignCount => "the signature counter did not advance (a cloned key or a replay)",
        Fido2ErrorCode.InvalidAuthenticatorResponseChallenge or Fido2ErrorCode.MissingAuthenticatorResponseChallenge => "challenge does not match",
        Fido2ErrorCode.NonUniqueCredentialId => "this credential is already registered",
        Fido2ErrorCode.InvalidAssertionResponse or Fido2ErrorCode.InvalidAttestationResponse => "wrong response type",
        _ => "the response does not verify (" + code + ")",
    };

    private static List<string> SplitTransports(string transports) =>
        transports.Split(',', StringSplitOptions.RemoveEmptyEntries).ToList();

    private static AuthenticatorTransport[]? ParseTransports(string transports)
    {
        var parsed = SplitTransports(transports)
            .Select(t => Enum.TryParse<AuthenticatorTransport>(t, ignoreCase: true, out var v) ? v : (AuthenticatorTransport?)null)
            .OfType<AuthenticatorTransport>().ToArray();
        return parsed.Length == 0 ? null : parsed;
    }

    private sealed class CeremonyRow
    {
        public string Id { get; init; } = "";

        public string UserKey { get; init; } = "";

        public string Kind { get; init; } = "";

        public string Options { get; init; } = "";

        public long ExpiresAt { get; init; }

        public long? UsedAt { get; init; }

        public byte[]? ChallengeSeed { get; init; }

        public string? TransactionAmount { get; init; }

        public string? TransactionCurrency { get; init; }

        public string? TransactionPayee { get; init; }

        public string? TransactionReference { get; init; }

        public Transaction? Transaction => Transaction.FromColumns(TransactionAmount, TransactionCurrency, TransactionPayee, TransactionReference);
    }

    private sealed class KeyRow
    {
        public string Id { get; init; } = "";

        public string UserKey { get; init; } = "";

        public byte[] CredentialIdBytes { get; init; } = [];

        public byte[] PublicKey { get; init; } = [];

        public long SignCount { get; init; }

        public string Transports { get; init; } = "";

        public string Aaguid { get; init; } = "";

        public long CreatedAt { get; init; }

        public long? LastUsedAt { get; init; }

        public byte[]? UserHandle { get; init; }

        public SecurityKeyInfo Info => new(Id, UserKey, Base64Url.EncodeToString(CredentialIdBytes), SplitTransports(Transports), Aaguid,
            DateTimeOffset.FromUnixTimeMilliseconds(CreatedAt), LastUsedAt is { } l ? DateTimeOffset.FromUnixTimeMilliseconds(l) : null);
    }
}
