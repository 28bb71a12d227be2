using System.Net;
using DevRift.Hsm.Api.Tests.Factors;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Rotation;

/// <summary>
/// Two appliance nodes on one PostgreSQL database and one token (and one clock). A rotation on node A reaches node B
/// two ways: B reads the token again as soon as it meets data naming a version it does not know, and every
/// <c>Hsm:KeyRefreshInterval</c> (30 s by default) so that its own new data moves to the newest version.
/// </summary>
public sealed class MultiNodeRotationTests
{
    [Fact]
    public async Task A_rotation_on_one_node_reaches_the_other_through_data_and_through_its_periodic_refresh()
    {
        // Given nodes A and B of one site, with data made on B under every v1 key
        await using var a = await ApplianceServer.StartAsync(Db.Postgres, fakeClock: true);
        await using var b = await ApplianceServer.StartAsync(Db.Postgres, sameSiteAs: a);
        Assert.Equal(a.Hsm.TokenLabel, b.Hsm.TokenLabel);
        var oldKey = await a.CreateApiKeyAsync(a.ApplicationId, "test");
        var challengeV1 = await b.SendEmailCodeAsync("b-v1");
        var appUser = FactorApi.NewUser("b-app");
        var seed = (await b.EnrolActiveAsync(appUser)).Seed;

        // When the code key is rotated on A
        await a.RotateAsync("code");

        // Then B keeps deriving codes under v1 until its refresh interval has passed, then under v2
        var stale = await b.SendEmailCodeAsync("b-stale");
        Assert.Equal(1, await b.ChallengeKeyVersionAsync(stale.User));
        a.Clock!.Advance(TimeSpan.FromSeconds(31));
        var refreshed = await b.SendEmailCodeAsync("b-refreshed");
        Assert.Equal(2, await b.ChallengeKeyVersionAsync(refreshed.User));

        // and every challenge verifies on either node, whatever version it was made under
        foreach (var (server, sent) in (ValueTuple<ApplianceServer, SentCode>[])[(a, challengeV1), (b, stale), (a, refreshed)])
        {
            using var ok = await server.VerifyCodeAsync(sent.User, "EMAIL", sent.Code);
            await ok.AssertJsonAsync(HttpStatusCode.OK, "verification");
        }

        // When the lookup key is rotated on A and A makes an API key under v2 (no clock movement: B has not refreshed)
        await a.RotateAsync("lookup");
        var newKey = await a.CreateApiKeyAsync(a.ApplicationId, "test");
        Assert.Equal(2, await a.CountAsync("SELECT verifier_version FROM api_keys WHERE id = @Id", new { newKey.Id }));

        // Then B authenticates it at once (it reads the token when it meets lookup v2), and B's new keys use v2
        await b.SendEmailCodeAsync("b-newkey", newKey.Secret);
        var madeOnB = await b.CreateApiKeyAsync(b.ApplicationId, "test");
        Assert.Equal(2, await b.CountAsync("SELECT verifier_version FROM api_keys WHERE id = @Id", new { madeOnB.Id }));

        // and v1 keys and the v1 operator token still authenticate on B
        await b.SendEmailCodeAsync("b-oldkey", oldKey.Secret);
        Assert.Equal(new[] { 1, 2 }, (await b.HsmStatusAsync()).Versions("lookup"));

        // When the seed KEK and the seal key are rotated on A
        await a.RotateAsync("seed-kek");
        await a.RotateAsync("seal");

        // Then the factor enrolled on B is re-wrapped to v2 in the background and still verifies on B
        await a.WaitForCountAsync($"SELECT COUNT(*) FROM totp_factors WHERE kek_version = 2 AND user_key IN (SELECT identity_id FROM identity_contacts WHERE value = '{appUser}')", 1);
        a.Clock.Advance(TimeSpan.FromSeconds(30));
        await b.VerifyAppAsync(appUser, Rfc6238.CodeAt(seed, b.Now())).ExpectVerifiedAsync("APP");

        // and a body sealed on A under seal v2 is readable on B
        var sealedOnA = await a.SendEmailCodeAsync("a-seal");
        Assert.Equal(2, await a.SealVersionOfLatestMessageAsync(sealedOnA.User));
        Assert.Equal(sealedOnA.Code, await b.LatestCodeAsync(sealedOnA.User, "EMAIL"));

        // and B's own new data uses every v2 key
        var lastOnB = await b.SendEmailCodeAsync("b-last");
        Assert.Equal(2, await b.ChallengeKeyVersionAsync(lastOnB.User));
        Assert.Equal(2, await b.SealVersionOfLatestMessageAsync(lastOnB.User));
        var enrolledOnB = FactorApi.NewUser("b-app2");
        await b.EnrolAsync(enrolledOnB);
        Assert.Equal(2, await b.CountAsync("SELECT kek_version FROM totp_factors WHERE user_key IN (SELECT identity_id FROM identity_contacts WHERE value = @enrolledOnB)", new { enrolledOnB }));
    }
}
