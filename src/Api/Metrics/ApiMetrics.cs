using System.Diagnostics.Metrics;
using DevRift.Hsm.Api.Problems;
using DevRift.Hsm.Api.V1;
using DevRift.Hsm.Appliance.Verify;
using Microsoft.AspNetCore.Routing;

namespace DevRift.Hsm.Api.Metrics;

/// <summary>
/// The HTTP layer's instruments. Tag values come from closed sets only (route templates, standard methods, status
/// numbers, verification types and problem codes), so a client cannot grow the series without bound, and no tag
/// carries a user, key or code.
/// </summary>
public sealed class ApiMetrics
{
    public const string MeterName = "DevRift.Hsm.Api";
    public const string HttpRequests = "devrift.http.requests";
    public const string Verifications = "devrift.verifications";

    /// <summary>The route label of requests that matched no endpoint.</summary>
    public const string Unmatched = "unmatched";

    private static readonly HashSet<string> s_methods = new(StringComparer.Ordinal)
    {
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
    };

    private readonly Counter<long> _requests;
    private readonly Counter<long> _verifications;

    public ApiMetrics(IMeterFactory meters)
    {
        ArgumentNullException.ThrowIfNull(meters);
        var meter = meters.Create(MeterName);
        _requests = meter.CreateCounter<long>(HttpRequests, description: "HTTP requests by route template, method and status.");
        _verifications = meter.CreateCounter<long>(Verifications, description: "Verifications by type and outcome (valid, or the problem code).");
    }

    public void Request(Endpoint? endpoint, string method, int status) => _requests.Add(1,
        new KeyValuePair<string, object?>("route", (endpoint as RouteEndpoint)?.RoutePattern.RawText ?? Unmatched),
        new KeyValuePair<string, object?>("method", s_methods.Contains(method) ? method : "OTHER"),
        new KeyValuePair<string, object?>("status", StatusText(status)));

    /// <param name="type">The type as the handler read it (any case, or null before it was read).</param>
    /// <param name="outcome"><c>valid</c> or a problem code.</param>
    public void Verification(string? type, string outcome)
    {
        var upper = type?.ToUpperInvariant();
        var label = upper is null ? "unknown" : VerifyMethods.KnownName(upper) ?? "invalid";
        _verifications.Add(1, new KeyValuePair<string, object?>("type", label), new KeyValuePair<string, object?>("outcome", outcome));
    }

    private static string StatusText(int status) =>
        status is >= 100 and <= 599 ? s_statusTexts[status - 100] : "other";

    private static readonly string[] s_statusTexts =
        Enumerable.Range(100, 500).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
}

/// <summary>Counts every request once it has its final status (outermost, so problem responses are included).</summary>
public sealed class HttpMetricsMiddleware(RequestDelegate next, ApiMetrics metrics)
{
    public async Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);

        // Routing has already run (the host puts it first); the exception handler clears the endpoint later, so take it now.
        var endpoint = context.GetEndpoint();
        var completed = false;
        try
        {
            await next(context);
            completed = true;
        }
        finally
        {
            metrics.Request(endpoint ?? context.GetEndpoint(), context.Request.Method,
                completed || context.Response.HasStarted ? context.Response.StatusCode : StatusCodes.Status500InternalServerError);
        }
    }
}

/// <summary>
/// Counts each <c>POST /v1/mfa/verify</c> by type and outcome: <c>valid</c>, or the problem code the request is
/// answered with (<c>invalid_code</c>, <c>too_many_attempts</c>, <c>hsm_unavailable</c>, …).
/// </summary>
public sealed class VerificationMetricsFilter(ApiMetrics metrics) : IEndpointFilter
{
    private const string TypeKey = "devrift.verify.type";

    /// <summary>Called by the handler once it has read <c>Type</c>.</summary>
    public static void SetType(HttpContext http, string type)
    {
        ArgumentNullException.ThrowIfNull(http);
        http.Items[TypeKey] = type;
    }

    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        try
        {
            var result = await next(context);
            metrics.Verification(context.HttpContext.Items[TypeKey] as string, "valid");
            return result;
        }
        catch (Exception e)
        {
            var code = e is OperationCanceledException && context.HttpContext.RequestAborted.IsCancellationRequested
                ? "canceled"
                : ProblemResponses.Translate(e)?.Error.Code ?? Appliance.Errors.ErrorCode.InternalError.Code;
            metrics.Verification(context.HttpContext.Items[TypeKey] as string, code);
            throw;
        }
    }
}
