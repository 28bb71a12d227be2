using System.Text.Json.Nodes;
using DevRift.Hsm.Api.Admin;
using DevRift.Hsm.Api.Auth;
using DevRift.Hsm.Api.V1;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Audit;
using DevRift.Hsm.Appliance.Challenges;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Users;
using DevRift.Hsm.Appliance.Verify;
using Microsoft.AspNetCore.Http.HttpResults;

namespace DevRift.Hsm.Api.Audit;

/// <summary>
/// Audit records for the two route groups, written where the outcome is known: one record for every authenticated
/// <c>/v1</c> request (its event named by the route, the outcome "valid"/"ok" or the problem code), one for every
/// <c>/admin/v1</c> call that changes something, and one for each refused key or token. The record is appended before
/// the response is written; if the append fails the request fails with 503 instead of being acknowledged unaudited.
/// Only user, type and ids are taken from requests and results: never a code, secret or credential.
/// </summary>
public static class ApiAudit
{
    private const string SuccessRecordedKey = "devrift.audit.success_recorded";

    // Only a known type is recorded: the field is free text from the caller.
    private static readonly HashSet<string> s_types = new([.. Channels.SendTypes, .. VerifyMethods.Names], StringComparer.Ordinal);

    /// <summary>Records every call of the group; put it after <c>RequireApiKey</c> so the caller is known.</summary>
    public static RouteGroupBuilder AuditApiCalls(this RouteGroupBuilder group)
    {
        group.AddEndpointFilter(async (context, next) =>
        {
            var http = context.HttpContext;
            var (evt, route) = V1Event(http);
            if (evt == AuditEvents.ApiKeyUsed)
            {
                // A read changes nothing: its use is counted (ApiKeyUsage), not chained into the log per request.
                return await next(context);
            }

            var needsBody = evt is AuditEvents.ChallengeSend or AuditEvents.Verification or AuditEvents.AppFactorEnrol or AuditEvents.BackupCodesGenerate
                or AuditEvents.SecurityKeyRegistrationOptions or AuditEvents.SecurityKeyRegister or AuditEvents.SecurityKeyAssertionOptions;
            if (needsBody)
            {
                http.Request.EnableBuffering();
            }

            object? result;
            try
            {
                result = await next(context);
            }
            catch (MfaException e)
            {
                await AppendV1Async(http, evt, route, needsBody, e.Error.Code, null);
                throw;
            }

            var status = (result as IStatusCodeHttpResult)?.StatusCode ?? StatusCodes.Status200OK;
            if (status < 400 && http.Items.ContainsKey(SuccessRecordedKey))
            {
                return result; // committed with the change it describes
            }

            var outcome = status >= 400 ? $"http_{status}" : evt == AuditEvents.Verification ? "valid" : "ok";
            await AppendV1Async(http, evt, route, needsBody, outcome, result);
            return result;
        });
        return group;
    }

    /// <summary>
    /// The request's success is audited by the operation itself, in the transaction that makes its change (a send,
    /// a verification); the filter leaves a success alone. A refusal, which changed nothing, is still recorded here.
    /// </summary>
    public static void SuccessIsAuditedWithTheChange(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        http.Items[SuccessRecordedKey] = true;
    }

    /// <summary>Records every call of the operator group except reads; put it after <c>RequireOperator</c>.</summary>
    public static RouteGroupBuilder AuditOperatorActions(this RouteGroupBuilder group)
    {
        group.AddEndpointFilter(async (context, next) =>
        {
            var http = context.HttpContext;
            if (HttpMethods.IsGet(http.Request.Method) || HttpMethods.IsHead(http.Request.Method) || HttpMethods.IsOptions(http.Request.Method))
            {
                return await next(context);
            }

            http.Request.EnableBuffering();
            object? result;
            try
            {
                result = await next(context);
            }
            catch (MfaException e)
            {
                await AppendAdminAsync(http, e.Error.Code, null);
                throw;
            }

            var status = (result as IStatusCodeHttpResult)?.StatusCode ?? StatusCodes.Status200OK;
            await AppendAdminAsync(http, status >= 400 ? $"http_{status}" : "ok", result);
            return result;
        });
        return group;
    }

    /// <summary>A refused API key: its public id when the value has a key's shape, never the secret.</summary>
    public static Task KeyFailureAsync(HttpContext http, string? presented) => CredentialFailureAsync(http, AuditEntry.ApiKeyFailed(presented));

