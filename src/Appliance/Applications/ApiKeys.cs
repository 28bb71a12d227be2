using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Dapper;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Appliance.Users;
using DevRift.Hsm.Crypto;

namespace DevRift.Hsm.Appliance.Applications;

/// <summary>
/// A key's public description (never its secret). <paramref name="ExpiresAt"/> is the end of a rolled key's overlap
/// (the key is refused from then on); <paramref name="RolledTo"/> the key that replaced it. <paramref name="LastUsedAt"/>
/// and <paramref name="UseCount"/> are written by <see cref="ApiKeyUsage"/> every few seconds, not per request.
/// </summary>
public sealed record ApiKeyInfo(string Id, string ApplicationId, string Mode, string Hint, DateTimeOffset CreatedAt, DateTimeOffset? RevokedAt,
    string? Label = null, DateTimeOffset? ExpiresAt = null, string? RolledTo = null, DateTimeOffset? LastUsedAt = null, long UseCount = 0)
{
    /// <summary>Whether the key authenticates at <paramref name="now"/>.</summary>
    public bool ActiveAt(DateTimeOffset now) => RevokedAt is null && (ExpiresAt is null || ExpiresAt > now);
}

/// <summary>A rolled key: the new one (with its secret, shown once) and the old one, valid until its <c>ExpiresAt</c>.</summary>
public sealed record RolledApiKey(CreatedApiKey Created, ApiKeyInfo Previous);

/// <summary>A newly created key: the only time its secret exists outside the caller's hands.</summary>
public sealed record CreatedApiKey(ApiKeyInfo Key, string Secret);

/// <summary>
/// Who a valid API key speaks for, and, when the integrator passes it on a send or verify, the end user's address
/// (<see cref="ClientIp"/>): the source that failed verification checks are throttled by, recorded in audit detail.
/// </summary>
public sealed record ApiCaller(string KeyId, Application Application, string Mode)
{
    public bool LiveMode => Mode == Modes.Live;

    /// <summary>The end user's address as the integrator asserts it; null when not given.</summary>
    public ClientIp? ClientIp { get; init; }
}

/// <summary>
/// API keys <c>sk_test_…</c>/<c>sk_live_…</c>: 10 characters of key id, then 32 of secret. Stored only as an
/// HSM-keyed verifier <c>HMAC(lookup, "api_key" ‖ id ‖ key)</c>; revocation takes effect on the next request. A key
/// can be rolled: a new secret at once, the old one kept valid for an overlap the operator chooses, then refused by
/// itself (its <c>expires_at</c> is checked on every request, so no job has to run for it).
/// </summary>
public sealed class ApiKeys(Database db, LookupVerifiers verifiers, HsmConnection hsm, ApplicationStore applications, TimeProvider time)
{
    private const string Purpose = "api_key";

    /// <summary>Longest label, in characters.</summary>
    public const int MaxLabelLength = 100;

    /// <summary>Longest overlap of a roll: 30 days.</summary>
    public static readonly TimeSpan MaxOverlap = TimeSpan.FromDays(30);

    private const string Columns =
        "id, application_id AS ApplicationId, mode, hint, verifier, verifier_version AS VerifierVersion, created_at AS CreatedAt, revoked_at AS RevokedAt, " +
        "label, expires_at AS ExpiresAt, rolled_to AS RolledTo, last_used_at AS LastUsedAt, use_count AS UseCount";

    public async Task<CreatedApiKey> CreateAsync(string applicationId, string? mode, CancellationToken ct = default) =>
        await CreateAsync(applicationId, mode, null, ct);

    public async Task<CreatedApiKey> CreateAsync(string applicationId, string? mode, string? label, CancellationToken ct = default)
    {
        mode = mode?.Trim().ToLowerInvariant();
        if (mode is not (Modes.Test or Modes.Live))
        {
            throw new MfaException(ErrorCode.InvalidRequest, "mode must be test or live", "mode");
        }

        label = NormaliseLabel(label);
        await applications.GetAsync(applicationId, ct);
        var (info, secret, verifier) = NewKey(applicationId, mode, label);
        await db.WithConnectionAsync(c => c.ExecuteAsync(InsertSql, InsertArgs(info, verifier)), ct);
        return new CreatedApiKey(info, secret);
    }

