using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Dapper;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Appliance.Users;
using DevRift.Hsm.Crypto;

namespace DevRift.Hsm.Appliance.Applications;

/// <summary>A key's public description (never its secret).</summary>
public sealed record ApiKeyInfo(string Id, string ApplicationId, string Mode, string Hint, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt);

/// <summary>A newly created key: the only time its secret exists outside the caller's hands.</summary>
public sealed record CreatedApiKey(ApiKeyInfo Key, string Secret);

/// <summary>Who a valid API key speaks for.</summary>
public sealed record ApiCaller(string KeyId, Application Application, string Mode)
{
    public bool LiveMode => Mode == Modes.Live;
}

/// <summary>
/// API keys <c>sk_test_…</c>/<c>sk_live_…</c>: 10 characters of key id, then 32 of secret. Stored only as an
/// HSM-keyed verifier <c>HMAC(lookup, "api_key" ‖ id ‖ key)</c>; revocation takes effect on the next request.
/// </summary>
public sealed class ApiKeys(Database db, LookupVerifiers verifiers, ApplicationStore applications, TimeProvider time)
{
    private const string Purpose = "api_key";

    public async Task<CreatedApiKey> CreateAsync(string applicationId, string? mode, CancellationToken ct = default)
    {
        mode = mode?.Trim().ToLowerInvariant();
        if (mode is not (Modes.Test or Modes.Live))
        {
            throw new MfaException(ErrorCode.InvalidRequest, "mode must be test or live", "mode");
        }

        await applications.GetAsync(applicationId, ct);
        var (id, secret) = SecretTokens.New($"sk_{mode}_");
        var verifier = verifiers.Compute(Purpose, id, secret);
        var info = new ApiKeyInfo("ak_" + id, applicationId, mode, secret[..(mode.Length + 8)] + "…" + secret[^4..], time.GetUtcNow(), null);
        await db.WithConnectionAsync(c => c.ExecuteAsync(
            """
            INSERT INTO api_keys (id, application_id, mode, hint, verifier, verifier_version, created_at)
            VALUES (@Id, @ApplicationId, @Mode, @Hint, @Verifier, @Version, @CreatedAt)
            """,
            new { info.Id, info.ApplicationId, info.Mode, info.Hint, Verifier = verifier.Mac, verifier.Version, CreatedAt = info.CreatedAt.ToUnixTimeMilliseconds() }), ct);
        return new CreatedApiKey(info, secret);
    }

    public async Task<IReadOnlyList<ApiKeyInfo>> ListAsync(string applicationId, CancellationToken ct = default)
    {
        var rows = await db.WithConnectionAsync(c => c.QueryAsync<KeyRow>(
            "SELECT id, application_id AS ApplicationId, mode, hint, verifier, verifier_version AS VerifierVersion, created_at AS CreatedAt, revoked_at AS RevokedAt FROM api_keys WHERE application_id = @applicationId ORDER BY created_at",
            new { applicationId }), ct);
        return rows.Select(r => r.Info).ToList();
    }

    public async Task<ApiKeyInfo> RevokeAsync(string applicationId, string keyId, CancellationToken ct = default)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var changed = await db.WithConnectionAsync(c => c.ExecuteAsync(
            "UPDATE api_keys SET revoked_at = @now WHERE id = @keyId AND application_id = @applicationId AND revoked_at IS NULL",
            new { now, keyId, applicationId }), ct);
        var keys = await ListAsync(applicationId, ct);
        return keys.FirstOrDefault(k => k.Id == keyId)
            ?? throw new MfaException(ErrorCode.NotFound, $"no API key '{keyId}' on application '{applicationId}'", "key_id");
    }

    /// <summary>Returns the caller for a presented key, or null for a wrong, revoked or malformed one.</summary>
    public async Task<ApiCaller?> AuthenticateAsync(string? presented, CancellationToken ct = default)
    {
        if (!SecretTokens.TryParse(presented, out var mode, out var id) || mode is not ("sk_test_" or "sk_live_"))
        {
            return null;
        }

        var row = await db.WithConnectionAsync(c => c.QuerySingleOrDefaultAsync<KeyRow>(
            "SELECT id, application_id AS ApplicationId, mode, hint, verifier, verifier_version AS VerifierVersion, created_at AS CreatedAt, revoked_at AS RevokedAt FROM api_keys WHERE id = @id",
            new { id = "ak_" + id }), ct);
        if (row is null || row.RevokedAt is not null || "sk_" + row.Mode + "_" != mode)
        {
            return null;
        }

        // The row is read on every request (revocation is effective at once, on every node); only the HSM check is
        // remembered, by a SHA-256 of the presented key beside the verifier it matched. A key has 190 bits of secret,
        // so the hash gives nothing to guess; a rolled or re-verified key changes the row and misses the cache.
        var presentedHash = SHA256.HashData(Encoding.UTF8.GetBytes(presented!));
        if (!(_verified.TryGetValue(row.Id, out var seen) && seen.Version == row.VerifierVersion
            && CryptographicOperations.FixedTimeEquals(seen.Verifier, row.Verifier)
            && CryptographicOperations.FixedTimeEquals(seen.Presented, presentedHash)))
        {
            if (!verifiers.Matches(Purpose, id, presented!, new KeyedMac(row.VerifierVersion, row.Verifier)))
            {
                return null;
            }

            if (_verified.Count >= VerifiedCapacity)
            {
                _verified.Clear(); // bounded: start over rather than grow
            }

            _verified[row.Id] = new VerifiedKey(presentedHash, row.Verifier, row.VerifierVersion);
        }

        var app = await applications.FindAsync(row.ApplicationId, ct);
        return app is null ? null : new ApiCaller(row.Id, app, row.Mode);
    }

    private const int VerifiedCapacity = 10_000;
    private readonly ConcurrentDictionary<string, VerifiedKey> _verified = new(StringComparer.Ordinal);

    private sealed record VerifiedKey(byte[] Presented, byte[] Verifier, int Version);

    private sealed class KeyRow
    {
        public string Id { get; init; } = "";

        public string ApplicationId { get; init; } = "";

        public string Mode { get; init; } = "";

        public string Hint { get; init; } = "";

        public byte[] Verifier { get; init; } = [];

        public int VerifierVersion { get; init; }

        public long CreatedAt { get; init; }

        public long? RevokedAt { get; init; }

        public ApiKeyInfo Info => new(Id, ApplicationId, Mode, Hint, DateTimeOffset.FromUnixTimeMilliseconds(CreatedAt),
            RevokedAt is { } r ? DateTimeOffset.FromUnixTimeMilliseconds(r) : null);
    }
}

