using System.Net;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Factors;

/// <summary>One server on the fake clock for a test class whose tests never move the clock.</summary>
public sealed class FrozenClockServer : IAsyncLifetime
{
    public ApplianceServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await ApplianceServer.StartAsync(Db.Sqlite, fakeClock: true);

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>Test 2: the TOTP window (one step back, one forward) and replay rules, on a frozen clock.</summary>
public sealed class TotpWindowTests(FrozenClockServer fixture) : IClassFixture<FrozenClockServer>
{
    private ApplianceServer Server => fixture.Server;

    [Theory]
    [InlineData(-1)]
    [InlineData(0)]
    [InlineData(1)]
    public async Task A_code_of_the_previous_current_or_next_step_confirms_a_fresh_enrolment(int stepOffset)
    {
        // Given a fresh enrolment
        var user = FactorApi.NewUser("window");
        var e = await Server.EnrolAsync(user);

        // When the user types the code of step T + offset
        var code = Rfc6238.CodeAt(e.Seed, Server.Now(), stepOffset);

        // Then it verifies and the factor is active
        await Server.VerifyAppAsync(user, code).ExpectVerifiedAsync("APP");
        Assert.Equal("active", (await Server.FactorsAsync(user)).GetProperty("app").GetProperty("status").GetString());
    }

    [Theory]
    [InlineData(-2)]
    [InlineData(2)]
    public async Task A_code_two_steps_away_is_invalid_on_a_pending_and_on_an_active_factor(int stepOffset)
    {
        // Given a fresh (pending) enrolment
        var user = FactorApi.NewUser("outside");
        var e = await Server.EnrolAsync(user);

        // When the code of step T ± 2 is typed, then it is rejected as invalid_code
        await Server.VerifyAppAsync(user, Rfc6238.CodeAt(e.Seed, Server.Now(), stepOffset)).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");

        // Given the factor confirmed with the T − 1 code (so T, T + 1 are still usable)
        await Server.VerifyAppAsync(user, Rfc6238.CodeAt(e.Seed, Server.Now(), -1)).ExpectVerifiedAsync("APP");

        // When the code of step T ± 2 is typed on the active factor, then it is rejected as invalid_code
        await Server.VerifyAppAsync(user, Rfc6238.CodeAt(e.Seed, Server.Now(), stepOffset)).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");

        // and the window itself still works
        await Server.VerifyAppAsync(user, Rfc6238.CodeAt(e.Seed, Server.Now())).ExpectVerifiedAsync("APP");
    }

    [Fact]
    public async Task Steps_are_accepted_in_increasing_order_and_never_twice()
    {
        // Given an enrolment
        var user = FactorApi.NewUser("order");
        var e = await Server.EnrolAsync(user);
        var now = Server.Now();

        // When T − 1, then T, then T + 1 are typed, then each verifies (each is newer than the last used step)
        await Server.VerifyAppAsync(user, Rfc6238.CodeAt(e.Seed, now, -1)).ExpectVerifiedAsync("APP");
        await Server.VerifyAppAsync(user, Rfc6238.CodeAt(e.Seed, now, 0)).ExpectVerifiedAsync("APP");
        await Server.VerifyAppAsync(user, Rfc6238.CodeAt(e.Seed, now, 1)).ExpectVerifiedAsync("APP");

        // Then any of them again is refused
        foreach (var offset in new[] { 1, 0, -1 })
        {
            await Server.VerifyAppAsync(user, Rfc6238.CodeAt(e.Seed, now, offset)).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        }
    }

    [Fact]
    public async Task A_replayed_code_fails_and_an_older_step_after_a_newer_one_fails()
    {
        // Given an active factor whose current code T was just used
        var user = FactorApi.NewUser("replay");
        var e = await Server.EnrolAsync(user);
        var now = Server.Now();
        var current = Rfc6238.CodeAt(e.Seed, now);
        await Server.VerifyAppAsync(user, current).ExpectVerifiedAsync("APP");

        // When the same code is sent again, then 401 invalid_code
        await Server.VerifyAppAsync(user, current).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");

        // When the T − 1 code (inside the window, but older than the used step) is sent, then 401 invalid_code
        await Server.VerifyAppAsync(user, Rfc6238.CodeAt(e.Seed, now, -1)).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");

        // Then replays of real codes are not counted as guesses toward the lockout
        var lockout = (await Server.FactorsAsync(user)).GetProperty("lockout");
        Assert.Equal(0, lockout.GetProperty("consecutive_failures").GetInt32());
        Assert.False(lockout.GetProperty("locked").GetBoolean());
    }
}