    /// <summary>
    /// Replaces a key: a new secret with the same application, mode and label, now; the old key keeps working for
    /// <paramref name="overlap"/> (zero: refused from the next request) and is then refused by itself. A key already
    /// revoked, expired or rolled cannot be rolled again (400 naming <c>key_id</c>).
    /// </summary>
    public async Task<RolledApiKey> RollAsync(string applicationId, string keyId, TimeSpan overlap, CancellationToken ct = default)
    {
        if (overlap < TimeSpan.Zero || overlap > MaxOverlap)
        {
            throw new MfaException(ErrorCode.InvalidRequest, $"overlap_seconds must be between 0 and {(long)MaxOverlap.TotalSeconds}", "overlap_seconds");
        }

        await applications.GetAsync(applicationId, ct);
        var now = time.GetUtcNow();
        var old = await FindAsync(applicationId, keyId, ct);
        if (!old.ActiveAt(now) || old.RolledTo is not null)
        {
            throw new MfaException(ErrorCode.InvalidRequest,
                old.RolledTo is not null ? $"'{keyId}' was already rolled to {old.RolledTo}" : $"'{keyId}' is revoked or expired and cannot be rolled", "key_id");
        }

        var (info, secret, verifier) = NewKey(applicationId, old.Mode, old.Label);
        var expires = now + overlap;
        var rolled = await db.InTransactionAsync(async (c, tx) =>
        {
            var changed = await c.ExecuteAsync(
                "UPDATE api_keys SET expires_at = @expires, rolled_to = @newId WHERE id = @keyId AND application_id = @applicationId AND revoked_at IS NULL AND rolled_to IS NULL",
                new { expires = expires.ToUnixTimeMilliseconds(), newId = info.Id, keyId, applicationId }, tx);
            if (changed == 1)
            {
                await c.ExecuteAsync(InsertSql, InsertArgs(info, verifier), tx);
            }

            return changed == 1;
        }, ct);
        if (!rolled)
        {
            throw new MfaException(ErrorCode.InvalidRequest, $"'{keyId}' was rolled or revoked meanwhile", "key_id");
        }

        return new RolledApiKey(new CreatedApiKey(info, secret), await FindAsync(applicationId, keyId, ct));
    }

    /// <summary>Sets (or, with null or empty, clears) a key's label.</summary>
    public async Task<ApiKeyInfo> LabelAsync(string applicationId, string keyId, string? label, CancellationToken ct = default)
    {
        label = NormaliseLabel(label);
        await applications.GetAsync(applicationId, ct);
        await db.WithConnectionAsync(c => c.ExecuteAsync(
            "UPDATE api_keys SET label = @label WHERE id = @keyId AND application_id = @applicationId", new { label, keyId, applicationId }), ct);
        return await FindAsync(applicationId, keyId, ct);
    }

    public async Task<IReadOnlyList<ApiKeyInfo>> ListAsync(string applicationId, CancellationToken ct = default)
    {
        var rows = await db.WithConnectionAsync(c => c.QueryAsync<KeyRow>(
            $"SELECT {Columns} FROM api_keys WHERE application_id = @applicationId ORDER BY created_at",
            new { applicationId }), ct);
        return rows.Select(r => r.Info).ToList();
    }

    public async Task<ApiKeyInfo> FindAsync(string applicationId, string keyId, CancellationToken ct = default)
    {
        var row = await db.WithConnectionAsync(c => c.QuerySingleOrDefaultAsync<KeyRow>(
            $"SELECT {Columns} FROM api_keys WHERE id = @keyId AND application_id = @applicationId", new { keyId, applicationId }), ct);
        return row?.Info ?? throw new MfaException(ErrorCode.NotFound, $"no API key '{keyId}' on application '{applicationId}'", "key_id");
    }

