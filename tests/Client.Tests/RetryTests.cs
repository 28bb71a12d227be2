using System.Net;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Client.Tests;

/// <summary>Retries through a stand-in in front of the real appliance: one logical send is one challenge and one message.</summary>
public sealed class RetryTests(ApplianceFixture fixture) : IClassFixture<ApplianceFixture>
{
    [Fact]
    public async Task A_503_then_202_is_one_challenge_and_one_message_with_one_idempotency_key()
    {
        await using var standIn = await StandIn.StartAsync(fixture.Server.BaseAddress, n => n == 1 ? StandInAction.Unavailable : StandInAction.Forward);
        using var client = fixture.NewClient(baseAddress: standIn.BaseAddress);
        var user = TestUsers.NewEmail("retry");

        var started = System.Diagnostics.Stopwatch.StartNew();
        var challenge = await client.SendCodeAsync(user, DeliveryChannel.Email);

        Assert.True(started.Elapsed >= TimeSpan.FromSeconds(0.9), "Retry-After: 1 is honoured");
        var requests = standIn.Requests.ToList();
        Assert.Equal(2, requests.Count);
        Assert.NotNull(requests[0].IdempotencyKey);
        Assert.Equal(requests[0].IdempotencyKey, requests[1].IdempotencyKey);
        Assert.Single(await client.ListTestMessagesAsync(user));
        Assert.Equal(1, await fixture.Server.CountAsync("SELECT COUNT(*) FROM challenges WHERE id = @id", new { id = challenge.Id }));
        Assert.Equal(1, await fixture.Server.CountAsync("SELECT COUNT(*) FROM challenges WHERE user_key = @user", new { user }));
    }

    [Fact]
    public async Task A_send_whose_answer_was_lost_is_retried_with_the_same_key_and_delivers_once()
    {
        // The appliance accepted the first attempt, but the connection dropped before the 202 reached the client.
        await using var standIn = await StandIn.StartAsync(fixture.Server.BaseAddress, n => n == 1 ? StandInAction.ForwardThenDrop : StandInAction.Forward);
        using var client = fixture.NewClient(baseAddress: standIn.BaseAddress);
        var user = TestUsers.NewEmail("lost");

        var challenge = await client.SendCodeAsync(user, DeliveryChannel.Email);

        var keys = standIn.Requests.Select(r => r.IdempotencyKey).ToList();
        Assert.Equal(2, keys.Count);
        Assert.Single(keys.Distinct());
        Assert.Single(await client.ListTestMessagesAsync(user));
        Assert.Equal(1, await fixture.Server.CountAsync("SELECT COUNT(*) FROM challenges WHERE user_key = @user", new { user }));
        var code = await client.GetLatestTestCodeAsync(user, DeliveryChannel.Email);
        Assert.Equal(challenge.User, (await client.VerifyCodeAsync(user, VerificationType.Email, code)).User);
    }

    [Fact]
    public async Task A_verify_whose_answer_was_lost_is_not_replayed()
    {
        await using var standIn = await StandIn.StartAsync(fixture.Server.BaseAddress, n => n == 3 ? StandInAction.ForwardThenDrop : StandInAction.Forward);
        using var client = fixture.NewClient(baseAddress: standIn.BaseAddress);
        var user = TestUsers.NewEmail("noreplay");
        await client.SendCodeAsync(user, DeliveryChannel.Email);
        var code = await client.GetLatestTestCodeAsync(user, DeliveryChannel.Email);

        await Assert.ThrowsAsync<HttpRequestException>(() => client.VerifyCodeAsync(user, VerificationType.Email, code));

        Assert.Equal(3, standIn.Requests.Count);
    }

    [Fact]
    public async Task A_verify_answered_503_is_retried_because_nothing_was_consumed()
    {
        await using var standIn = await StandIn.StartAsync(fixture.Server.BaseAddress, n => n == 3 ? StandInAction.Unavailable : StandInAction.Forward);
        using var client = fixture.NewClient(baseAddress: standIn.BaseAddress);
        var user = TestUsers.NewEmail("verify503");
        await client.SendCodeAsync(user, DeliveryChannel.Email);
        var code = await client.GetLatestTestCodeAsync(user, DeliveryChannel.Email);

        Assert.True((await client.VerifyCodeAsync(user, VerificationType.Email, code)).Valid);
        Assert.Equal(4, standIn.Requests.Count);
    }

    [Fact]
    public async Task When_retries_are_spent_the_last_503_is_thrown()
    {
        await using var standIn = await StandIn.StartAsync(fixture.Server.BaseAddress, _ => StandInAction.Unavailable);
        using var client = fixture.NewClient(baseAddress: standIn.BaseAddress, configure: o => o.Retry.MaxRetries = 1);

        var e = await Assert.ThrowsAsync<DevRiftException>(() => client.SendCodeAsync(TestUsers.NewEmail(), DeliveryChannel.Email));

        Assert.Equal((HttpStatusCode.ServiceUnavailable, "hsm_unavailable", TimeSpan.FromSeconds(1)), (e.Status, e.Code, e.RetryAfter));
        Assert.Equal(2, standIn.Requests.Count);
    }

    [Fact]
    public async Task A_refused_connection_is_retried_and_then_surfaces()
    {
        using var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        using var client = fixture.NewClient(baseAddress: new Uri($"http://127.0.0.1:{port}"), configure: o => o.Retry.MaxRetries = 2);

        var e = await Assert.ThrowsAsync<HttpRequestException>(() => client.VerifyCodeAsync(TestUsers.NewEmail(), VerificationType.Email, "123456"));

        Assert.Equal(HttpRequestError.ConnectionError, e.HttpRequestError);
    }

    [Fact]
    public async Task Cancelling_during_a_Retry_After_wait_stops_at_once()
    {
        await using var standIn = await StandIn.StartAsync(fixture.Server.BaseAddress, _ => StandInAction.Unavailable);
        using var client = fixture.NewClient(baseAddress: standIn.BaseAddress);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));

        var started = System.Diagnostics.Stopwatch.StartNew();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.SendCodeAsync(TestUsers.NewEmail(), DeliveryChannel.Email, cts.Token));

        Assert.True(started.Elapsed < TimeSpan.FromSeconds(0.9), $"took {started.Elapsed}");
        Assert.Single(standIn.Requests);
    }

    [Fact]
    public async Task Cancelling_a_request_in_flight_throws_OperationCanceledException()
    {
        await using var standIn = await StandIn.StartAsync(fixture.Server.BaseAddress, _ => StandInAction.Hang);
        using var client = fixture.NewClient(baseAddress: standIn.BaseAddress);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.GetFactorsAsync(TestUsers.NewEmail(), cts.Token));
        Assert.Single(standIn.Requests);
    }

    [Fact]
    public async Task An_attempt_past_the_network_timeout_is_a_TimeoutException()
    {
        await using var standIn = await StandIn.StartAsync(fixture.Server.BaseAddress, _ => StandInAction.Hang);
        using var client = fixture.NewClient(baseAddress: standIn.BaseAddress, configure: o => o.NetworkTimeout = TimeSpan.FromSeconds(1));

        await Assert.ThrowsAsync<TimeoutException>(() => client.VerifyCodeAsync(TestUsers.NewEmail(), VerificationType.Email, "123456"));
        await Task.Delay(200);
        Assert.True(standIn.Requests.Count <= 1, "a verify that timed out is not sent again");
    }
}
