using System.Net;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Factors;

/// <summary>Test 7: pending expiry, re-enrolment while active, removal, and the factors summary.</summary>
public sealed class FactorLifecycleTests
{
    [Fact]
    public async Task A_pending_enrolment_not_confirmed_within_15_minutes_can_no_longer_be_confirmed()
    {
        // Given a pending enrolment
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite, fakeClock: true);
        var user = FactorApi.NewUser("expiry");
        Assert.Equal("none", await AppStatusAsync(server, user));
        var e = await server.EnrolAsync(user);
        Assert.Equal(server.Now().AddMinutes(15).UtcDateTime, e.Body.GetProperty("expires_at").GetDateTime());
        Assert.Equal("pending", await AppStatusAsync(server, user));

        // When 14 minutes pass, it is still pending; when 16 minutes have passed
        server.Clock!.Advance(TimeSpan.FromMinutes(14));
        Assert.Equal("pending", await AppStatusAsync(server, user));
        server.Clock.Advance(TimeSpan.FromMinutes(2));

        // Then a code that would be valid now is refused as not_enrolled, and the status is none
        await server.VerifyAppAsync(user, Rfc6238.CodeAt(e.Seed, server.Now())).ExpectProblemAsync(HttpStatusCode.Unauthorized, "not_enrolled");
        Assert.Equal("none", await AppStatusAsync(server, user));

        // and a new enrolment can still be made and confirmed
        var again = await server.EnrolAsync(user);
        await server.VerifyAppAsync(user, Rfc6238.CodeAt(again.Seed, server.Now())).ExpectVerifiedAsync("APP");
        Assert.Equal("active", await AppStatusAsync(server, user));
    }

    [Fact]
    public async Task Re_enrolment_keeps_the_old_factor_until_the_new_one_is_confirmed()
    {
        // Given an active factor
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite, fakeClock: true);
        var user = FactorApi.NewUser("reenrol");
        var old = await server.EnrolActiveAsync(user);
        var factors = await server.FactorsAsync(user);
        Assert.Equal("active", factors.GetProperty("app").GetProperty("status").GetString());
        var confirmedAt = factors.GetProperty("app").GetProperty("confirmed_at").GetDateTime();

        // When the user enrols again
        server.Clock!.Advance(TimeSpan.FromSeconds(30));
        var fresh = await server.EnrolAsync(user);
        Assert.NotEqual(old.Secret, fresh.Secret);

        // Then the summary still shows the active factor, and the old seed's code still works before confirmation
        factors = await server.FactorsAsync(user);
        Assert.Equal("active", factors.GetProperty("app").GetProperty("status").GetString());
        Assert.Equal(confirmedAt, factors.GetProperty("app").GetProperty("confirmed_at").GetDateTime());
        await server.VerifyAppAsync(user, Rfc6238.CodeAt(old.Seed, server.Now())).ExpectVerifiedAsync("APP");

        // When the new seed's code confirms the new factor
        server.Clock.Advance(TimeSpan.FromSeconds(30));
        await server.VerifyAppAsync(user, Rfc6238.CodeAt(fresh.Seed, server.Now())).ExpectVerifiedAsync("APP");

        // Then the old seed's next code is refused and the new seed keeps working
        server.Clock.Advance(TimeSpan.FromSeconds(30));
        await server.VerifyAppAsync(user, Rfc6238.CodeAt(old.Seed, server.Now())).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        await server.VerifyAppAsync(user, Rfc6238.CodeAt(fresh.Seed, server.Now())).ExpectVerifiedAsync("APP");
        factors = await server.FactorsAsync(user);
        Assert.Equal("active", factors.GetProperty("app").GetProperty("status").GetString());
        Assert.True(factors.GetProperty("app").GetProperty("confirmed_at").GetDateTime() > confirmedAt);
    }

    [Fact]
    public async Task Removing_the_app_factor_makes_APP_verification_not_enrolled()
    {
        // Given an active factor
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite, fakeClock: true);
        var e = await server.EnrolActiveAsync(FactorApi.Ada);
        Assert.Equal("active", await AppStatusAsync(server, FactorApi.Ada));

        // When it is removed with the documented DELETE
        using (var deleted = await server.Client.DeleteAsync("/v1/mfa/app?user=ada@example.com"))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        // Then an APP verify is not_enrolled, and the summary says none
        server.Clock!.Advance(TimeSpan.FromSeconds(30));
        await server.VerifyAppAsync(FactorApi.Ada, Rfc6238.CodeAt(e.Seed, server.Now())).ExpectProblemAsync(HttpStatusCode.Unauthorized, "not_enrolled");
        Assert.Equal("none", await AppStatusAsync(server, FactorApi.Ada));
    }

    private static async Task<string> AppStatusAsync(ApplianceServer server, string user) =>
        (await server.FactorsAsync(user)).GetProperty("app").GetProperty("status").GetString()!;
}