/// <summary>Operator tokens <c>adm_…</c> for <c>/admin/v1</c>, stored like API keys as HSM-keyed verifiers.</summary>
public sealed class OperatorTokens(Database db, LookupVerifiers verifiers, TimeProvider time)
{
    private const string Purpose = "operator_token";

    public async Task<string> CreateAsync(string name, CancellationToken ct = default)
    {
        var (id, secret) = SecretTokens.New("adm_");
        var verifier = verifiers.Compute(Purpose, id, secret);
        await db.WithConnectionAsync(c => c.ExecuteAsync(
            "INSERT INTO operator_tokens (id, name, verifier, verifier_version, created_at) VALUES (@id, @name, @mac, @version, @now)",
            new { id = "op_" + id, name, mac = verifier.Mac, version = verifier.Version, now = time.GetUtcNow().ToUnixTimeMilliseconds() }), ct);
        return secret;
    }

    public async Task<bool> AnyAsync(CancellationToken ct = default) =>
        await db.WithConnectionAsync(c => c.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM operator_tokens WHERE revoked_at IS NULL"), ct) > 0;

    /// <summary>The token's id when it is valid, else null.</summary>
    public async Task<string?> AuthenticateAsync(string? presented, CancellationToken ct = default)
    {
        if (!SecretTokens.TryParse(presented, out var prefix, out var id) || prefix != "adm_")
        {
            return null;
        }

        var row = await db.WithConnectionAsync(c => c.QuerySingleOrDefaultAsync<(byte[] Verifier, int Version, long? RevokedAt)>(
            "SELECT verifier, verifier_version, revoked_at FROM operator_tokens WHERE id = @id", new { id = "op_" + id }), ct);
        if (row.Verifier is null || row.RevokedAt is not null)
        {
            return null;
        }

        return verifiers.Matches(Purpose, id, presented!, new KeyedMac(row.Version, row.Verifier)) ? "op_" + id : null;
    }
}

/// <summary>Shape of bearer secrets: a prefix, 10 characters of public id, 32 of secret (base62).</summary>
internal static class SecretTokens
{
    private const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    private static readonly System.Buffers.SearchValues<char> s_alphabet = System.Buffers.SearchValues.Create(Alphabet);

    public static (string Id, string Secret) New(string prefix)
    {
        var id = RandomNumberGenerator.GetString(Alphabet, 10);
        return (id, prefix + id + RandomNumberGenerator.GetString(Alphabet, 32));
    }

    public static bool TryParse(string? presented, out string prefix, out string id)
    {
        prefix = id = "";
        if (presented is null || presented.Length > 64)
        {
            return false;
        }

        foreach (var p in (string[])["sk_test_", "sk_live_", "adm_"])
        {
            if (presented.StartsWith(p, StringComparison.Ordinal) && presented.Length == p.Length + 42
                && presented.AsSpan(p.Length).IndexOfAnyExcept(s_alphabet) < 0)
            {
                prefix = p;
                id = presented.Substring(p.Length, 10);
                return true;
            }
        }

        return false;
    }
}
