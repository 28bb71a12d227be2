using System.Text.Json.Nodes;
using DevRift.Hsm.Api.Audit;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Audit;
using DevRift.Hsm.Appliance.Fraud;
using DevRift.Hsm.Appliance.Outbox;
using Microsoft.AspNetCore.Mvc;

namespace DevRift.Hsm.Api.Dashboard.Pages;

/// <summary>One application: name and plan, every setting with its range and default, its fraud-guard counts and its test outbox.</summary>
public sealed class ApplicationModel(ApplicationStore applications, TestOutbox testOutbox, FraudGuard fraudGuard) : DashboardPage
{
    [FromRoute]
    public string Id { get; set; } = "";

    public Application App { get; private set; } = null!;

    public JsonObject Settings { get; private set; } = [];

    public long TestMessages { get; private set; }

    public Admin.FraudGuardResponse FraudGuard { get; private set; } = null!;

    /// <summary>The submitted values, shown again when the form was refused.</summary>
    public IFormCollection? Posted { get; private set; }

    public async Task OnGetAsync()
    {
        App = await applications.GetAsync(Id, HttpContext.RequestAborted);
        Settings = Admin.AdminEndpoints.SettingsJson(App);
        TestMessages = await testOutbox.CountAsync(Id, HttpContext.RequestAborted);
        FraudGuard = Admin.FraudGuardResponse.From(App, await fraudGuard.CountsAsync(Id, HttpContext.RequestAborted));
    }

    public async Task OnPostApplicationAsync([FromForm] string? name, [FromForm] string? plan)
    {
        if (await ChangeAsync(AuditEvents.ApplicationUpdate, Id, async () =>
            {
                var before = await applications.GetAsync(Id, HttpContext.RequestAborted);
                var after = await applications.RenameAsync(Id, name, HttpContext.RequestAborted);
                if (plan is not null && plan != after.Plan)
                {
                    after = await applications.UpdateAsync(Id, plan, [], HttpContext.RequestAborted);
                }

                return new Change(OperatorChanges.Application(before, after));
            }, "name", "plan"))
        {
            Message = "Saved.";
        }

        await OnGetAsync();
    }

    public async Task OnPostSettingsAsync()
    {
        var form = await Request.ReadFormAsync(HttpContext.RequestAborted);
        if (await ChangeAsync(AuditEvents.SettingsUpdate, Id, async () =>
            {
                var before = Admin.AdminEndpoints.SettingsJson(await applications.GetAsync(Id, HttpContext.RequestAborted));
                var after = Admin.AdminEndpoints.SettingsJson(await applications.UpdateAsync(Id, null, SettingFields.Patch(form), HttpContext.RequestAborted));
                var change = OperatorChanges.Settings(before, after);
                Message = change["changes"]!.AsObject().Count == 0 ? "Nothing changed." : $"Saved: {string.Join(", ", change["changes"]!.AsObject().Select(c => c.Key))}.";
                return new Change(change);
            }, [.. SettingFields.All.Select(f => f.Name)]))
        {
            await OnGetAsync();
            return;
        }

        Posted = form;
        await OnGetAsync();
    }

    public async Task OnPostPurgeAsync()
    {
        var deleted = 0;
        if (await ChangeAsync(AuditEvents.TestMessagesPurge, Id, async () =>
            {
                deleted = await testOutbox.PurgeAsync(Id, HttpContext.RequestAborted);
                return new Change(new JsonObject { ["deleted"] = deleted });
            }))
        {
            Message = $"{deleted} test messages deleted.";
        }

        await OnGetAsync();
    }
}
