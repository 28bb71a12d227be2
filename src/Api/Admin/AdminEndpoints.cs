using System.Text.Json;
using System.Text.Json.Nodes;
using DevRift.Hsm.Api.Audit;
using DevRift.Hsm.Api.Auth;
using DevRift.Hsm.Api.V1;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Outbox;
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

public sealed record ApiKeyResponse(string Object, string Id, string ApplicationId, string Mode, string Hint, DateTime CreatedAt, DateTime? RevokedAt, string? Secret,
    string? Label = null, DateTime? ExpiresAt = null, string? RolledTo = null, DateTime? LastUsedAt = null, long UseCount = 0)
{
    public static ApiKeyResponse From(ApiKeyInfo k, string? secret = null)
    {
        ArgumentNullException.ThrowIfNull(k);
        return new("api_key", k.Id, k.ApplicationId, k.Mode, k.Hint, k.CreatedAt.UtcDateTime, k.RevokedAt?.UtcDateTime, secret,
            k.Label, k.ExpiresAt?.UtcDateTime, k.RolledTo, k.LastUsedAt?.UtcDateTime, k.UseCount);
    }
}

/// <summary>A rolled key: the new key (its secret in this answer only) and the old one, valid until its <c>expires_at</c>.</summary>
public sealed record ApiKeyRollResponse(string Object, ApiKeyResponse Key, ApiKeyResponse Previous)
{
    public static ApiKeyRollResponse From(RolledApiKey r)
    {
        ArgumentNullException.ThrowIfNull(r);
        return new("api_key_roll", ApiKeyResponse.From(r.Created.Key, r.Created.Secret), ApiKeyResponse.From(r.Previous));
    }
}

/// <summary>What a purge of an application's test outbox deleted.</summary>
public sealed record TestMessagesPurgeResponse(string Object, string ApplicationId, long Deleted);

