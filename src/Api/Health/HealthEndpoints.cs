using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Crypto;

namespace DevRift.Hsm.Api.Health;

/// <summary><c>/healthz</c> (the process answers) and <c>/readyz</c> (the HSM and storage serve).</summary>
public static class HealthEndpoints
{
    /// <summary>How long readiness waits for the database before calling it unavailable.</summary>
    public static readonly TimeSpan StorageProbeTimeout = TimeSpan.FromSeconds(2);

    public static void MapHealth(this IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", () => Results.Json(new { status = "ok" }))
            .ExcludeFromDescription();
        app.MapGet("/readyz", async (HttpContext http, HsmConnection hsm, Database db) =>
        {
            // Both probes run at once: a keyed HMAC in the HSM, and SELECT 1 bounded by a short timeout.
            var hsmProbe = Task.Run(hsm.Probe, http.RequestAborted);
            var storageOk = await ProbeStorageAsync(db, http.RequestAborted);
            var hsmOk = await hsmProbe;
            var ready = hsmOk && storageOk;
            http.Response.Headers.CacheControl = "no-store";
            var body = new
            {
                status = ready ? "ready" : "unavailable",
                hsm = hsmOk ? "ok" : "unavailable",
                storage = storageOk ? "ok" : "unavailable",
            };
            return Results.Json(body, statusCode: ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
        }).ExcludeFromDescription();
    }

    private static async Task<bool> ProbeStorageAsync(Database db, CancellationToken requestAborted)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(requestAborted);
        timeout.CancelAfter(StorageProbeTimeout);
        try
        {
            return await db.ProbeAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !requestAborted.IsCancellationRequested)
        {
            return false;
        }
    }
}
