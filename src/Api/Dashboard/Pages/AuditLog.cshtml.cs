using DevRift.Hsm.Api.Admin;
using DevRift.Hsm.Appliance.Audit;
using DevRift.Hsm.Appliance.Errors;
using Microsoft.AspNetCore.Mvc;

namespace DevRift.Hsm.Api.Dashboard.Pages;

/// <summary>The audit log: filters (event, application, subject, outcome, time range), pages of 50, and the chain check.</summary>
public sealed class AuditLogModel(AuditLog audit) : DashboardPage
{
    public const int PageSize = 50;

    [FromQuery(Name = "event")]
    public string? Event { get; set; }

    [FromQuery(Name = "application_id")]
    public string? ApplicationId { get; set; }

    [FromQuery(Name = "subject")]
    public string? Subject { get; set; }

    [FromQuery(Name = "outcome")]
    public string? Outcome { get; set; }

    [FromQuery(Name = "from")]
    public string? From { get; set; }

    [FromQuery(Name = "to")]
    public string? To { get; set; }

    [FromQuery(Name = "after")]
    public string? After { get; set; }

    public AuditListResponse Records { get; private set; } = new("list", [], false, null);

    public AuditVerification? Verification { get; private set; }

    /// <summary>The same filters, from the last record shown on.</summary>
    public string NextPageUrl => "/dashboard/audit" + QueryString.Create(new Dictionary<string, string?>
    {
        ["event"] = Event, ["application_id"] = ApplicationId, ["subject"] = Subject, ["outcome"] = Outcome, ["from"] = From, ["to"] = To,
        ["after"] = Records.NextAfter?.ToString(System.Globalization.CultureInfo.InvariantCulture),
    }.Where(p => !string.IsNullOrEmpty(p.Value))).ToUriComponent();

    public async Task OnGetAsync()
    {
        try
        {
            var filter = AuditEndpoints.Filter(Event, ApplicationId, Subject, Outcome, From, To);
            var after = AuditEndpoints.Parse(After, "after", 0, long.MaxValue, 0);
            Records = await AuditEndpoints.ListAsync(audit, filter, after, PageSize, HttpContext.RequestAborted);
        }
        catch (MfaException e) when (e.Error == ErrorCode.InvalidRequest)
        {
            Refused(e, "event", "from", "to");
        }
    }

    public async Task OnPostVerifyAsync()
    {
        Verification = await audit.VerifyAsync(HttpContext.RequestAborted);
        await OnGetAsync();
    }
}
