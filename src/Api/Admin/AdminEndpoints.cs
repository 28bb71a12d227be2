using System.Text.Json;
using System.Text.Json.Nodes;
using DevRift.Hsm.Api.Audit;
using DevRift.Hsm.Api.Auth;
using DevRift.Hsm.Api.V1;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Errors;
using Microsoft.AspNetCore.Http.HttpResults;

namespace DevRift.Hsm.Api.Admin;

public sealed record ApplicationResponse(string Object, string Id, string Name, string Plan, DateTime CreatedAt)
{
    public static ApplicationResponse From(Application a)
    {
        ArgumentNullException.ThrowIfNull(a);
        return new("application", a.Id, a.Name, a.Plan, a.CreatedAt.UtcDateTime);
    }
}

public sealed record ApiKeyResponse(string Object, string Id, string ApplicationId, string Mode, string Hint, DateTime CreatedAt, DateTime? RevokedAt, string? Secret)
{
    public static ApiKeyResponse From(ApiKeyInfo k, string? secret = null)
    {
        ArgumentNullException.ThrowIfNull(k);
        return new("api_key", k.Id, k.ApplicationId, k.Mode, k.Hint, k.CreatedAt.UtcDateTime, k.RevokedAt?.UtcDateTime, secret);
    }
}

/// <summary>Operator API under <c>/admin/v1</c>: applications, settings and API keys. JSON bodies only.</summary>
public static class AdminEndpoints
{
    public static RouteGroupBuilder MapAdmin(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/admin/v1").RequireOperator().AuditOperatorActions().WithTags("Operator");
        admin.MapGet("/applications", async (ApplicationStore apps, CancellationToken ct) =>
            TypedResults.Ok(ListResponse.Of((await apps.ListAsync(ct)).Select(ApplicationResponse.From).ToList())))
            .WithSummary("List applications");
        admin.MapPost("/applications", async (HttpContext http, ApplicationStore apps) =>
        {
            var body = await ReadObjectAsync(http);
            var created = await apps.CreateAsync(String(body, "name"), String(body, "plan"), http.RequestAborted);
            return TypedResults.Created($"/admin/v1/applications/{created.Id}", ApplicationResponse.From(created));
        }).WithSummary("Create an application ({\"name\", \"plan\": standard|enterprise})");
        admin.MapGet("/applications/{id}", async (string id, ApplicationStore apps, CancellationToken ct) =>
            TypedResults.Ok(ApplicationResponse.From(await apps.GetAsync(id, ct))))
            .WithSummary("Read an application");
        admin.MapGet("/applications/{id}/settings", async (string id, ApplicationStore apps, CancellationToken ct) =>
            Results.Json(SettingsJson(await apps.GetAsync(id, ct))))
            .WithSummary("Read an application's settings");
        admin.MapPatch("/applications/{id}/settings", async (string id, HttpContext http, ApplicationStore apps) =>
        {
            var body = await ReadObjectAsync(http);
            if (body.Remove("plan", out var plan))
            {
                await apps.UpdatePlanAsync(id, plan?.GetValueKind() == JsonValueKind.String ? plan.GetValue<string>() : "", http.RequestAborted);
            }

            return Results.Json(SettingsJson(await apps.UpdateSettingsAsync(id, body, http.RequestAborted)));
        }).WithSummary("Change some settings; each is validated against its range");
        admin.MapGet("/applications/{id}/api-keys", async (string id, ApiKeys keys, ApplicationStore apps, CancellationToken ct) =>
        {
            await apps.GetAsync(id, ct);
            return TypedResults.Ok(ListResponse.Of((await keys.ListAsync(id, ct)).Select(k => ApiKeyResponse.From(k)).ToList()));
        }).WithSummary("List an application's API keys (never their secrets)");
        admin.MapPost("/applications/{id}/api-keys", async (string id, HttpContext http, ApiKeys keys) =>
        {
            var body = await ReadObjectAsync(http);
            var created = await keys.CreateAsync(id, String(body, "mode"), http.RequestAborted);
            http.Response.Headers.CacheControl = "no-store";
            return TypedResults.Created($"/admin/v1/applications/{id}/api-keys/{created.Key.Id}", ApiKeyResponse.From(created.Key, created.Secret));
        }).WithSummary("Create an API key ({\"mode\": test|live}); the secret is in this response only");
        admin.MapDelete("/applications/{id}/api-keys/{keyId}", async (string id, string keyId, ApiKeys keys, CancellationToken ct) =>
            TypedResults.Ok(ApiKeyResponse.From(await keys.RevokeAsync(id, keyId, ct))))
            .WithSummary("Revoke an API key; it fails from its next request");
        admin.MapClientCertificates();
        admin.MapAudit();
        admin.MapHsm();
        return admin;
    }

    public static JsonObject SettingsJson(Application app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var node = JsonSerializer.SerializeToNode(app.Settings, ApplicationSettings.Json)!.AsObject();
        var result = new JsonObject { ["object"] = "settings", ["application_id"] = app.Id, ["plan"] = app.Plan };
        foreach (var (k, v) in node)
        {
            result[k] = v?.DeepClone();
        }

        return result;
    }

    internal static async Task<JsonObject> ReadObjectAsync(HttpContext http)
    {
        var mediaType = (http.Request.ContentType ?? "").Split(';')[0].Trim();
        if (http.Request.ContentLength is > 0 or null && mediaType.Length > 0 && !mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase))
        {
            throw new MfaException(ErrorCode.UnsupportedMediaType, "operator endpoints take application/json");
        }

        if (http.Request.ContentLength > RequestBody.MaxBytes)
        {
            throw new MfaException(ErrorCode.PayloadTooLarge, $"the body is larger than {RequestBody.MaxBytes} bytes");
        }

        using var buffer = new MemoryStream();
        await http.Request.Body.CopyToAsync(buffer, http.RequestAborted);
        if (buffer.Length > RequestBody.MaxBytes)
        {
            throw new MfaException(ErrorCode.PayloadTooLarge, $"the body is larger than {RequestBody.MaxBytes} bytes");
        }

        if (buffer.Length == 0)
        {
            return [];
        }

        using var doc = RequestBody.ParseJsonDocument(buffer.ToArray());
        return doc.RootElement.ValueKind == JsonValueKind.Object
            ? JsonObject.Create(doc.RootElement.Clone())!
            : throw new MfaException(ErrorCode.InvalidRequest, "the body must be a JSON object");
    }

    private static string? String(JsonObject body, string name) =>
        body[name] switch
        {
            null => null,
            JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
            _ => throw new MfaException(ErrorCode.InvalidRequest, $"'{name}' must be a string", name),
        };
}