/// <summary>Operator API under <c>/admin/v1</c>: applications, settings and API keys. JSON bodies only.</summary>
public static class AdminEndpoints
{
    /// <summary>The overlap of a roll that names none.</summary>
    public static readonly TimeSpan DefaultOverlap = TimeSpan.FromHours(1);

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
        admin.MapPatch("/applications/{id}", async (string id, HttpContext http, ApplicationStore apps) =>
        {
            var body = await ReadObjectAsync(http);
            OnlyFields(body, "name", "plan");
            var before = await apps.GetAsync(id, http.RequestAborted);
            var app = before;
            if (String(body, "name") is { } name)
            {
                app = await apps.RenameAsync(id, name, http.RequestAborted);
            }

            if (String(body, "plan") is { } plan)
            {
                app = await apps.UpdateAsync(id, plan.Trim().ToLowerInvariant(), [], http.RequestAborted);
            }

            OperatorChanges.Describe(http, OperatorChanges.Application(before, app));
            return TypedResults.Ok(ApplicationResponse.From(app));
        }).WithSummary("Rename an application or change its plan ({\"name\"}, {\"plan\": standard|enterprise})");
        admin.MapGet("/applications/{id}/settings", async (string id, ApplicationStore apps, CancellationToken ct) =>
            Results.Json(SettingsJson(await apps.GetAsync(id, ct))))
            .WithSummary("Read an application's settings");
        admin.MapPatch("/applications/{id}/settings", async (string id, HttpContext http, ApplicationStore apps) =>
        {
            var body = await ReadObjectAsync(http);
            string? plan = null;
            if (body.Remove("plan", out var planNode))
            {
                plan = planNode?.GetValueKind() == JsonValueKind.String ? planNode.GetValue<string>() : "";
            }

            var before = SettingsJson(await apps.GetAsync(id, http.RequestAborted));
            var after = SettingsJson(await apps.UpdateAsync(id, plan, body, http.RequestAborted));
            OperatorChanges.Describe(http, OperatorChanges.Settings(before, after));
            return Results.Json(after);
        }).WithSummary("Change some settings; each is validated against its range (DUAL needs the enterprise plan)");
        admin.MapGet("/applications/{id}/api-keys", async (string id, ApiKeys keys, ApplicationStore apps, CancellationToken ct) =>
        {
            await apps.GetAsync(id, ct);
            return TypedResults.Ok(ListResponse.Of((await keys.ListAsync(id, ct)).Select(k => ApiKeyResponse.From(k)).ToList()));
        }).WithSummary("List an application's API keys (never their secrets)");
        admin.MapPost("/applications/{id}/api-keys", async (string id, HttpContext http, ApiKeys keys) =>
        {
            var body = await ReadObjectAsync(http);
            OnlyFields(body, "mode", "label");
            var created = await keys.CreateAsync(id, String(body, "mode"), String(body, "label"), http.RequestAborted);
            http.Response.Headers.CacheControl = "no-store";
            var response = ApiKeyResponse.From(created.Key, created.Secret);
            OperatorChanges.Describe(http, OperatorChanges.Key(response), response.Mode);
            return TypedResults.Created($"/admin/v1/applications/{id}/api-keys/{created.Key.Id}", response);
        }).WithSummary("Create an API key ({\"mode\": test|live, \"label\"}); the secret is in this response only");
        admin.MapPatch("/applications/{id}/api-keys/{keyId}", async (string id, string keyId, HttpContext http, ApiKeys keys) =>
        {
            var body = await ReadObjectAsync(http);
            OnlyFields(body, "label");
            var before = await keys.FindAsync(id, keyId, http.RequestAborted);
            var response = ApiKeyResponse.From(await keys.LabelAsync(id, keyId, String(body, "label"), http.RequestAborted));
            OperatorChanges.Describe(http, OperatorChanges.Label(before, response), response.Mode);
            return TypedResults.Ok(response);
        }).WithSummary("Set or clear an API key's label ({\"label\"})");
        admin.MapPost("/applications/{id}/api-keys/{keyId}/roll", async (string id, string keyId, HttpContext http, ApiKeys keys) =>
        {
            var body = await ReadObjectAsync(http);
            OnlyFields(body, "overlap_seconds");
            var overlap = body["overlap_seconds"] is null ? DefaultOverlap
                : Overlap(body["overlap_seconds"] is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<long>(out var seconds) ? seconds : -1);
            var rolled = ApiKeyRollResponse.From(await keys.RollAsync(id, keyId, overlap, http.RequestAborted));
            http.Response.Headers.CacheControl = "no-store";
            OperatorChanges.Describe(http, OperatorChanges.Rolled(rolled), rolled.Key.Mode);
            return TypedResults.Created($"/admin/v1/applications/{id}/api-keys/{rolled.Key.Id}", rolled);
        }).WithSummary("Roll an API key ({\"overlap_seconds\": default 3600}): a new secret now, in this response only; the old key works until the overlap ends");
        admin.MapDelete("/applications/{id}/api-keys/{keyId}", async (string id, string keyId, HttpContext http, ApiKeys keys) =>
        {
            var response = ApiKeyResponse.From(await keys.RevokeAsync(id, keyId, http.RequestAborted));
            OperatorChanges.Describe(http, OperatorChanges.Key(response), response.Mode);
            return TypedResults.Ok(response);
        }).WithSummary("Revoke an API key; it fails from its next request");
        admin.MapDelete("/applications/{id}/test-messages", async (string id, HttpContext http, TestOutbox outbox) =>
        {
            var deleted = await outbox.PurgeAsync(id, http.RequestAborted);
            OperatorChanges.Describe(http, new JsonObject { ["deleted"] = deleted });
            return TypedResults.Ok(new TestMessagesPurgeResponse("test_messages_purge", id, deleted));
        }).WithSummary("Delete every test-mode message of an application (they hold the seal key they were sealed with)");
        admin.MapOperatorTokens();
        admin.MapClientCertificates();
        admin.MapEventEndpoints();
        admin.MapAudit();
        admin.MapHsm();
        admin.MapFraudGuard();
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

    /// <summary>A roll's overlap from its seconds (the API's number, the command line's or the dashboard's text); out of range is a 400 naming <c>overlap_seconds</c>.</summary>
    public static TimeSpan Overlap(long seconds) =>
        seconds >= 0 && seconds <= (long)ApiKeys.MaxOverlap.TotalSeconds
            ? TimeSpan.FromSeconds(seconds)
            : throw new MfaException(ErrorCode.InvalidRequest, $"overlap_seconds must be a whole number from 0 to {(long)ApiKeys.MaxOverlap.TotalSeconds}", "overlap_seconds");

    public static TimeSpan Overlap(string? seconds) =>
        Overlap(long.TryParse(seconds?.Trim(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var s) ? s : -1);

    /// <summary>A field the endpoint does not take is a 400 naming it, rather than silently ignored.</summary>
    internal static void OnlyFields(JsonObject body, params string[] names)
    {
        foreach (var (name, _) in body)
        {
            if (!names.Contains(name, StringComparer.Ordinal))
            {
                throw new MfaException(ErrorCode.InvalidRequest, $"'{name}' is not a field of this request; expected {string.Join(", ", names)}", name);
            }
        }
    }

    internal static string? String(JsonObject body, string name) =>
        body[name] switch
        {
            null => null,
            JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
            _ => throw new MfaException(ErrorCode.InvalidRequest, $"'{name}' must be a string", name),
        };
}
