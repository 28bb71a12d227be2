using DevRift.Hsm.Api.Admin;
using DevRift.Hsm.Api.Audit;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Audit;
using Microsoft.AspNetCore.Mvc;

namespace DevRift.Hsm.Api.Dashboard.Pages;

/// <summary>An application's API keys: create (the secret shown once, with a copy button), label, roll with an overlap, revoke.</summary>
public sealed class KeysModel(ApplicationStore applications, ApiKeys keys, TimeProvider time) : DashboardPage
{
    [FromRoute]
    public string Id { get; set; } = "";

    public Application App { get; private set; } = null!;

    public IReadOnlyList<ApiKeyInfo> Keys { get; private set; } = [];

    public DateTimeOffset Now { get; private set; }

    public string? NewSecret { get; private set; }

    public string? NewKeyId { get; private set; }

    public async Task OnGetAsync()
    {
        App = await applications.GetAsync(Id, HttpContext.RequestAborted);
        Keys = await keys.ListAsync(Id, HttpContext.RequestAborted);
        Now = time.GetUtcNow();
    }

    public async Task OnPostCreateAsync([FromForm] string? mode, [FromForm] string? label)
    {
        await ChangeAsync(AuditEvents.ApiKeyCreate, Id, async () =>
        {
            var created = await keys.CreateAsync(Id, mode, label, HttpContext.RequestAborted);
            (NewKeyId, NewSecret) = (created.Key.Id, created.Secret);
            var response = ApiKeyResponse.From(created.Key);
            return new Change(OperatorChanges.Key(response), response.Mode);
        }, "mode", "label");
        await OnGetAsync();
    }

    public async Task OnPostRollAsync([FromForm] string? keyId, [FromForm] string? overlap)
    {
        await ChangeAsync(AuditEvents.ApiKeyRoll, Id, async () =>
        {
            var rolled = ApiKeyRollResponse.From(await keys.RollAsync(Id, keyId ?? "", AdminEndpoints.Overlap(overlap), HttpContext.RequestAborted));
            (NewKeyId, NewSecret) = (rolled.Key.Id, rolled.Key.Secret);
            Message = $"{rolled.Previous.Id} works until {When(rolled.Previous.ExpiresAt)}, then it is refused.";
            return new Change(OperatorChanges.Rolled(rolled), rolled.Key.Mode);
        }, "overlap_seconds");
        await OnGetAsync();
    }

    public async Task OnPostLabelAsync([FromForm] string? keyId, [FromForm] string? label)
    {
        if (await ChangeAsync(AuditEvents.ApiKeyLabel, Id, async () =>
            {
                var before = await keys.FindAsync(Id, keyId ?? "", HttpContext.RequestAborted);
                var after = ApiKeyResponse.From(await keys.LabelAsync(Id, keyId ?? "", label, HttpContext.RequestAborted));
                return new Change(OperatorChanges.Label(before, after), after.Mode);
            }, "label"))
        {
            Message = "Label saved.";
        }

        await OnGetAsync();
    }

    public async Task OnPostRevokeAsync([FromForm] string? keyId)
    {
        if (await ChangeAsync(AuditEvents.ApiKeyRevoke, Id, async () =>
            {
                var response = ApiKeyResponse.From(await keys.RevokeAsync(Id, keyId ?? "", HttpContext.RequestAborted));
                return new Change(OperatorChanges.Key(response), response.Mode);
            }))
        {
            Message = $"{keyId} revoked: it is refused from its next request.";
        }

        await OnGetAsync();
    }
}
