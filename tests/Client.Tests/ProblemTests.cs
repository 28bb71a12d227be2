using System.Net;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Appliance.Audit;
using Microsoft.Extensions.DependencyInjection;
using OtpNet;

namespace DevRift.Client.Tests;

/// <summary>Each problem the appliance answers reaches the caller as a <see cref="DevRiftException"/> with its fields.</summary>
public sealed class ProblemTests(ApplianceFixture fixture) : IClassFixture<ApplianceFixture>
{
    private static async Task<DevRiftException> Refused(Func<Task> call, HttpStatusCode status, string code, string? param = null)
    {
        var e = await Assert.ThrowsAsync<DevRiftException>(call);
        Assert.Equal((status, code, param), (e.Status, e.Code, e.Param));
        Assert.False(string.IsNullOrEmpty(e.Message));
        Assert.False(string.IsNullOrEmpty(e.Title));
        Assert.EndsWith("/errors/" + code, e.Type!.ToString(), StringComparison.Ordinal);
        return e;
    }

    [Fact]
    public async Task Malformed_input_is_400_naming_the_field()
    {
        using var client = fixture.NewClient();
        await Refused(() => client.SendCodeAsync("ada@example", DeliveryChannel.Email), HttpStatusCode.BadRequest, "invalid_email", "user");
        await Refused(() => client.SendCodeAsync(TestUsers.NewEmail(), DeliveryChannel.Dual), HttpStatusCode.BadRequest, "invalid_user", "user");
        await Refused(() => client.SendCodeAsync(TestUsers.NewEmail(), (DeliveryChannel)42), HttpStatusCode.BadRequest, "invalid_type", "type");
        await Refused(() => client.VerifyCodeAsync(TestUsers.NewEmail(), VerificationType.Email, "12ab"), HttpStatusCode.BadRequest, "invalid_code_format", "code");
        await Refused(() => client.VerifyAsync(new VerifyRequest { User = TestUsers.NewEmail(), Type = VerificationType.Key }), HttpStatusCode.BadRequest, "invalid_request", "credential");
    }

    [Fact]
    public async Task Phones_the_fraud_guard_refuses_are_403_destination_blocked_or_country_not_allowed()
    {
        // The default guard refuses a UK premium-rate number (shipped range +449), for codes and backup codes alike
        using var client = fixture.NewClient();
        await Refused(() => client.SendCodeAsync("+449098790000", DeliveryChannel.Sms), HttpStatusCode.Forbidden, "destination_blocked", "user");
        await Refused(() => client.GenerateBackupCodesAsync(new GenerateBackupCodesRequest { User = "+449098790000", Type = BackupDelivery.Sms }),
            HttpStatusCode.Forbidden, "destination_blocked", "user");

        // An application that allows only US numbers refuses a UK mobile, and the client's formatting of what the user typed does not change that
        var (_, key) = await fixture.Server.CreateApplicationWithKeyAsync("Client countries", "standard", new { allowed_countries = new[] { "US" } });
        using var limited = fixture.NewClient(key);
        await Refused(() => limited.SendCodeAsync("+44 7400 123456", DeliveryChannel.Sms), HttpStatusCode.Forbidden, "country_not_allowed", "user");
        Assert.Equal("pending", (await limited.SendCodeAsync(TestUsers.NewPhone(), DeliveryChannel.Sms)).Status);
    }

    [Fact]
    public async Task A_wrong_key_is_401_invalid_api_key()
    {
        using var client = fixture.NewClient("sk_test_" + new string('x', 40));
        var e = await Refused(() => client.SendCodeAsync(TestUsers.NewEmail(), DeliveryChannel.Email), HttpStatusCode.Unauthorized, "invalid_api_key");
        Assert.False(e.IsVerificationFailure);
    }

