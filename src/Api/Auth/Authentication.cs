using DevRift.Hsm.Api.Problems;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Errors;

namespace DevRift.Hsm.Api.Auth;

/// <summary>Bearer authentication for the two route groups: API keys on <c>/v1</c>, operator tokens on <c>/admin/v1</c>.</summary>
public static class Authentication
{
    private const string CallerKey = "devrift.caller";
    private const string OperatorKey = "devrift.operator";

    /// <summary>Every endpoint of the group needs a valid, unrevoked <c>sk_test_…</c>/<c>sk_live_…</c> key.</summary>
    public static RouteGroupBuilder RequireApiKey(this RouteGroupBuilder group)
    {
        group.AddEndpointFilter(async (context, next) =>
        {
            var http = context.HttpContext;
            var keys = http.RequestServices.GetRequiredService<ApiKeys>();
            var caller = await keys.AuthenticateAsync(BearerToken(http.Request), http.RequestAborted);
            if (caller is null)
            {
                await Audit.ApiAudit.KeyFailureAsync(http, BearerToken(http.Request));
                return await RefuseAsync(http, "Bearer realm=\"devrift\"",
                    new MfaException(ErrorCode.InvalidApiKey, "send a valid API key as 'Authorization: Bearer sk_test_…' or 'sk_live_…'"));
            }

            http.Items[CallerKey] = caller;
            http.RequestServices.GetRequiredService<ApiKeyUsage>().Record(caller.KeyId);
            if (!await Tls.ClientCertificateChecks.AdmitAsync(http, caller))
            {
                return Results.Empty;
            }

            return await next(context);
        });
        return group;
    }

    /// <summary>Every endpoint of the group needs a valid operator token <c>adm_…</c>.</summary>
    public static RouteGroupBuilder RequireOperator(this RouteGroupBuilder group)
    {
        group.AddEndpointFilter(async (context, next) =>
        {
            var http = context.HttpContext;
            var operators = http.RequestServices.GetRequiredService<OperatorTokens>();
            var id = await Tls.ClientCertificateChecks.OperatorAsync(http) ?? await operators.AuthenticateAsync(BearerToken(http.Request), http.RequestAborted);
            if (id is null)
            {
                await Audit.ApiAudit.OperatorFailureAsync(http, BearerToken(http.Request));
                return await RefuseAsync(http, "Bearer realm=\"devrift-admin\"",
                    new MfaException(ErrorCode.InvalidApiKey, "send a valid operator token as 'Authorization: Bearer adm_…'"));
            }

            http.Items[OperatorKey] = id;
            return await next(context);
        });
        return group;
    }

    /// <summary>
    /// Writes the 401 here rather than throwing: the exception handler clears response headers, and a 401 must carry
    /// its <c>WWW-Authenticate</c> challenge (RFC 9110 §15.5.2).
    /// </summary>
    private static async Task<object?> RefuseAsync(HttpContext http, string challenge, MfaException problem)
    {
        http.Response.Headers.WWWAuthenticate = challenge;
        await ProblemResponses.WriteAsync(http, problem);
        return Results.Empty;
    }

    public static ApiCaller Caller(this HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.Items[CallerKey] as ApiCaller ?? throw new InvalidOperationException("endpoint is not behind RequireApiKey");
    }

    /// <summary>
    /// The caller with the end user's <c>client_ip</c> the endpoint read from the body, kept for the rest of the request
    /// (so that the audit record of a refused request carries it too). A malformed address is a 400 naming it.
    /// </summary>
    public static ApiCaller CallerWithClientIp(this HttpContext context, string? clientIp)
    {
        var caller = context.Caller();
        if (clientIp is null)
        {
            return caller;
        }

        caller = caller with { ClientIp = ClientIp.Parse(clientIp) };
        context.Items[CallerKey] = caller;
        return caller;
    }

    public static string OperatorId(this HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return context.Items[OperatorKey] as string ?? throw new InvalidOperationException("endpoint is not behind RequireOperator");
    }

    private static string? BearerToken(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        const string prefix = "Bearer ";
        if (!header.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        // The documentation writes keys as {sk_test_…}; accept the braces a copy-paste brings along.
        var token = header[prefix.Length..].Trim();
        return token.Length > 2 && token[0] == '{' && token[^1] == '}' ? token[1..^1] : token;
    }
}
