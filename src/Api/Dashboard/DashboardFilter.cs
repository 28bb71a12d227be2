using System.Security.Claims;
using DevRift.Hsm.Appliance.Applications;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Mvc.Filters;

namespace DevRift.Hsm.Api.Dashboard;

/// <summary>
/// Runs before every dashboard page: the security headers, then the session. A page other than sign-in needs a
/// session whose operator is still valid now — a token not revoked, or the same operator certificate presented on
/// this connection — else the browser is sent to sign in (and the stale cookie is dropped).
/// </summary>
public sealed class DashboardFilter : IAsyncPageFilter
{
    public const string OperatorClaim = "devrift:operator";
    public const string KindClaim = "devrift:kind";

    public Task OnPageHandlerSelectionAsync(PageHandlerSelectedContext context) => Task.CompletedTask;

    public async Task OnPageHandlerExecutionAsync(PageHandlerExecutingContext context, PageHandlerExecutionDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        var http = context.HttpContext;
        var headers = http.Response.Headers;
        headers.ContentSecurityPolicy = DashboardSetup.ContentSecurityPolicy;
        headers.XFrameOptions = "DENY";
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        headers["Cross-Origin-Opener-Policy"] = "same-origin";
        headers.CacheControl = "no-cache, no-store"; // as antiforgery wants it: secrets are shown once, never cached
        headers.Pragma = "no-cache";

        var operatorId = await SessionOperatorAsync(http);
        if (operatorId is not null)
        {
            http.Items[OperatorClaim] = operatorId;
        }

        if (operatorId is null && context.HandlerInstance is not Pages.SignInModel)
        {
            context.Result = new Microsoft.AspNetCore.Mvc.RedirectResult("/dashboard/sign-in");
            return;
        }

        await next();
    }

    /// <summary>The operator of a valid session, or null (a session that is no longer valid is signed out).</summary>
    public static async Task<string?> SessionOperatorAsync(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        var result = await http.AuthenticateAsync(DashboardSetup.Scheme);
        if (!result.Succeeded || result.Principal.FindFirstValue(OperatorClaim) is not { } id)
        {
            return null;
        }

        var tokens = http.RequestServices.GetRequiredService<OperatorTokens>();
        var isCertificate = result.Principal.FindFirstValue(KindClaim) == "certificate";
        var valid = isCertificate
            ? await Tls.ClientCertificateChecks.OperatorAsync(http) == id
            : await tokens.IsActiveAsync(id, http.RequestAborted);
        if (valid && !isCertificate)
        {
            await tokens.TouchAsync(id, http.RequestAborted);
        }

        if (!valid)
        {
            await http.SignOutAsync(DashboardSetup.Scheme);
            return null;
        }

        http.User = result.Principal;
        return id;
    }
}
