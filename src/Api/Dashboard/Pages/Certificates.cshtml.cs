using DevRift.Hsm.Api.Admin;
using DevRift.Hsm.Api.Audit;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Audit;
using DevRift.Hsm.Appliance.Errors;
using Microsoft.AspNetCore.Mvc;

namespace DevRift.Hsm.Api.Dashboard.Pages;

/// <summary>An application's client certificates: register by PEM upload or thumbprint, list, remove.</summary>
public sealed class CertificatesModel(ApplicationStore applications, ClientCertificates certificates) : DashboardPage
{
    /// <summary>Largest PEM file taken (a certificate is a few kilobytes).</summary>
    public const int MaxPemBytes = 64 * 1024;

    [FromRoute]
    public string Id { get; set; } = "";

    public Application App { get; private set; } = null!;

    public IReadOnlyList<ClientCertificate> Certificates { get; private set; } = [];

    public async Task OnGetAsync()
    {
        App = await applications.GetAsync(Id, HttpContext.RequestAborted);
        Certificates = await certificates.ListAsync(Id, HttpContext.RequestAborted);
    }

    public async Task OnPostRegisterAsync(IFormFile? pem, [FromForm] string? thumbprint)
    {
        if (await ChangeAsync(AuditEvents.ClientCertificateAdd, Id, async () =>
            {
                string? text = null;
                if (pem is { Length: > 0 })
                {
                    if (pem.Length > MaxPemBytes)
                    {
                        throw new MfaException(ErrorCode.InvalidRequest, $"the PEM file is larger than {MaxPemBytes / 1024} KiB", "pem");
                    }

                    using var reader = new StreamReader(pem.OpenReadStream());
                    text = await reader.ReadToEndAsync(HttpContext.RequestAborted);
                }

                var created = ClientCertificateResponse.From(await certificates.AddAsync(Id, text, string.IsNullOrWhiteSpace(thumbprint) ? null : thumbprint, HttpContext.RequestAborted));
                Message = $"Registered {created.Id} ({created.Thumbprint}).";
                return new Change(OperatorChanges.Certificate(created));
            }, "pem", "thumbprint"))
        {
            ModelState.Clear();
        }

        await OnGetAsync();
    }

    public async Task OnPostRemoveAsync([FromForm] string? certificateId)
    {
        await ChangeAsync(AuditEvents.ClientCertificateRemove, Id, async () =>
        {
            var removed = ClientCertificateResponse.From(await certificates.RemoveAsync(Id, certificateId ?? "", HttpContext.RequestAborted));
            Message = $"Removed {removed.Id}: it is refused from the next request.";
            return new Change(OperatorChanges.Certificate(removed));
        });
        await OnGetAsync();
    }
}
