using System.Net;
using System.Text.Json;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests;

/// <summary><c>GET /v1/mfa/{id}</c> through a challenge's life, and the two codes of a DUAL challenge.</summary>
public sealed class ChallengeStatusTests(FakeClockServers servers) : IClassFixture<FakeClockServers>
{
    [Fact]
    public async Task A_challenge_reads_pending_until_its_code_verifies_then_approved()
    {
        // Given a pending EMAIL challenge
        var server = await servers.GetAsync(Db.Sqlite);
        var user = TestUsers.NewEmail("status");
        var sent = await server.SendAcceptedAsync(user, "EMAIL");
        var id = sent.GetProperty("id").GetString();
        var pending = await server.ReadChallengeAsync(id!);
        Assert.Equal("pending", pending.GetProperty("status").GetString());
        Assert.Equal(5, pending.GetProperty("attempts_remaining").GetInt32());
        Assert.Equal(user, pending.GetProperty("user").GetString());
        Assert.Equal(TimeSpan.FromSeconds(600), pending.GetProperty("expires_at").GetDateTime() - pending.GetProperty("created_at").GetDateTime());
        var channel = Assert.Single(pending.GetProperty("channels").EnumerateArray());
        Assert.Equal(("EMAIL", user, "sent"), (channel.GetProperty("channel").GetString(), channel.GetProperty("to").GetString(), channel.GetProperty("status").GetString()));

        // When its code verifies
        using var verify = await server.VerifyCodeAsync(user, "EMAIL", await server.LatestCodeAsync(user, "EMAIL"));
        await verify.AssertJsonAsync(HttpStatusCode.OK, "verification");

        // Then it reads approved
        var approved = await server.ReadChallengeAsync(id!);
        Assert.Equal("approved", approved.GetProperty("status").GetString());
        Assert.Equal(4, approved.GetProperty("attempts_remaining").GetInt32());
    }

    [Fact]
    public async Task A_challenge_whose_attempts_are_used_up_reads_max_attempts_reached()
    {
        // Given a pending SMS challenge
        var server = await servers.GetAsync(Db.Sqlite);
        var phone = TestUsers.NewPhone();
        var id = (await server.SendAcceptedAsync(phone, "SMS")).GetProperty("id").GetString()!;
        var wrong = ApiTestExtensions.WrongCode(await server.LatestCodeAsync(phone, "SMS"));

        // When its five attempts go on wrong codes
        for (var i = 0; i < 5; i++)
        {
            using var response = await server.VerifyCodeAsync(phone, "PHONE", wrong);
            await response.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_code", "code");
            Assert.Equal(i < 4 ? "pending" : "max_attempts_reached", (await server.ReadChallengeAsync(id)).GetProperty("status").GetString());
        }

        // Then it reads max_attempts_reached with none remaining
        var spent = await server.ReadChallengeAsync(id);
        Assert.Equal("max_attempts_reached", spent.GetProperty("status").GetString());
        Assert.Equal(0, spent.GetProperty("attempts_remaining").GetInt32());
    }

    [Fact]
    public async Task A_replaced_challenge_reads_canceled_and_one_past_its_lifetime_reads_expired()
    {
        // Given a challenge replaced by a newer send for the same user and type
        var server = await servers.GetAsync(Db.Sqlite);
        var user = TestUsers.NewEmail("lifecycle");
        var first = (await server.SendAcceptedAsync(user, "EMAIL")).GetProperty("id").GetString()!;
        server.Clock!.Advance(TimeSpan.FromSeconds(31));
        var second = (await server.SendAcceptedAsync(user, "EMAIL")).GetProperty("id").GetString()!;

        // When they are read now, and after the newer one's lifetime
        var canceled = await server.ReadChallengeAsync(first);
        var pending = await server.ReadChallengeAsync(second);
        server.Clock.Advance(TimeSpan.FromSeconds(600));
        var expired = await server.ReadChallengeAsync(second);

        // Then canceled, pending, expired
        Assert.Equal("canceled", canceled.GetProperty("status").GetString());
        Assert.Equal("pending", pending.GetProperty("status").GetString());
        Assert.Equal("expired", expired.GetProperty("status").GetString());
    }

