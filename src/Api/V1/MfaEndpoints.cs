using DevRift.Hsm.Api.Audit;
using DevRift.Hsm.Api.Auth;
using DevRift.Hsm.Api.Metrics;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Backup;
using DevRift.Hsm.Appliance.Challenges;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Factors;
using DevRift.Hsm.Appliance.Outbox;
using DevRift.Hsm.Appliance.SecurityKeys;
using DevRift.Hsm.Appliance.Users;
using DevRift.Hsm.Appliance.Verify;
using Microsoft.AspNetCore.Http.HttpResults;

namespace DevRift.Hsm.Api.V1;

/// <summary>The integrator API of API.md under <c>/v1</c>, behind API-key authentication.</summary>
public static class MfaEndpoints
{
    public static RouteGroupBuilder MapV1(this IEndpointRouteBuilder app)
    {
        var v1 = app.MapGroup("/v1").RequireApiKey().AuditApiCalls().WithTags("MFA");
        v1.MapPost("/mfa", SendAsync)
            .WithName("SendCode")
            .WithSummary("Send a one-time code by email, SMS, WhatsApp, voice call, or email and SMS at once (DUAL)");
        v1.MapGet("/mfa/{id}", GetAsync)
            .WithName("GetChallenge")
            .WithSummary("A challenge's status and per-channel delivery status");
        v1.MapPost("/mfa/verify", VerifyAsync)
            .AddEndpointFilter<VerificationMetricsFilter>()
            .WithName("Verify")
            .WithSummary("Verify what the user typed: 200 when valid, 401 when not");
        v1.MapGet("/test/messages", TestMessagesAsync)
            .WithName("TestMessages")
            .WithSummary("Test mode only: the messages the appliance would have sent to a user, newest first");
        v1.MapFactors();
        v1.MapSecurityKeys();
        return v1;
    }

    private static async Task<Accepted<ChallengeResponse>> SendAsync(HttpContext http, ChallengeService challenges)
    {
        var body = await RequestBody.ReadAsync(http.Request, http.RequestAborted);
        ApiAudit.SuccessIsAuditedWithTheChange(http);
        var idempotencyKey = http.Request.Headers["Idempotency-Key"].ToString() is { Length: > 0 } k ? k : null;
        var view = await challenges.SendAsync(http.CallerWithClientIp(body.ClientIp), body.Require("user", ErrorCode.InvalidUser), body.Require("type", ErrorCode.InvalidType),
            body.Locale, idempotencyKey, body.Transaction, body.UserId, http.RequestAborted);
        return TypedResults.Accepted($"/v1/mfa/{view.Id}", ChallengeResponse.From(view));
    }

    private static async Task<Ok<ChallengeResponse>> GetAsync(HttpContext http, string id, ChallengeService challenges) =>
        TypedResults.Ok(ChallengeResponse.From(await challenges.GetAsync(http.Caller(), id, http.RequestAborted)));

    private static async Task<Ok<VerificationResponse>> VerifyAsync(HttpContext http, VerificationPipeline pipeline)
    {
        var body = await RequestBody.ReadAsync(http.Request, http.RequestAborted);
        var type = body.Require("type", ErrorCode.InvalidType);
        VerificationMetricsFilter.SetType(http, type.ToUpperInvariant());
        ApiAudit.SuccessIsAuditedWithTheChange(http);
        var request = new VerifyRequest(body.Require("user", ErrorCode.InvalidUser), type, body.Code,
            VerifyMethods.KnownName(type) == "KEY" ? SecurityKeyEndpoints.CredentialOf(body) : null, body.Transaction, body.UserId);
        var verification = await pipeline.VerifyAsync(http.CallerWithClientIp(body.ClientIp), request, http.RequestAborted);
        http.Response.Headers.CacheControl = "no-store";
        return TypedResults.Ok(VerificationResponse.From(verification));
    }

    private static async Task<Ok<ListResponse<TestMessageResponse>>> TestMessagesAsync(HttpContext http, OutboxStore outbox, string? user)
    {
        var caller = http.Caller();
        if (caller.Mode != Modes.Test)
        {
            throw new MfaException(ErrorCode.LiveModeForbidden, "the test outbox is only readable with a test key");
        }

        var parsed = MfaUser.Parse(FactorEndpoints.Required(user));
        var destinations = new[] { parsed.Email, parsed.Phone }.OfType<string>().ToList();
        var messages = await outbox.TestMessagesAsync(caller.Application.Id, destinations, 100, http.RequestAborted);
        http.Response.Headers.CacheControl = "no-store";
        return TypedResults.Ok(ListResponse.Of(messages.Select(TestMessageResponse.From).ToList()));
    }
}
