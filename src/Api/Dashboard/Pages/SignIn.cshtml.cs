using System.Security.Claims;
using System.Text.Json.Nodes;
using DevRift.Hsm.Api.Audit;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Audit;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Mvc;

namespace DevRift.Hsm.Api.Dashboard.Pages;

/// <summary>Sign in with an operator token (POSTed, never in a URL) or the operator certificate of this connection; sign out.</summary>
public sealed class SignInModel(OperatorTokens tokens, AuditLog audit) : DashboardPage
{
    /// <summary>The operator id of this connection's operator certificate, when it presents one.</summary>
    public string? CertificateOperator { get; private set; }

    public async Task<IActionResult> OnGetAsync()
    {
        if (!string.IsNullOrEmpty(OperatorId))
        {
            return Redirect("/dashboard");
        }

        CertificateOperator = await Tls.ClientCertificateChecks.OperatorAsync(HttpContext);
        return Page();
    }

    public async Task<IActionResult> OnPostAsync([FromForm] string? token)
    {
        var id = await tokens.AuthenticateAsync(token?.Trim(), HttpContext.RequestAborted);
        if (id is null)
        {
            await ApiAudit.OperatorFailureAsync(HttpContext, token?.Trim());
            ModelState.AddModelError("token", "This is not a valid operator token (wrong, revoked or mistyped).");
            CertificateOperator = await Tls.ClientCertificateChecks.OperatorAsync(HttpContext);
            HttpContext.Response.StatusCode = StatusCodes.Status401Unauthorized;
            return Page();
        }

        return await SignInAsync(id, "token");
    }

    public async Task<IActionResult> OnPostCertificateAsync()
    {
        var id = await Tls.ClientCertificateChecks.OperatorAsync(HttpContext);
        if (id is null)
        {
            Error = "This connection presents no operator certificate.";
            HttpContext.Response.StatusCode = StatusCodes.Status401Unauthorized;
            return Page();
        }

        return await SignInAsync(id, "certificate");
    }

    public async Task<IActionResult> OnPostSignOutAsync()
    {
        if (!string.IsNullOrEmpty(OperatorId))
        {
            await audit.AppendAsync(new AuditEntry(AuditEvents.DashboardSignOut, AuditEntry.Operator, null, null, null, "ok",
                new JsonObject { ["via"] = "dashboard", ["operator_id"] = OperatorId }), HttpContext.RequestAborted);
        }

        await HttpContext.SignOutAsync(DashboardSetup.Scheme);
        return Redirect("/dashboard/sign-in");
    }

    private async Task<IActionResult> SignInAsync(string id, string kind)
    {
        var identity = new ClaimsIdentity([new Claim(DashboardFilter.OperatorClaim, id), new Claim(DashboardFilter.KindClaim, kind)], DashboardSetup.Scheme);
        await HttpContext.SignInAsync(DashboardSetup.Scheme, new ClaimsPrincipal(identity));
        await audit.AppendAsync(new AuditEntry(AuditEvents.DashboardSignIn, AuditEntry.Operator, null, null, null, "ok",
            new JsonObject { ["via"] = "dashboard", ["operator_id"] = id, ["with"] = kind }), HttpContext.RequestAborted);
        return Redirect("/dashboard");
    }
}
