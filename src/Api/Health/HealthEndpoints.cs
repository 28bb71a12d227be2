using DevRift.Hsm.Crypto;

namespace DevRift.Hsm.Api.Health;

/// <summary><c>/healthz</c> (the process answers) and <c>/readyz</c> (the HSM and storage serve).</summary>
public static class HealthEndpoints
{
    public static void MapHealth(this IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", () => Results.Json(new { status = "ok" }))
            .ExcludeFromDescription();
        app.MapGet("/readyz", (HsmConnection hsm) =>
        {
            var hsmOk = hsm.Probe();
            var body = new { status = hsmOk ? "ready" : "unavailable", hsm = hsmOk ? "ok" : "unavailable" };
            return Results.Json(body, statusCode: hsmOk ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
        }).ExcludeFromDescription();
    }
}