    /// <summary>A refused operator token: its public id when parseable, never the secret.</summary>
    public static Task OperatorFailureAsync(HttpContext http, string? presented) => CredentialFailureAsync(http, AuditEntry.OperatorFailed(presented));

    private static async Task CredentialFailureAsync(HttpContext http, AuditEntry entry)
    {
        ArgumentNullException.ThrowIfNull(http);
        if (!http.RequestServices.GetRequiredService<RefusalAuditBudget>().TryTake(out var suppressed))
        {
            return;
        }

        entry.Detail!["method"] = http.Request.Method;
        entry.Detail["route"] = http.Request.Path.Value;
        if (suppressed > 0)
        {
            entry.Detail["suppressed"] = suppressed;
        }

        await http.RequestServices.GetRequiredService<AuditLog>().AppendAsync(entry, http.RequestAborted);
    }

    private static (string Event, string Route) V1Event(HttpContext http)
    {
        var route = (http.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? http.Request.Path.Value ?? "";
        var method = http.Request.Method;
        var evt = (method, route) switch
        {
            ("POST", "/v1/mfa") => AuditEvents.ChallengeSend,
            ("POST", "/v1/mfa/verify") => AuditEvents.Verification,
            ("POST", "/v1/mfa/app") => AuditEvents.AppFactorEnrol,
            ("DELETE", "/v1/mfa/app") => AuditEvents.AppFactorRemove,
            ("POST", "/v1/mfa/backup") => AuditEvents.BackupCodesGenerate,
            ("POST", "/v1/mfa/keys/registration/options") => AuditEvents.SecurityKeyRegistrationOptions,
            ("POST", "/v1/mfa/keys/registration") => AuditEvents.SecurityKeyRegister,
            ("POST", "/v1/mfa/keys/assertion/options") => AuditEvents.SecurityKeyAssertionOptions,
            ("DELETE", "/v1/mfa/keys/{id}") => AuditEvents.SecurityKeyRemove,
            _ => AuditEvents.ApiKeyUsed,
        };
        return (evt, route);
    }

    private static async Task AppendV1Async(HttpContext http, string evt, string route, bool fromBody, string outcome, object? result)
    {
        var caller = http.Caller();
        string? user;
        string? type = null;
        if (fromBody)
        {
            (user, type) = await UserAndTypeAsync(http);
        }
        else
        {
            user = http.Request.Query["user"].ToString() is { Length: > 0 } u ? FactorEndpoints.Required(u) : null;
        }

        var detail = new JsonObject();
        if (type is not null)
        {
            detail["type"] = type;
        }

        switch (result)
        {
            case Accepted<ChallengeResponse> { Value: { } c }:
                detail["challenge_id"] = c.Id;
                detail["channels"] = new JsonArray([.. c.Channels.Select(ch => (JsonNode)JsonValue.Create(ch.Channel))]);
                break;
            case Ok<AppEnrollmentResponse> { Value: { } e }:
                detail["enrollment_id"] = e.Id;
                break;
            case Accepted<BackupSetResponse> { Value: { } b }:
                detail["backup_set_id"] = b.Id;
                detail["count"] = b.Count;
                break;
            case Created<SecurityKeyResponse> { Value: { } k }:
                detail["security_key_id"] = k.Id;
                break;
            default:
                break;
        }

        if (evt == AuditEvents.SecurityKeyRemove)
        {
            detail["security_key_id"] = http.Request.RouteValues["id"]?.ToString();
        }

        if (evt == AuditEvents.ApiKeyUsed)
        {
            detail["method"] = http.Request.Method;
            detail["route"] = route;
        }

        await http.RequestServices.GetRequiredService<AuditLog>().AppendAsync(
            AuditEntry.ByCaller(caller, evt, Subject(user), outcome, detail), http.RequestAborted);
    }

    /// <summary>The audit event of each operator route that changes something.</summary>
    private static readonly Dictionary<(string Method, string Route), string> s_adminEvents = new()
    {
        [("POST", "/admin/v1/applications")] = AuditEvents.ApplicationCreate,
        [("PATCH", "/admin/v1/applications/{id}")] = AuditEvents.ApplicationUpdate,
        [("PATCH", "/admin/v1/applications/{id}/settings")] = AuditEvents.SettingsUpdate,
        [("POST", "/admin/v1/applications/{id}/api-keys")] = AuditEvents.ApiKeyCreate,
        [("PATCH", "/admin/v1/applications/{id}/api-keys/{keyId}")] = AuditEvents.ApiKeyLabel,
        [("POST", "/admin/v1/applications/{id}/api-keys/{keyId}/roll")] = AuditEvents.ApiKeyRoll,
        [("DELETE", "/admin/v1/applications/{id}/api-keys/{keyId}")] = AuditEvents.ApiKeyRevoke,
        [("DELETE", "/admin/v1/applications/{id}/test-messages")] = AuditEvents.TestMessagesPurge,
        [("POST", "/admin/v1/applications/{id}/client-certificates")] = AuditEvents.ClientCertificateAdd,
        [("DELETE", "/admin/v1/applications/{id}/client-certificates/{certificateId}")] = AuditEvents.ClientCertificateRemove,
        [("POST", "/admin/v1/hsm/rotate")] = AuditEvents.HsmKeyRotate,
        [("POST", "/admin/v1/hsm/retire")] = AuditEvents.HsmKeyRetire,
        [("POST", "/admin/v1/operator-tokens")] = AuditEvents.OperatorTokenCreate,
        [("DELETE", "/admin/v1/operator-tokens/{tokenId}")] = AuditEvents.OperatorTokenRevoke,
    };

    private static async Task AppendAdminAsync(HttpContext http, string outcome, object? result)
    {
        var route = (http.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? http.Request.Path.Value ?? "";
        var method = http.Request.Method;
        var applicationId = http.Request.RouteValues["id"]?.ToString();
        if (route.StartsWith("/admin/v1/operator-tokens", StringComparison.Ordinal) || route.StartsWith("/admin/v1/hsm", StringComparison.Ordinal))
        {
            applicationId = null;
        }

        var (described, mode) = OperatorChanges.Described(http);
        var detail = new JsonObject { ["via"] = "api", ["operator_id"] = http.OperatorId() };
        if (result is Created<ApplicationResponse> { Value: { } a })
        {
            applicationId = a.Id;
            described = OperatorChanges.Created(a);
        }

        if (!s_adminEvents.TryGetValue((method, route), out var evt))
        {
            evt = AuditEvents.OperatorAction;
            detail["method"] = method;
            detail["route"] = route;
        }

        // What was asked, by name only: the route's ids and the body's field names (never their values).
        foreach (var (name, value) in http.Request.RouteValues)
        {
            if (name != "id")
            {
                detail[RouteValueName(name)] = value?.ToString();
            }
        }

        detail["fields"] = new JsonArray([.. (await JsonFieldNamesAsync(http)).Select(n => (JsonNode)JsonValue.Create(n))]);

        // What changed, as the endpoint described it once it succeeded.
        foreach (var (name, value) in described ?? [])
        {
            detail[name] = value?.DeepClone();
        }

        await http.RequestServices.GetRequiredService<AuditLog>().AppendAsync(
            new AuditEntry(evt, AuditEntry.Operator, applicationId, mode, null, outcome, detail), http.RequestAborted);
    }

    private static string RouteValueName(string name) => name switch
    {
        "keyId" => "key_id",
        "certificateId" => "certificate_id",
        "tokenId" => "token_id",
        _ => name,
    };

    /// <summary>The user and type fields of a buffered body, read again after the handler; nothing else.</summary>
    private static async Task<(string? User, string? Type)> UserAndTypeAsync(HttpContext http)
    {
        try
        {
            if (!http.Request.Body.CanSeek)
            {
                return (null, null);
            }

            http.Request.Body.Position = 0;
            var body = await RequestBody.ReadAsync(http.Request, http.RequestAborted);
            var type = body.Type?.Trim().ToUpperInvariant();
            return (body.User, type is not null && s_types.Contains(type) ? type : null);
        }
        catch (Exception e) when (e is MfaException or IOException or BadHttpRequestException or InvalidOperationException)
        {
            return (null, null);
        }
    }

    private static async Task<IReadOnlyList<string>> JsonFieldNamesAsync(HttpContext http)
    {
        try
        {
            if (!http.Request.Body.CanSeek)
            {
                return [];
            }

            http.Request.Body.Position = 0;
            var node = await JsonNode.ParseAsync(http.Request.Body, cancellationToken: http.RequestAborted);
            return node is JsonObject o ? [.. o.Select(p => p.Key).Take(50)] : [];
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or IOException or BadHttpRequestException or InvalidOperationException or ArgumentException)
        {
            return [];
        }
    }

    private static string? Subject(string? user)
    {
        if (user is null)
        {
            return null;
        }

        try
        {
            return MfaUser.Parse(user).Key;
        }
        catch (MfaException)
        {
            return null;
        }
    }
}
