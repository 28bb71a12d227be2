using System.Globalization;
using DevRift.Hsm.Api.Admin;
using DevRift.Hsm.Api.Audit;
using DevRift.Hsm.Appliance.Audit;
using DevRift.Hsm.Appliance.Hsm;
using Microsoft.AspNetCore.Mvc;

namespace DevRift.Hsm.Api.Dashboard.Pages;

/// <summary>The HSM token and its keys: versions, dependents, rotate, retire (a 409 reason shown as it is).</summary>
public sealed class HsmModel(KeyManagement keys) : DashboardPage
{
    public HsmStatus Status { get; private set; } = null!;

    public async Task OnGetAsync() => Status = await keys.StatusAsync(HttpContext.RequestAborted);

    public async Task OnPostRotateAsync([FromForm] string? purpose)
    {
        await ChangeAsync(AuditEvents.HsmKeyRotate, null, async () =>
        {
            var created = HsmKeyResponse.From(await keys.RotateAsync(purpose, HttpContext.RequestAborted));
            Message = $"{created.Label} created; new data uses it from now on.";
            return new Change(OperatorChanges.HsmKey(created));
        });
        await OnGetAsync();
    }

    public async Task OnPostRetireAsync([FromForm] string? purpose, [FromForm] string? version)
    {
        await ChangeAsync(AuditEvents.HsmKeyRetire, null, async () =>
        {
            int? parsed = int.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v : null;
            var retired = HsmKeyResponse.From(await keys.RetireAsync(purpose, parsed, HttpContext.RequestAborted), retired: true);
            Message = $"{retired.Label} retired: destroyed on the token.";
            return new Change(OperatorChanges.HsmKey(retired));
        });
        await OnGetAsync();
    }
}
