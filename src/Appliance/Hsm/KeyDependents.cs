using Dapper;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Crypto;

namespace DevRift.Hsm.Appliance.Hsm;

/// <summary>
/// One kind of stored data that needs a purpose's key to be verified or opened, counted by the key version it was
/// made under. Every kind is registered in DI; <see cref="KeyManagement"/> sums them per version to show what
/// still depends on a key and to refuse retiring it while anything does. A purpose with no registered kind cannot
/// be retired at all: nothing proves its old versions unused.
/// </summary>
public interface IKeyDependents
{
    /// <summary>The key purpose this data depends on.</summary>
    KeyPurpose Purpose { get; }

    /// <summary>The name shown in <c>dependents</c> (<c>api_keys</c>, <c>totp_factors</c>, …).</summary>
    string Name { get; }

    /// <summary>Rows still needing the key, by key version (versions with no rows may be absent).</summary>
    Task<IReadOnlyDictionary<int, long>> CountByVersionAsync(CancellationToken ct = default);
}

/// <summary>
/// A SQL query returning <c>(version, count)</c> rows for one kind of data. It may use <c>@now</c> (Unix milliseconds
/// of the injected clock), e.g. to leave out challenges that can no longer be verified.
/// </summary>
public sealed record KeyDependentsQuery(KeyPurpose Purpose, string Name, string CountByVersionSql)
{
    /// <summary>The kinds of data stored under each purpose (audit records need their key for as long as the chain is verified).</summary>
    public static IReadOnlyList<KeyDependentsQuery> Standard { get; } =
    [
        new(KeyPurpose.SeedKek, "totp_factors",
            "SELECT CAST(kek_version AS BIGINT), COUNT(*) FROM totp_factors GROUP BY kek_version"),
        new(KeyPurpose.Code, "pending_challenges",
            "SELECT CAST(code_key_version AS BIGINT), COUNT(*) FROM challenges WHERE status = 'pending' AND expires_at > @now GROUP BY code_key_version"),
        new(KeyPurpose.Lookup, "api_keys",
            "SELECT CAST(verifier_version AS BIGINT), COUNT(*) FROM api_keys WHERE revoked_at IS NULL GROUP BY verifier_version"),
        new(KeyPurpose.Lookup, "operator_tokens",
            "SELECT CAST(verifier_version AS BIGINT), COUNT(*) FROM operator_tokens WHERE revoked_at IS NULL GROUP BY verifier_version"),
        new(KeyPurpose.Lookup, "backup_codes",
            "SELECT CAST(verifier_version AS BIGINT), COUNT(*) FROM backup_codes WHERE used_at IS NULL GROUP BY verifier_version"),
        new(KeyPurpose.Audit, "audit_records",
            "SELECT CAST(key_version AS BIGINT), COUNT(*) FROM audit_log GROUP BY key_version"),
    ];
}

/// <summary>Dependents counted by one <see cref="KeyDependentsQuery"/>.</summary>
public sealed class SqlKeyDependents(Database db, TimeProvider time, KeyDependentsQuery query) : IKeyDependents
{
    public KeyPurpose Purpose => query.Purpose;

    public string Name => query.Name;

    public async Task<IReadOnlyDictionary<int, long>> CountByVersionAsync(CancellationToken ct = default)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var rows = await db.WithConnectionAsync(c => c.QueryAsync<(long Version, long Count)>(query.CountByVersionSql, new { now }), ct);
        return rows.ToDictionary(r => (int)r.Version, r => r.Count);
    }
}

/// <summary>
/// Outbox bodies still sealed, by the seal-key version in their header (<see cref="Sealer.VersionOf"/>): live messages
/// not yet delivered (the dispatcher deletes a body once sent or given up), or test-mode messages, which stay
/// readable through <c>GET /v1/test/messages</c>. Only the 5-byte header is read.
/// </summary>
public sealed class SealedOutboxDependents(Database db, string mode) : IKeyDependents
{
    public KeyPurpose Purpose => KeyPurpose.Seal;

    public string Name => mode == Modes.Test ? "test_messages" : "queued_messages";

    public async Task<IReadOnlyDictionary<int, long>> CountByVersionAsync(CancellationToken ct = default)
    {
        var headers = await db.WithConnectionAsync(c => c.QueryAsync<byte[]>(
            "SELECT substr(sealed_body, 1, 5) FROM outbox WHERE mode = @mode AND sealed_body IS NOT NULL", new { mode }), ct);
        return headers.GroupBy(Sealer.VersionOf).ToDictionary(g => g.Key, g => (long)g.LongCount());
    }
}

/// <summary>Event endpoints' signing secrets, sealed until the endpoint is removed or its secret rotated (by the seal-key version in their header).</summary>
public sealed class SealedEventSecretDependents(Database db) : IKeyDependents
{
    public KeyPurpose Purpose => KeyPurpose.Seal;

    public string Name => "event_endpoint_secrets";

    public async Task<IReadOnlyDictionary<int, long>> CountByVersionAsync(CancellationToken ct = default)
    {
        var headers = await db.WithConnectionAsync(c => c.QueryAsync<byte[]>("SELECT substr(sealed_secret, 1, 5) FROM event_endpoints"), ct);
        return headers.GroupBy(Sealer.VersionOf).ToDictionary(g => g.Key, g => (long)g.LongCount());
    }
}
