using System.Text;
using DevRift.Hsm.Api.Auth;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.SecurityKeys;
using DevRift.Hsm.Appliance.Users;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace DevRift.Hsm.Api.V1;

public sealed record SecurityKeyResponse(string Object, string Id, string User, string CredentialId, IReadOnlyList<string> Transports, string Aaguid,
    DateTime CreatedAt, DateTime? LastUsedAt, bool Livemode)
{
    public static SecurityKeyResponse From(SecurityKeyInfo k, bool livemode)
    {
        ArgumentNullException.ThrowIfNull(k);
        return new("security_key", k.Id, k.User, k.CredentialId, k.Transports, k.Aaguid, k.CreatedAt.UtcDateTime, k.LastUsedAt?.UtcDateTime, livemode);
    }
}

/// <summary>WebAuthn ceremonies for security keys; options are standard WebAuthn JSON (base64url).</summary>
public static class SecurityKeyEndpoints
{
    public static RouteGroupBuilder MapSecurityKeys(this RouteGroupBuilder v1)
    {
        ArgumentNullException.ThrowIfNull(v1);
        v1.MapPost("/mfa/keys/registration/options", async (HttpContext http, SecurityKeyService keys) =>
        {
            var body = await RequestBody.ReadAsync(http.Request, http.RequestAborted);
            return Json(http, await keys.RegistrationOptionsAsync(http.Caller(), body.Require("user", ErrorCode.InvalidUser), body.UserId, http.RequestAborted));
        }).WithName("SecurityKeyRegistrationOptions").WithSummary("Start security-key registration: WebAuthn creation options");
        v1.MapPost("/mfa/keys/registration", async (HttpContext http, SecurityKeyService keys) =>
        {
            var body = await RequestBody.ReadAsync(http.Request, http.RequestAborted);
            var caller = http.Caller();
            var key = await keys.RegisterAsync(caller, body.Require("user", ErrorCode.InvalidUser), CredentialOf(body), body.UserId, http.RequestAborted);
            return TypedResults.Created($"/v1/mfa/keys/{key.Id}", SecurityKeyResponse.From(key, caller.LiveMode));
        }).WithName("SecurityKeyRegistration").WithSummary("Finish registration with the attestation response as 'credential'");
        v1.MapPost("/mfa/keys/assertion/options", async (HttpContext http, SecurityKeyService keys) =>
        {
            var body = await RequestBody.ReadAsync(http.Request, http.RequestAborted);
            return Json(http, await keys.AssertionOptionsAsync(http.Caller(), body.Require("user", ErrorCode.InvalidUser), body.Transaction, body.UserId, http.RequestAborted));
        }).WithName("SecurityKeyAssertionOptions").WithSummary("Start a security-key check: WebAuthn request options (bound to the transaction, when one is given); then verify with Type=KEY");
        v1.MapGet("/mfa/keys", async (HttpContext http, SecurityKeyService keys, Identities identities, string? user, [FromQuery(Name = "user_id")] string? userId) =>
        {
            var caller = http.Caller();
            var parsed = MfaUser.Parse(FactorEndpoints.Required(user)).WithUserId(userId);
            var list = await keys.ListAsync(caller, await identities.KeyAsync(caller, parsed, http.RequestAborted), parsed.Key, http.RequestAborted);
            return TypedResults.Ok(ListResponse.Of(list.Select(k => SecurityKeyResponse.From(k, caller.LiveMode)).ToList()));
        }).WithName("ListSecurityKeys").WithSummary("List a user's security keys");
        v1.MapDelete("/mfa/keys/{id}", async (HttpContext http, SecurityKeyService keys, string id) =>
        {
            await keys.RemoveAsync(http.Caller(), id, http.RequestAborted);
            return TypedResults.NoContent();
        }).WithName("RemoveSecurityKey").WithSummary("Remove a security key");
        return v1;
    }

    internal static System.Text.Json.JsonElement? CredentialOf(RequestBody body)
    {
        if (body.Credential is { } c)
        {
            return c;
        }

        // Form bodies may carry the response as JSON text.
        if (body.Get("credential") is { Length: > 0 } text)
        {
            try
            {
                using var doc = System.Text.Json.JsonDocument.Parse(text);
                return doc.RootElement.Clone();
            }
            catch (System.Text.Json.JsonException)
            {
                throw new MfaException(ErrorCode.InvalidRequest, "'credential' is not JSON", "credential");
            }
        }

        return null;
    }

    private static ContentHttpResult Json(HttpContext http, string json)
    {
        http.Response.Headers.CacheControl = "no-store";
        return TypedResults.Text(json, "application/json", Encoding.UTF8);
    }
}

/// <summary>The appliance's own listening URLs with host <c>localhost</c>, for a relying party <c>localhost</c>.</summary>
public sealed class ServerLocalOrigins(IServer server) : ILocalOrigins
{
    public IReadOnlyCollection<string> Origins =>
        (server.Features.Get<IServerAddressesFeature>()?.Addresses ?? [])
            .Select(a => Uri.TryCreate(a.Replace("*", "localhost", StringComparison.Ordinal).Replace("+", "localhost", StringComparison.Ordinal), UriKind.Absolute, out var u) ? u : null)
            .OfType<Uri>()
            .Select(u => $"{u.Scheme}://localhost:{u.Port}")
            .Distinct(StringComparer.Ordinal)
            .ToList();
}