    [Fact]
    public async Task Failed_verifications_say_why_with_the_attempts_left()
    {
        using var client = fixture.NewClient();
        var user = TestUsers.NewEmail("fail");
        await Refused(() => client.VerifyCodeAsync(user, VerificationType.Email, "123456"), HttpStatusCode.Unauthorized, "no_pending_challenge", "user");
        await Refused(() => client.VerifyCodeAsync(user, VerificationType.App, "123456"), HttpStatusCode.Unauthorized, "not_enrolled", "user");

        await client.SendCodeAsync(user, DeliveryChannel.Email);
        var code = await client.GetLatestTestCodeAsync(user, DeliveryChannel.Email);
        var wrong = await Refused(() => client.VerifyCodeAsync(user, VerificationType.Email, ApiTestExtensions.WrongCode(code)), HttpStatusCode.Unauthorized, "invalid_code", "code");
        Assert.Equal(4, wrong.AttemptsRemaining);
        Assert.True(wrong.IsVerificationFailure);

        fixture.Server.Clock!.Advance(TimeSpan.FromMinutes(11));
        await Refused(() => client.VerifyCodeAsync(user, VerificationType.Email, code), HttpStatusCode.Unauthorized, "code_expired", "code");
    }

    [Fact]
    public async Task Policy_refusals_are_403()
    {
        using var standard = fixture.NewClient(await fixture.NewApplicationKeyAsync("standard"));
        await Refused(() => standard.SendCodeAsync($"{TestUsers.NewEmail()}:{TestUsers.NewPhone()}", DeliveryChannel.Dual), HttpStatusCode.Forbidden, "plan_required", "type");
        using var emailOnly = fixture.NewClient(await fixture.NewApplicationKeyAsync("standard", new { enabled_methods = new[] { "EMAIL" } }));
        await Refused(() => emailOnly.SendCodeAsync(TestUsers.NewPhone(), DeliveryChannel.Sms), HttpStatusCode.Forbidden, "method_disabled", "type");
        using var live = fixture.NewClient(await fixture.NewLiveKeyAsync());
        await Refused(() => live.ListTestMessagesAsync(TestUsers.NewEmail()), HttpStatusCode.Forbidden, "live_mode_forbidden");
    }

    [Fact]
    public async Task An_unknown_challenge_is_404_and_a_reused_idempotency_key_409()
    {
        using var client = fixture.NewClient();
        await Refused(() => client.GetChallengeAsync("mfa_doesnotexist"), HttpStatusCode.NotFound, "not_found", "id");
        var key = Guid.NewGuid().ToString("N");
        await client.SendCodeAsync(new SendCodeRequest { User = TestUsers.NewEmail(), Type = DeliveryChannel.Email, IdempotencyKey = key });
        await Refused(() => client.SendCodeAsync(new SendCodeRequest { User = TestUsers.NewEmail(), Type = DeliveryChannel.Email, IdempotencyKey = key }),
            HttpStatusCode.Conflict, "idempotency_key_reused", "Idempotency-Key");
    }

