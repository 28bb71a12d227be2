using Dapper;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Crypto;

namespace DevRift.Hsm.Appliance.Applications;

/// <summary>An operator token's public description: never its secret.</summary>
public sealed record OperatorTokenInfo(string Id, string Label, DateTimeOffset CreatedAt, DateTimeOffset? LastUsedAt, DateTimeOffset? RevokedAt);

/// <summary>A newly created operator token: the only time its secret exists outside the operator's hands.</summary>
public sealed record CreatedOperatorToken(OperatorTokenInfo Token, string Secret);

/// <summary>
/// Operator tokens <c>adm_…</c> for <c>/admin/v1</c> and the dashboard, stored like API keys as HSM-keyed verifiers:
/// created (the secret shown once), listed (id, label, created, last used), revoked (refused from the next request,
/// on every node: the row is read on each authentication). The last use is written at most once a minute per token.
/// </summary>
public sealed class OperatorTokens(Database db, LookupVerifiers verifiers, TimeProvider time)
{
    private const string Purpose = "operator_token";

    /// <summary>How stale <c>last_used_at</c> may be: a use within this of the stored one writes nothing.</summary>
    public static readonly TimeSpan LastUsedResolution = TimeSpan.FromMinutes(1);

    private const string Columns = "id, name AS Label, created_at AS CreatedAt, last_used_at AS LastUsedAt, revoked_at AS RevokedAt";

    /// <summary>Creates a token and returns its secret (kept nowhere).</summary>
    public async Task<string> CreateAsync(string name, CancellationToken ct = default) => (await CreateTokenAsync(name, ct)).Secret;

    public async Task<CreatedOperatorToken> CreateTokenAsync(string? label, CancellationToken ct = default)
    {
        label = ApiKeys.NormaliseLabel(label) ?? throw new MfaException(ErrorCode.InvalidRequest, "label is required (1 to 100 characters)", "label");
        var (id, secret) = SecretTokens.New("adm_");
        var verifier = verifiers.Compute(Purpose, id, secret);
        var now = DateTimeOffset.FromUnixTimeMilliseconds(time.GetUtcNow().ToUnixTimeMilliseconds());
        var info = new OperatorTokenInfo("op_" + id, label, now, null, null);
        await db.WithConnectionAsync(c => c.ExecuteAsync(
            "INSERT INTO operator_tokens (id, name, verifier, verifier_version, created_at) VALUES (@id, @label, @mac, @version, @now)",
            new { id = info.Id, label, mac = verifier.Mac, version = verifier.Version, now = now.ToUnixTimeMilliseconds() }), ct);
        return new CreatedOperatorToken(info, secret);
    }

    public async Task<IReadOnlyList<OperatorTokenInfo>> ListAsync(CancellationToken ct = default)
    {
        var rows = await db.WithConnectionAsync(c => c.QueryAsync<Row>($"SELECT {Columns} FROM operator_tokens ORDER BY created_at, id"), ct);
        return rows.Select(r => r.Info).ToList();
    }

    public async Task<OperatorTokenInfo> GetAsync(string id, CancellationToken ct = default)
    {
        var row = await db.WithConnectionAsync(c => c.QuerySingleOrDefaultAsync<Row>($"SELECT {Columns} FROM operator_tokens WHERE id = @id", new { id }), ct);
        return row?.Info ?? throw new MfaException(ErrorCode.NotFound, $"no operator token '{id}'", "id");
    }

    /// <summary>Revokes a token: every request presenting it from now on is refused. Revoking twice keeps the first time.</summary>
    public async Task<OperatorTokenInfo> RevokeAsync(string id, CancellationToken ct = default)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        await db.WithConnectionAsync(c => c.ExecuteAsync(
            "UPDATE operator_tokens SET revoked_at = @now WHERE id = @id AND revoked_at IS NULL", new { id, now }), ct);
        return await GetAsync(id, ct);
    }

    public async Task<bool> AnyAsync(CancellationToken ct = default) =>
        await db.WithConnectionAsync(c => c.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM operator_tokens WHERE revoked_at IS NULL"), ct) > 0;

    /// <summary>Whether the token id names a token that is not revoked (a dashboard session checks this on every request).</summary>
    public async Task<bool> IsActiveAsync(string id, CancellationToken ct = default) =>
        await db.WithConnectionAsync(c => c.ExecuteScalarAsync<long>(
            "SELECT COUNT(*) FROM operator_tokens WHERE id = @id AND revoked_at IS NULL", new { id }), ct) > 0;

    /// <summary>The token's id when it is valid, else null. Records the use (at most one write a minute per token).</summary>
    public async Task<string?> AuthenticateAsync(string? presented, CancellationToken ct = default)
    {
        if (!SecretTokens.TryParse(presented, out var prefix, out var id) || prefix != "adm_")
        {
            return null;
        }

        var row = await db.WithConnectionAsync(c => c.QuerySingleOrDefaultAsync<(byte[] Verifier, int Version, long? RevokedAt)>(
            "SELECT verifier, verifier_version, revoked_at FROM operator_tokens WHERE id = @id", new { id = "op_" + id }), ct);
        if (row.Verifier is null || row.RevokedAt is not null || !verifiers.Matches(Purpose, id, presented!, new KeyedMac(row.Version, row.Verifier)))
        {
            return null;
        }

        await TouchAsync("op_" + id, ct);
        return "op_" + id;
    }

    /// <summary>Moves <c>last_used_at</c> to now unless it is already within <see cref="LastUsedResolution"/>.</summary>
    public Task TouchAsync(string id, CancellationToken ct = default)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var stale = now - (long)LastUsedResolution.TotalMilliseconds;
        return db.WithConnectionAsync(c => c.ExecuteAsync(
            "UPDATE operator_tokens SET last_used_at = @now WHERE id = @id AND (last_used_at IS NULL OR last_used_at < @stale)",
            new { id, now, stale }), ct);
    }

    private sealed class Row
    {
        public string Id { get; init; } = "";

        public string Label { get; init; } = "";

        public long CreatedAt { get; init; }

        public long? LastUsedAt { get; init; }

        public long? RevokedAt { get; init; }

        public OperatorTokenInfo Info => new(Id, Label, DateTimeOffset.FromUnixTimeMilliseconds(CreatedAt), Time(LastUsedAt), Time(RevokedAt));

        private static DateTimeOffset? Time(long? ms) => ms is { } v ? DateTimeOffset.FromUnixTimeMilliseconds(v) : null;
    }
}
