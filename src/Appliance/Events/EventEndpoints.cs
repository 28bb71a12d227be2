using System.Security.Cryptography;
using System.Text;
using Dapper;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Crypto;

namespace DevRift.Hsm.Appliance.Events;

/// <summary>An application's event endpoint. <paramref name="Events"/> empty means every type.</summary>
public sealed record EventEndpoint(string ApplicationId, string Url, IReadOnlyList<string> Events, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);

/// <summary>An endpoint as configured or rotated: the signing secret is in this value only, once.</summary>
public sealed record ConfiguredEventEndpoint(EventEndpoint Endpoint, string? Secret);

/// <summary>
/// Each application's event endpoint: where its events go, which types, and the secret they are signed with. The
/// secret (<c>whsec_</c> and 32 bytes of HSM randomness, base64url) is generated here, returned once, and stored only
/// sealed under the HSM seal key bound to the application id; the dispatcher opens it just before signing.
/// </summary>
public sealed class EventEndpoints(Database db, ApplicationStore applications, Sealer sealer, HsmRandom random, TimeProvider time)
{
    public const string SecretPrefix = "whsec_";

    /// <summary>Creates or replaces the endpoint. A new endpoint gets a new secret (returned); an update keeps the secret.</summary>
    public async Task<ConfiguredEventEndpoint> ConfigureAsync(string applicationId, string? url, IReadOnlyList<string>? events, CancellationToken ct = default)
    {
        var parsedUrl = ParseUrl(url);
        var filter = ParseEvents(events);
        await applications.GetAsync(applicationId, ct);
        var now = Now();
        var existing = await FindAsync(applicationId, ct);
        string? secret = null;
        if (existing is null)
        {
            secret = NewSecret();
            var sealedSecret = Seal(applicationId, secret);
            var inserted = await db.WithConnectionAsync(c => c.ExecuteAsync(
                """
                INSERT INTO event_endpoints (application_id, url, events, sealed_secret, created_at, updated_at)
                VALUES (@applicationId, @url, @events, @sealedSecret, @now, @now)
                ON CONFLICT (application_id) DO NOTHING
                """,
                new { applicationId, url = parsedUrl, events = string.Join(',', filter), sealedSecret, now = now.ToUnixTimeMilliseconds() }), ct);
            if (inserted == 1)
            {
                return new ConfiguredEventEndpoint(new EventEndpoint(applicationId, parsedUrl, filter, now, now), secret);
            }

            secret = null; // a concurrent request created it first: update that one, its secret stands
        }

        await db.WithConnectionAsync(c => c.ExecuteAsync(
            "UPDATE event_endpoints SET url = @url, events = @events, updated_at = @now WHERE application_id = @applicationId",
            new { applicationId, url = parsedUrl, events = string.Join(',', filter), now = now.ToUnixTimeMilliseconds() }), ct);
        return new ConfiguredEventEndpoint((await FindAsync(applicationId, ct))!, secret);
    }

    /// <summary>A new secret for an existing endpoint (returned once); events not yet delivered are signed with it.</summary>
    public async Task<ConfiguredEventEndpoint> RotateSecretAsync(string applicationId, CancellationToken ct = default)
    {
        await GetAsync(applicationId, ct);
        var secret = NewSecret();
        var sealedSecret = Seal(applicationId, secret);
        await db.WithConnectionAsync(c => c.ExecuteAsync(
            "UPDATE event_endpoints SET sealed_secret = @sealedSecret, updated_at = @now WHERE application_id = @applicationId",
            new { applicationId, sealedSecret, now = Now().ToUnixTimeMilliseconds() }), ct);
        return new ConfiguredEventEndpoint(await GetAsync(applicationId, ct), secret);
    }

    /// <summary>The endpoint, or 404 <c>not_found</c>.</summary>
    public async Task<EventEndpoint> GetAsync(string applicationId, CancellationToken ct = default) =>
        await TryGetAsync(applicationId, ct) ?? throw new MfaException(ErrorCode.NotFound, $"application '{applicationId}' has no event endpoint", "id");

    /// <summary>The endpoint, or null when the application has none (404 when there is no such application).</summary>
    public async Task<EventEndpoint?> TryGetAsync(string applicationId, CancellationToken ct = default)
    {
        await applications.GetAsync(applicationId, ct);
        return await FindAsync(applicationId, ct);
    }