    [Fact]
    public async Task A_lockout_longer_than_the_retry_budget_is_thrown_at_once_with_Retry_After()
    {
        using var client = fixture.NewClient();
        var user = TestUsers.NewEmail("lock");
        var enrollment = await client.EnrollAppAsync(user);
        var good = new Totp(Base32Encoding.ToBytes(enrollment.Secret)).ComputeTotp(fixture.Server.Clock!.GetUtcNow().UtcDateTime);
        for (var i = 0; i < 5; i++)
        {
            await Refused(() => client.VerifyCodeAsync(user, VerificationType.App, ApiTestExtensions.WrongCode(good)), HttpStatusCode.Unauthorized, "invalid_code", "code");
        }

        var started = System.Diagnostics.Stopwatch.StartNew();
        var locked = await Refused(() => client.VerifyCodeAsync(user, VerificationType.App, good), HttpStatusCode.TooManyRequests, "too_many_attempts", "user");
        // (the first refusal of this source, API key and user, under the default source_aware lockout: 60 s)
        Assert.Equal(TimeSpan.FromSeconds(60), locked.RetryAfter);
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(5), "a 60 s Retry-After is beyond MaxDelay (30 s) and must not be waited for");
    }

    [Fact]
    public async Task ClientIp_throttles_the_guessing_address_and_not_the_user_elsewhere()
    {
        // Given an enrolled user
        using var client = fixture.NewClient();
        var user = TestUsers.NewEmail("client-ip");
        var enrollment = await client.EnrollAppAsync(user);
        var good = new Totp(Base32Encoding.ToBytes(enrollment.Secret)).ComputeTotp(fixture.Server.Clock!.GetUtcNow().UtcDateTime);
        var guesser = IPAddress.Parse("198.51.100.1");

        // When five wrong codes come from one address
        for (var i = 0; i < 5; i++)
        {
            await Refused(() => client.VerifyAsync(new VerifyRequest { User = user, Type = VerificationType.App, Code = ApiTestExtensions.WrongCode(good), ClientIp = guesser }),
                HttpStatusCode.Unauthorized, "invalid_code", "code");
        }

        // Then that address is refused, naming client_ip, even with the right code
        var refused = await Refused(() => client.VerifyAsync(new VerifyRequest { User = user, Type = VerificationType.App, Code = good, ClientIp = guesser }),
            HttpStatusCode.TooManyRequests, "too_many_attempts", "client_ip");
        Assert.Equal(TimeSpan.FromSeconds(60), refused.RetryAfter);

        // and the user verifies from another address (an IPv6 one with a zone, which the client leaves out)
        var verification = await client.VerifyAsync(new VerifyRequest { User = user, Type = VerificationType.App, Code = good, ClientIp = IPAddress.Parse("fe80::1%2") });
        Assert.True(verification.Valid);
    }

    [Fact]
    public async Task A_send_carries_ClientIp_into_the_audit_record()
    {
        using var client = fixture.NewClient();
        var user = TestUsers.NewEmail("send-ip");
        await client.SendCodeAsync(new SendCodeRequest { User = user, Type = DeliveryChannel.Email, ClientIp = IPAddress.Parse("2001:0db8:0::7") });
        await fixture.Server.Services.GetRequiredService<AuditLog>().ChainPendingAsync(); // what is pending, chained now
        await using var c = await fixture.Server.OpenDatabaseAsync();
        var detail = await Dapper.SqlMapper.QuerySingleAsync<string>(c, "SELECT detail FROM audit_log WHERE event = 'challenge.send' AND subject = @user", new { user });
        Assert.Equal("2001:db8::7", System.Text.Json.JsonDocument.Parse(detail).RootElement.GetProperty("client_ip").GetString());
    }

    [Fact]
    public async Task A_resend_within_the_cool_down_is_429_rate_limited_with_Retry_After()
    {
        using var client = fixture.NewClient(configure: o => o.Retry.MaxDelay = TimeSpan.FromSeconds(1));
        var user = TestUsers.NewEmail("cool");
        await client.SendCodeAsync(user, DeliveryChannel.Email);
        var limited = await Refused(() => client.SendCodeAsync(user, DeliveryChannel.Email), HttpStatusCode.TooManyRequests, "rate_limited", "user");
        Assert.Equal(TimeSpan.FromSeconds(30), limited.RetryAfter);
    }

    [Fact]
    public async Task A_live_send_on_a_channel_without_provider_is_503_and_not_retried()
    {
        using var live = fixture.NewClient(await fixture.NewLiveKeyAsync());
        var started = System.Diagnostics.Stopwatch.StartNew();
        await Refused(() => live.SendCodeAsync(TestUsers.NewPhone(), DeliveryChannel.Sms), HttpStatusCode.ServiceUnavailable, "channel_not_configured", "type");
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(5));
    }
}
