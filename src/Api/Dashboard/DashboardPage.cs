using System.Text.Json.Nodes;
using DevRift.Hsm.Appliance.Audit;
using DevRift.Hsm.Appliance.Errors;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace DevRift.Hsm.Api.Dashboard;

/// <summary>What an operator change changed, for its audit record; <paramref name="ApplicationId"/> when the change made it known (a creation).</summary>
public sealed record Change(JsonObject Detail, string? Mode = null, string? ApplicationId = null);

/// <summary>
/// What every dashboard page shares: the signed-in operator, the audit record of each change (actor
/// <c>operator</c>, <c>"via": "dashboard"</c>, the same details as <c>/admin/v1</c>), and refusals shown on the
/// page — beside the field they name, or at the top.
/// </summary>
public abstract class DashboardPage : PageModel
{
    /// <summary>A line shown at the top after a change succeeded.</summary>
    public string? Message { get; protected set; }

    /// <summary>A refusal that names no field of the form, shown at the top.</summary>
    public string? Error { get; protected set; }

    public string OperatorId => HttpContext.Items[DashboardFilter.OperatorClaim] as string ?? "";

    /// <summary>
    /// Runs one operator change and audits it: <paramref name="change"/> returns what changed (for the record);
    /// a refusal is recorded with its code and shown, beside the field it names when the form has one.
    /// </summary>
    protected async Task<bool> ChangeAsync(string evt, string? applicationId, Func<Task<Change>> change, params string[] formFields)
    {
        ArgumentNullException.ThrowIfNull(change);
        var audit = HttpContext.RequestServices.GetRequiredService<AuditLog>();
        var detail = new JsonObject { ["via"] = "dashboard", ["operator_id"] = OperatorId };
        try
        {
            var changed = await change();
            foreach (var (name, value) in changed.Detail)
            {
                detail[name] = value?.DeepClone();
            }

            await audit.AppendAsync(new AuditEntry(evt, AuditEntry.Operator, changed.ApplicationId ?? applicationId, changed.Mode, null, "ok", detail), HttpContext.RequestAborted);
            return true;
        }
        catch (MfaException e) when (e.Error.Kind is not ErrorKind.Unavailable)
        {
            await audit.AppendAsync(new AuditEntry(evt, AuditEntry.Operator, applicationId, null, null, e.Error.Code, detail), HttpContext.RequestAborted);
            Refused(e, formFields);
            return false;
        }
    }

    /// <summary>Shows a refusal beside its field when the form has it, else at the top.</summary>
    protected void Refused(MfaException e, params string[] formFields)
    {
        ArgumentNullException.ThrowIfNull(e);
        ArgumentNullException.ThrowIfNull(formFields);
        if (e.Param is { } field && formFields.Contains(field, StringComparer.Ordinal))
        {
            ModelState.AddModelError(field, e.Message);
        }
        else
        {
            Error = $"{e.Error.Code}: {e.Message}";
        }
    }

    /// <summary>The error shown beside <paramref name="field"/>, if any.</summary>
    public string? FieldError(string field) =>
        ModelState.TryGetValue(field, out var entry) && entry.Errors.Count > 0 ? entry.Errors[0].ErrorMessage : null;

    public static string When(DateTimeOffset? at) => at?.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", System.Globalization.CultureInfo.InvariantCulture) ?? "—";

    public static string When(DateTime? at) => When(at is { } t ? new DateTimeOffset(DateTime.SpecifyKind(t, DateTimeKind.Utc)) : null);
}
