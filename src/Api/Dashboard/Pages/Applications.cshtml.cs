using DevRift.Hsm.Api.Audit;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Audit;
using Microsoft.AspNetCore.Mvc;

namespace DevRift.Hsm.Api.Dashboard.Pages;

/// <summary>The applications, and a form to create one.</summary>
public sealed class ApplicationsModel(ApplicationStore applications) : DashboardPage
{
    public IReadOnlyList<Application> Applications { get; private set; } = [];

    public async Task OnGetAsync() => Applications = await applications.ListAsync(HttpContext.RequestAborted);

    public async Task OnPostAsync([FromForm] string? name, [FromForm] string? plan)
    {
        Application? created = null;
        if (await ChangeAsync(AuditEvents.ApplicationCreate, null, async () =>
            {
                created = await applications.CreateAsync(name, plan, HttpContext.RequestAborted);
                return new Change(OperatorChanges.Created(Admin.ApplicationResponse.From(created)), ApplicationId: created.Id);
            }, "name", "plan"))
        {
            Message = $"Application {created!.Name} ({created.Id}) created.";
        }

        await OnGetAsync();
    }
}