    /// <summary>Removes the endpoint: no further events are stored, and those still queued are given up by the dispatcher.</summary>
    public async Task<EventEndpoint> RemoveAsync(string applicationId, CancellationToken ct = default)
    {
        var existing = await GetAsync(applicationId, ct);
        await db.WithConnectionAsync(c => c.ExecuteAsync("DELETE FROM event_endpoints WHERE application_id = @applicationId", new { applicationId }), ct);
        return existing;
    }

    /// <summary>The URL and the opened secret for signing (the dispatcher), or null when the endpoint is gone.</summary>
    public async Task<(string Url, byte[] Secret)?> SigningTargetAsync(string applicationId, CancellationToken ct = default)
    {
        var row = await db.WithConnectionAsync(c => c.QuerySingleOrDefaultAsync<SecretRow>(
            "SELECT url, sealed_secret AS SealedSecret FROM event_endpoints WHERE application_id = @applicationId", new { applicationId }), ct);
        return row is null ? null : (row.Url, sealer.Open(row.SealedSecret, SealContext(applicationId)));
    }

    /// <summary>An absolute http or https URL without user information, or 400 naming <c>url</c>.</summary>
    public static string ParseUrl(string? url)
    {
        if (string.IsNullOrWhiteSpace(url) || !Uri.TryCreate(url.Trim(), UriKind.Absolute, out var uri)
            || uri.Scheme is not ("http" or "https") || uri.UserInfo.Length > 0 || url.Length > 2048)
        {
            throw new MfaException(ErrorCode.InvalidRequest, "url must be an absolute http:// or https:// URL (at most 2048 characters, no user:password@)", "url");
        }

        return uri.AbsoluteUri;
    }

    /// <summary>Known event types, sorted and unique; empty (every type) when none are named. Otherwise 400 naming <c>events</c>.</summary>
    public static IReadOnlyList<string> ParseEvents(IReadOnlyList<string>? events)
    {
        if (events is null)
        {
            return [];
        }

        foreach (var e in events)
        {
            if (!EventTypes.All.Contains(e, StringComparer.Ordinal))
            {
                throw new MfaException(ErrorCode.InvalidRequest, $"events: '{e}' is not an event type; expected some of {string.Join(", ", EventTypes.All)}", "events");
            }
        }

        return events.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
    }

    internal static string SealContext(string applicationId) => "event-endpoint:" + applicationId;

    private async Task<EventEndpoint?> FindAsync(string applicationId, CancellationToken ct)
    {
        var row = await db.WithConnectionAsync(c => c.QuerySingleOrDefaultAsync<Row>(
            "SELECT application_id AS ApplicationId, url, events, created_at AS CreatedAt, updated_at AS UpdatedAt FROM event_endpoints WHERE application_id = @applicationId",
            new { applicationId }), ct);
        return row is null
            ? null
            : new EventEndpoint(row.ApplicationId, row.Url, Split(row.Events), DateTimeOffset.FromUnixTimeMilliseconds(row.CreatedAt), DateTimeOffset.FromUnixTimeMilliseconds(row.UpdatedAt));
    }

    internal static IReadOnlyList<string> Split(string events) => events.Split(',', StringSplitOptions.RemoveEmptyEntries);

    private DateTimeOffset Now() => DateTimeOffset.FromUnixTimeMilliseconds(time.GetUtcNow().ToUnixTimeMilliseconds());

    private string NewSecret()
    {
        var bytes = random.GetBytes(32);
        try
        {
            return SecretPrefix + Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
        }
    }

    private byte[] Seal(string applicationId, string secret)
    {
        var plain = Encoding.UTF8.GetBytes(secret);
        try
        {
            return sealer.Seal(plain, SealContext(applicationId));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plain);
        }
    }

    private sealed class Row
    {
        public string ApplicationId { get; init; } = "";

        public string Url { get; init; } = "";

        public string Events { get; init; } = "";

        public long CreatedAt { get; init; }

        public long UpdatedAt { get; init; }
    }

    private sealed class SecretRow
    {
        public string Url { get; init; } = "";

        public byte[] SealedSecret { get; init; } = [];
    }
}
