using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Dapper;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.SecurityKeys;

/// <summary>A registered software key and the security_key object the appliance answered with.</summary>
public sealed record RegisteredKey(SoftwareAuthenticator Authenticator, string Id, JsonElement Body);

/// <summary>The /v1 security-key requests of API.md, as an integrator's backend sends them.</summary>
public static class SecurityKeyApi
{
    private static int s_user;

    public static string NewUser(string hint) =>
        $"{hint}-{Interlocked.Increment(ref s_user)}-{Guid.NewGuid().ToString("N")[..6]}@example.com";

    /// <summary>The origin the demo application allows: the appliance's own URL with host localhost.</summary>
    public static string LocalOrigin(this ApplianceServer server) => $"http://localhost:{server.BaseAddress.Port}";

    public static SoftwareAuthenticator NewAuthenticator(this ApplianceServer server) => new(server.LocalOrigin());

    public static Task<HttpResponseMessage> PostRegistrationOptionsAsync(this ApplianceServer server, string user, string? bearer = null) =>
        server.PostJsonAsync("/v1/mfa/keys/registration/options", new { user }, bearer);

    public static async Task<JsonElement> RegistrationOptionsAsync(this ApplianceServer server, string user, string? bearer = null)
    {
        using var response = await server.PostRegistrationOptionsAsync(user, bearer);
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
        return await response.AssertJsonAsync(HttpStatusCode.OK);
    }

    public static Task<HttpResponseMessage> PostRegistrationAsync(this ApplianceServer server, string user, JsonNode? credential, string? bearer = null) =>
        server.PostJsonAsync("/v1/mfa/keys/registration", new { user, credential }, bearer);

    public static Task<HttpResponseMessage> PostAssertionOptionsAsync(this ApplianceServer server, string user, string? bearer = null) =>
        server.PostJsonAsync("/v1/mfa/keys/assertion/options", new { user }, bearer);

    public static async Task<JsonElement> AssertionOptionsAsync(this ApplianceServer server, string user, string? bearer = null)
    {
        using var response = await server.PostAssertionOptionsAsync(user, bearer);
        return await response.AssertJsonAsync(HttpStatusCode.OK);
    }

    public static Task<HttpResponseMessage> VerifyKeyAsync(this ApplianceServer server, string user, JsonNode? credential, string? bearer = null) =>
        server.PostJsonAsync("/v1/mfa/verify", new { user, type = "KEY", credential }, bearer);

    /// <summary>Options, the authenticator's attestation, 201.</summary>
    public static async Task<RegisteredKey> RegisterKeyAsync(this ApplianceServer server, string user, SoftwareAuthenticator? authenticator = null, string? bearer = null)
    {
        authenticator ??= server.NewAuthenticator();
        var options = await server.RegistrationOptionsAsync(user, bearer);
        using var response = await server.PostRegistrationAsync(user, authenticator.Register(options), bearer);
        var body = await response.AssertJsonAsync(HttpStatusCode.Created, "security_key");
        var id = body.GetProperty("id").GetString()!;
        Assert.Equal($"/v1/mfa/keys/{id}", response.Headers.Location?.OriginalString);
        return new RegisteredKey(authenticator, id, body);
    }

    /// <summary>Assertion options, the authenticator's assertion, 200 verification of type KEY.</summary>
    public static async Task<JsonElement> VerifiedWithKeyAsync(this ApplianceServer server, string user, SoftwareAuthenticator authenticator, string? bearer = null)
    {
        var options = await server.AssertionOptionsAsync(user, bearer);
        using var response = await server.VerifyKeyAsync(user, authenticator.Assert(options), bearer);
        var body = await response.AssertJsonAsync(HttpStatusCode.OK, "verification");
        Assert.True(body.GetProperty("valid").GetBoolean());
        Assert.Equal("KEY", body.GetProperty("type").GetString());
        Assert.Equal(user, body.GetProperty("user").GetString());
        return body;
    }

    public static async Task<List<JsonElement>> ListKeysAsync(this ApplianceServer server, string user, string? bearer = null)
    {
        using var response = await server.NewClient(bearer ?? server.TestKey).GetAsync($"/v1/mfa/keys?user={Uri.EscapeDataString(user)}");
        var body = await response.AssertJsonAsync(HttpStatusCode.OK, "list");
        return [.. body.GetProperty("data").EnumerateArray()];
    }

    public static async Task<HttpResponseMessage> DeleteKeyAsync(this ApplianceServer server, string id, string? bearer = null) =>
        await server.NewClient(bearer ?? server.TestKey).DeleteAsync($"/v1/mfa/keys/{Uri.EscapeDataString(id)}");

    public static async Task<JsonElement> FactorsOfAsync(this ApplianceServer server, string user, string? bearer = null)
    {
        using var response = await server.NewClient(bearer ?? server.TestKey).GetAsync($"/v1/mfa/factors?user={Uri.EscapeDataString(user)}");
        return await response.AssertJsonAsync(HttpStatusCode.OK, "factors");
    }

    /// <summary>A test key of a new application whose relying party is localhost (origins: the appliance's own).</summary>
    public static async Task<string> NewKeyApplicationAsync(this ApplianceServer server, string name, object? extraSettings = null)
    {
        var (id, key) = await server.CreateApplicationWithKeyAsync(name, "standard", new { webauthn_rp_id = "localhost" });
        if (extraSettings is not null)
        {
            using var patched = await server.PatchSettingsAsync(id, extraSettings);
            await patched.AssertJsonAsync(HttpStatusCode.OK, "settings");
        }

        return key;
    }

    public static async Task<T?> ScalarAsync<T>(this ApplianceServer server, string sql, object? parameters = null)
    {
        await using var connection = await server.OpenDatabaseAsync();
        return await connection.ExecuteScalarAsync<T>(sql, parameters);
    }

    /// <summary>Posts <paramref name="count"/> copies of one body at once (released together) and returns every answer.</summary>
    public static Task<List<(HttpStatusCode Status, string Body)>> RaceAsync(this ApplianceServer server, string path, string json, int count) =>
        server.RaceAsync(path, Enumerable.Repeat(json, count).ToList(), server.TestKey);

    /// <summary>Posts every body at once (released together) and returns every answer.</summary>
    public static async Task<List<(HttpStatusCode Status, string Body)>> RaceAsync(this ApplianceServer server, string path, IReadOnlyList<string> bodies, string bearer)
    {
        using var client = server.NewClient(bearer);
        using var start = new SemaphoreSlim(0);
        var tasks = bodies.Select(async json =>
        {
            await start.WaitAsync();
            using var response = await client.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }).ToList();
        start.Release(bodies.Count);
        return [.. await Task.WhenAll(tasks)];
    }
}
