using System.Net;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Appliance.Outbox;
using Microsoft.Extensions.DependencyInjection;

namespace DevRift.Hsm.Api.Tests;

/// <summary>
/// A server whose live mode has somewhere to deliver EMAIL: a gateway stand-in registered as the "smtp" provider, which
/// accepts every message and decides nothing (it only makes live-mode sends, and so live data, possible).
/// </summary>
public sealed class LiveDeliveryServer : IAsyncLifetime
{
    private ApplianceServer? _server;

    public ApplianceServer Server => _server ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync() =>
        _server = await ApplianceServer.StartAsync(Db.Sqlite, configure: b => b.Services.AddSingleton<IDeliveryProvider, GatewayStandIn>());

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    private sealed class GatewayStandIn : IDeliveryProvider
    {
        public string Name => "smtp";

        public bool IsConfigured => true;

        public bool Supports(string channel) => channel == "EMAIL";

        public Task DeliverAsync(OutgoingMessage message, CancellationToken cancellationToken) => Task.CompletedTask;
    }
}

/// <summary>A key sees only its own application's data in its own mode; a revoked key sees nothing.</summary>
public sealed class KeyIsolationTests(LiveDeliveryServer fixture) : IClassFixture<LiveDeliveryServer>
{
    private ApplianceServer Server => fixture.Server;

    [Fact]
    public async Task A_live_key_cannot_read_or_verify_a_test_mode_challenge()
    {
        // Given a test-mode challenge and a live key of the same application
        var user = TestUsers.NewEmail("testdata");
        var id = (await Server.SendAcceptedAsync(user, "EMAIL")).GetProperty("id").GetString();
        var code = await Server.LatestCodeAsync(user, "EMAIL");
        var live = await Server.CreateApiKeyAsync(Server.ApplicationId, "live");
        using var liveClient = Server.NewClient(live.Secret);

        // When the live key reads it and verifies its code
        using var read = await liveClient.GetAsync($"/v1/mfa/{id}");
        using var verify = await Server.VerifyCodeAsync(user, "EMAIL", code, live.Secret);

        // Then 404 not_found and 401 no_pending_challenge
        await read.AssertProblemAsync(HttpStatusCode.NotFound, "not_found", "id");
        await verify.AssertProblemAsync(HttpStatusCode.Unauthorized, "no_pending_challenge", "user");

        // And the test key still reads it as pending and verifies it (the live attempt touched nothing)
        using var own = await Server.Client.GetAsync($"/v1/mfa/{id}");
        var challenge = await own.AssertJsonAsync(HttpStatusCode.OK, "challenge");
        Assert.Equal("pending", challenge.GetProperty("status").GetString());
        Assert.Equal(5, challenge.GetProperty("attempts_remaining").GetInt32());
        using var ownVerify = await Server.VerifyCodeAsync(user, "EMAIL", code);
        await ownVerify.AssertJsonAsync(HttpStatusCode.OK, "verification");
    }

    [Fact]
    public async Task A_test_key_cannot_read_or_verify_a_live_mode_challenge_or_see_its_message()
    {
        // Given a live-mode challenge (queued for the gateway) and the same application's test key
        var user = TestUsers.NewEmail("livedata");
        var live = await Server.CreateApiKeyAsync(Server.ApplicationId, "live");
        var challenge = await Server.SendAcceptedAsync(user, "EMAIL", live.Secret);
        Assert.True(challenge.GetProperty("livemode").GetBoolean());
        Assert.Contains(challenge.GetProperty("channels")[0].GetProperty("status").GetString(), (string[])["queued", "sending", "sent"]);
        var id = challenge.GetProperty("id").GetString();

        // When the test key reads the challenge, its messages, and verifies a code for the user
        using var read = await Server.Client.GetAsync($"/v1/mfa/{id}");
        using var messages = await Server.Client.GetAsync($"/v1/test/messages?user={Uri.EscapeDataString(user)}");
        using var verify = await Server.VerifyCodeAsync(user, "EMAIL", "123456");

        // Then 404 not_found, an empty list, and 401 no_pending_challenge
        await read.AssertProblemAsync(HttpStatusCode.NotFound, "not_found", "id");
        Assert.Empty((await messages.AssertJsonAsync(HttpStatusCode.OK, "list")).GetProperty("data").EnumerateArray());
        await verify.AssertProblemAsync(HttpStatusCode.Unauthorized, "no_pending_challenge", "user");

        // And the live key reads its own challenge
        using var liveClient = Server.NewClient(live.Secret);
        using var own = await liveClient.GetAsync($"/v1/mfa/{id}");
        Assert.True((await own.AssertJsonAsync(HttpStatusCode.OK, "challenge")).GetProperty("livemode").GetBoolean());
    }

    [Fact]
    public async Task Another_applications_key_cannot_read_or_verify_its_challenges_or_see_its_messages()
    {
        // Given a challenge made with another application's test key
        var other = await Server.CreateApplicationAsync("Other Shop", "enterprise");
        var otherKey = await Server.CreateApiKeyAsync(other, "test");
        var phone = TestUsers.NewPhone();
        var id = (await Server.SendAcceptedAsync(phone, "SMS", otherKey.Secret)).GetProperty("id").GetString();
        var code = await Server.LatestCodeAsync(phone, "SMS", otherKey.Secret);

        // When the demo application's test key reads it, its messages, and verifies its code
        using var read = await Server.Client.GetAsync($"/v1/mfa/{id}");
        using var messages = await Server.Client.GetAsync($"/v1/test/messages?user={Uri.EscapeDataString(phone)}");
        using var verify = await Server.VerifyCodeAsync(phone, "PHONE", code);

        // Then 404 not_found, an empty list, and 401 no_pending_challenge
        await read.AssertProblemAsync(HttpStatusCode.NotFound, "not_found", "id");
        Assert.Empty((await messages.AssertJsonAsync(HttpStatusCode.OK, "list")).GetProperty("data").EnumerateArray());
        await verify.AssertProblemAsync(HttpStatusCode.Unauthorized, "no_pending_challenge", "user");

        // And the owner's key still verifies it
        using var own = await Server.VerifyCodeAsync(phone, "PHONE", code, otherKey.Secret);
        await own.AssertJsonAsync(HttpStatusCode.OK, "verification");
    }

    [Fact]
    public async Task A_revoked_key_is_401_invalid_api_key_from_its_next_request()
    {
        // Given a working test key
        var key = await Server.CreateApiKeyAsync(Server.ApplicationId, "test");
        await Server.SendAcceptedAsync(TestUsers.NewEmail("revoke"), "EMAIL", key.Secret);

        // When the operator revokes it
        using var admin = Server.AdminClient();
        using var revoke = await admin.DeleteAsync($"/admin/v1/applications/{Server.ApplicationId}/api-keys/{key.Id}");
        var revoked = await revoke.AssertJsonAsync(HttpStatusCode.OK, "api_key");
        Assert.NotEqual(System.Text.Json.JsonValueKind.Null, revoked.GetProperty("revoked_at").ValueKind);
        Assert.False(revoked.TryGetProperty("secret", out _));

        // Then its next request is 401 invalid_api_key, and the revocation is in the database
        using var next = await Server.SendCodeAsync(TestUsers.NewEmail("revoke"), "EMAIL", key.Secret);
        await next.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
        Assert.Equal(1, await Server.CountAsync("SELECT COUNT(*) FROM api_keys WHERE id = @Id AND revoked_at IS NOT NULL", new { key.Id }));

        // And the application's other key is unaffected
        await Server.SendAcceptedAsync(TestUsers.NewEmail("revoke"), "EMAIL");
    }
}
