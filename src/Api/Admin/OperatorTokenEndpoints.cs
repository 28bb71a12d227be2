using DevRift.Hsm.Api.Audit;
using DevRift.Hsm.Api.V1;
using DevRift.Hsm.Appliance.Applications;

namespace DevRift.Hsm.Api.Admin;

public sealed record OperatorTokenResponse(string Object, string Id, string Label, DateTime CreatedAt, DateTime? LastUsedAt, DateTime? RevokedAt, string? Secret)
{
    public static OperatorTokenResponse From(OperatorTokenInfo t, string? secret = null)
    {
        ArgumentNullException.ThrowIfNull(t);
        return new("operator_token", t.Id, t.Label, t.CreatedAt.UtcDateTime, t.LastUsedAt?.UtcDateTime, t.RevokedAt?.UtcDateTime, secret);
    }
}

/// <summary>
/// <c>/admin/v1/operator-tokens</c>: create (the secret in that answer only), list (id, label, created, last used)
/// and revoke (refused from the next request, on every node).
/// </summary>
public static class OperatorTokenEndpoints
{
    public static RouteGroupBuilder MapOperatorTokens(this RouteGroupBuilder admin)
    {
        ArgumentNullException.ThrowIfNull(admin);
        admin.MapGet("/operator-tokens", async (OperatorTokens tokens, CancellationToken ct) =>
            TypedResults.Ok(ListResponse.Of((await tokens.ListAsync(ct)).Select(t => OperatorTokenResponse.From(t)).ToList())))
            .WithSummary("List operator tokens (never their secrets): id, label, created, last used, revoked");
        admin.MapPost("/operator-tokens", async (HttpContext http, OperatorTokens tokens) =>
        {
            var body = await AdminEndpoints.ReadObjectAsync(http);
            AdminEndpoints.OnlyFields(body, "label");
            var created = await tokens.CreateTokenAsync(AdminEndpoints.String(body, "label"), http.RequestAborted);
            http.Response.Headers.CacheControl = "no-store";
            var response = OperatorTokenResponse.From(created.Token, created.Secret);
            OperatorChanges.Describe(http, OperatorChanges.Token(response));
            return TypedResults.Created($"/admin/v1/operator-tokens/{response.Id}", response);
        }).WithSummary("Create an operator token ({\"label\"}); the secret is in this response only");
        admin.MapDelete("/operator-tokens/{tokenId}", async (string tokenId, HttpContext http, OperatorTokens tokens) =>
        {
            var response = OperatorTokenResponse.From(await tokens.RevokeAsync(tokenId, http.RequestAborted));
            OperatorChanges.Describe(http, OperatorChanges.Token(response));
            return TypedResults.Ok(response);
        }).WithSummary("Revoke an operator token; it is refused from its next request");
        return admin;
    }
}