    public async Task<ApiKeyInfo> RevokeAsync(string applicationId, string keyId, CancellationToken ct = default)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        await db.WithConnectionAsync(c => c.ExecuteAsync(
            "UPDATE api_keys SET revoked_at = @now WHERE id = @keyId AND application_id = @applicationId AND revoked_at IS NULL",
            new { now, keyId, applicationId }), ct);
        return await FindAsync(applicationId, keyId, ct);
    }

    private const string InsertSql =
        """
        INSERT INTO api_keys (id, application_id, mode, hint, verifier, verifier_version, created_at, label)
        VALUES (@Id, @ApplicationId, @Mode, @Hint, @Verifier, @Version, @CreatedAt, @Label)
        """;

    private static object InsertArgs(ApiKeyInfo info, KeyedMac verifier) =>
        new { info.Id, info.ApplicationId, info.Mode, info.Hint, Verifier = verifier.Mac, verifier.Version, CreatedAt = info.CreatedAt.ToUnixTimeMilliseconds(), info.Label };

    private (ApiKeyInfo Info, string Secret, KeyedMac Verifier) NewKey(string applicationId, string mode, string? label)
    {
        var (id, secret) = SecretTokens.New($"sk_{mode}_");
        var verifier = verifiers.Compute(Purpose, id, secret);
        // Stored to the millisecond: the same instant whether read back or returned now.
        var now = DateTimeOffset.FromUnixTimeMilliseconds(time.GetUtcNow().ToUnixTimeMilliseconds());
        return (new ApiKeyInfo("ak_" + id, applicationId, mode, secret[..(mode.Length + 8)] + "…" + secret[^4..], now, null, label), secret, verifier);
    }

    /// <summary>A label as stored: trimmed, null when empty; at most <see cref="MaxLabelLength"/> characters without control characters.</summary>
    public static string? NormaliseLabel(string? label)
    {
        label = label?.Trim();
        if (string.IsNullOrEmpty(label))
        {
            return null;
        }

        return label.Length > MaxLabelLength || label.Any(char.IsControl)
            ? throw new MfaException(ErrorCode.InvalidRequest, $"label must be at most {MaxLabelLength} characters, without control characters", "label")
            : label;
    }

    /// <summary>Returns the caller for a presented key, or null for a wrong, revoked or malformed one.</summary>
    public async Task<ApiCaller?> AuthenticateAsync(string? presented, CancellationToken ct = default)
    {
        if (!SecretTokens.TryParse(presented, out var mode, out var id) || mode is not ("sk_test_" or "sk_live_"))
        {
            return null;
        }

        // The key and its application in one round trip.
        var (row, appRow) = (await db.WithConnectionAsync(c => c.QueryAsync<KeyRow, ApplicationStore.Row, (KeyRow, ApplicationStore.Row)>(
            $"SELECT {Qualified("k", Columns)}, {Qualified("a", ApplicationStore.Row.Columns)} FROM api_keys k JOIN applications a ON a.id = k.application_id WHERE k.id = @id",
            (k, a) => (k, a), new { id = "ak_" + id }, splitOn: "id"), ct)).SingleOrDefault();
        if (row is null || !row.Info.ActiveAt(time.GetUtcNow()) || "sk_" + row.Mode + "_" != mode)
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
        else
        {
            // Remembered, but a node without its HSM still fails closed, reads included.
            hsm.EnsureAvailable();
        }

        return new ApiCaller(row.Id, appRow.ToApplication(), row.Mode);
    }

    /// <summary>"a, b AS B" with every column prefixed by <paramref name="table"/>.</summary>
    private static string Qualified(string table, string columns) =>
        string.Join(", ", columns.Split(", ").Select(column => $"{table}.{column}"));

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

        public string? Label { get; init; }

        public long? ExpiresAt { get; init; }

        public string? RolledTo { get; init; }

        public long? LastUsedAt { get; init; }

        public long UseCount { get; init; }

        public ApiKeyInfo Info => new(Id, ApplicationId, Mode, Hint, DateTimeOffset.FromUnixTimeMilliseconds(CreatedAt), Time(RevokedAt),
            Label, Time(ExpiresAt), RolledTo, Time(LastUsedAt), UseCount);

        private static DateTimeOffset? Time(long? ms) => ms is { } v ? DateTimeOffset.FromUnixTimeMilliseconds(v) : null;
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
