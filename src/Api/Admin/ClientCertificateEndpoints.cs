using System.Text.Json;
using System.Text.Json.Nodes;
using DevRift.Hsm.Api.V1;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Errors;

namespace DevRift.Hsm.Api.Admin;

public sealed record ClientCertificateResponse(string Object, string Id, string ApplicationId, string Thumbprint, string? Subject, DateTime? NotAfter, DateTime CreatedAt)
{
    public static ClientCertificateResponse From(ClientCertificate c)
    {
        ArgumentNullException.ThrowIfNull(c);
        return new("client_certificate", c.Id, c.ApplicationId, c.Thumbprint, c.Subject, c.NotAfter?.UtcDateTime, c.CreatedAt.UtcDateTime);
    }
}

/// <summary>
/// <c>/admin/v1/applications/{id}/client-certificates</c>: the certificates (by SHA-256 thumbprint) that may call
/// <c>/v1</c> with the application's keys when the deployment runs mutual TLS.
/// </summary>
public static class ClientCertificateEndpoints
{
    public static RouteGroupBuilder MapClientCertificates(this RouteGroupBuilder admin)
    {
        ArgumentNullException.ThrowIfNull(admin);
        admin.MapGet("/applications/{id}/client-certificates", async (string id, ClientCertificates certificates, CancellationToken ct) =>
            TypedResults.Ok(ListResponse.Of((await certificates.ListAsync(id, ct)).Select(ClientCertificateResponse.From).ToList())))
            .WithSummary("List the client certificates registered on an application");
        admin.MapPost("/applications/{id}/client-certificates", async (string id, HttpContext http, ClientCertificates certificates) =>
        {
            var body = await AdminEndpoints.ReadObjectAsync(http);
            var created = ClientCertificateResponse.From(await certificates.AddAsync(id, String(body, "pem"), String(body, "thumbprint"), http.RequestAborted));
            Audit.OperatorChanges.Describe(http, Audit.OperatorChanges.Certificate(created));
            return TypedResults.Created($"/admin/v1/applications/{id}/client-certificates/{created.Id}", created);
        }).WithSummary("Register a client certificate ({\"pem\": \"-----BEGIN CERTIFICATE-----…\"}, an end-entity certificate with clientAuth usage, or {\"thumbprint\": SHA-256, 64 hex})");
        admin.MapDelete("/applications/{id}/client-certificates/{certificateId}", async (string id, string certificateId, HttpContext http, ClientCertificates certificates) =>
        {
            var removed = ClientCertificateResponse.From(await certificates.RemoveAsync(id, certificateId, http.RequestAborted));
            Audit.OperatorChanges.Describe(http, Audit.OperatorChanges.Certificate(removed));
            return TypedResults.NoContent();
        }).WithSummary("Remove a client certificate; it is refused from the next request");
        return admin;
    }

    private static string? String(JsonObject body, string name) =>
        body[name] switch
        {
            null => null,
            JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
            _ => throw new MfaException(ErrorCode.InvalidRequest, $"'{name}' must be a string", name),
        };
}