    [Fact]
    public async Task An_unknown_challenge_id_is_404_not_found()
    {
        // Given an id that was never issued
        var server = await servers.GetAsync(Db.Sqlite);

        // When it is read
        using var response = await server.Client.GetAsync("/v1/mfa/mfa_doesnotexist000000000000");

        // Then 404 not_found naming 'id'
        await response.AssertProblemAsync(HttpStatusCode.NotFound, "not_found", "id");
    }

    [Theory]
    [InlineData("EMAIL", "SMS")]
    [InlineData("SMS", "EMAIL")]
    public async Task Either_code_of_a_DUAL_challenge_verifies_it_and_the_other_is_then_401(string usedChannel, string otherChannel)
    {
        // Given a DUAL challenge: one code by email, another by SMS
        var server = await servers.GetAsync(Db.Sqlite);
        var user = $"{TestUsers.NewEmail("dual")}:{TestUsers.NewPhone()}";
        var id = (await server.SendAcceptedAsync(user, "DUAL")).GetProperty("id").GetString()!;
        var used = await server.LatestCodeAsync(user, usedChannel);
        var other = await server.LatestCodeAsync(user, otherChannel);

        // When one channel's code verifies
        using var verify = await server.VerifyCodeAsync(user, "DUAL", used);
        var verification = await verify.AssertJsonAsync(HttpStatusCode.OK, "verification");
        Assert.Equal("DUAL", verification.GetProperty("type").GetString());

        // Then the other channel's code is 401 no_pending_challenge, and the challenge reads approved
        using var second = await server.VerifyCodeAsync(user, "DUAL", other);
        await second.AssertProblemAsync(HttpStatusCode.Unauthorized, "no_pending_challenge", "code");
        Assert.Equal("approved", (await server.ReadChallengeAsync(id)).GetProperty("status").GetString());
    }

    [Fact]
    public async Task DUAL_codes_verify_only_as_DUAL_and_a_second_DUAL_challenge_takes_over_from_the_first()
    {
        // Given a DUAL challenge, then 31 s later a second one for the same user
        var server = await servers.GetAsync(Db.Sqlite);
        var email = TestUsers.NewEmail("dual2");
        var phone = TestUsers.NewPhone();
        var user = $"{email}:{phone}";
        await server.SendAcceptedAsync(user, "DUAL");
        var firstSms = await server.LatestCodeAsync(user, "SMS");
        server.Clock!.Advance(TimeSpan.FromSeconds(31));
        await server.SendAcceptedAsync(user, "DUAL");
        var secondEmail = await server.LatestCodeAsync(user, "EMAIL");
        var secondSms = await server.LatestCodeAsync(user, "SMS");

        // When the second's codes are presented as EMAIL and PHONE
        using var asEmail = await server.VerifyCodeAsync(email, "EMAIL", secondEmail);
        using var asPhone = await server.VerifyCodeAsync(phone, "PHONE", secondSms);

        // Then neither family has a challenge for them
        await asEmail.AssertProblemAsync(HttpStatusCode.Unauthorized, "no_pending_challenge", "user");
        await asPhone.AssertProblemAsync(HttpStatusCode.Unauthorized, "no_pending_challenge", "user");

        // And as DUAL the second challenge's SMS code verifies
        if (firstSms != secondSms)
        {
            using var stale = await server.VerifyCodeAsync(user, "DUAL", firstSms);
            await stale.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_code", "code");
        }

        using var ok = await server.VerifyCodeAsync(user, "DUAL", secondSms);
        await ok.AssertJsonAsync(HttpStatusCode.OK, "verification");
    }
}

internal static class ChallengeStatusTestExtensions
{
    public static async Task<JsonElement> ReadChallengeAsync(this ApplianceServer server, string id)
    {
        using var response = await server.Client.GetAsync($"/v1/mfa/{id}");
        var challenge = await response.AssertJsonAsync(HttpStatusCode.OK, "challenge");
        Assert.Equal(id, challenge.GetProperty("id").GetString());
        return challenge;
    }
}
