using DevRift.Hsm.Api.Admin;
using DevRift.Hsm.Api.Audit;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Audit;
using Microsoft.AspNetCore.Mvc;

namespace DevRift.Hsm.Api.Dashboard.Pages;

/// <summary>Operator tokens: list (id, label, created, last used), create (the secret shown once), revoke (refused at once).</summary>
public sealed class OperatorsModel(OperatorTokens tokens) : DashboardPage
{
    public IReadOnlyList<OperatorTokenInfo> Tokens { get; private set; } = [];

    public string? NewSecret { get; private set; }

    public string? NewTokenId { get; private set; }

    public async Task OnGetAsync() => Tokens = await tokens.ListAsync(HttpContext.RequestAborted);

    public async Task OnPostCreateAsync([FromForm] string? label)
    {
        await ChangeAsync(AuditEvents.OperatorTokenCreate, null, async () =>
        {
            var created = await tokens.CreateTokenAsync(label, HttpContext.RequestAborted);
            (NewTokenId, NewSecret) = (created.Token.Id, created.Secret);
            return new Change(OperatorChanges.Token(OperatorTokenResponse.From(created.Token)));
        }, "label");
        await OnGetAsync();
    }

    public async Task<IActionResult> OnPostRevokeAsync([FromForm] string? tokenId)
    {
        await ChangeAsync(AuditEvents.OperatorTokenRevoke, null, async () =>
        {
            var revoked = OperatorTokenResponse.From(await tokens.RevokeAsync(tokenId ?? "", HttpContext.RequestAborted));
            Message = $"{revoked.Id} revoked: it is refused from its next request.";
            return new Change(OperatorChanges.Token(revoked));
        });
        if (tokenId == OperatorId && !await tokens.IsActiveAsync(OperatorId, HttpContext.RequestAborted))
        {
            return Redirect("/dashboard/sign-in"); // this session's own token: the next request is refused
        }

        await OnGetAsync();
        return Page();
    }
}
