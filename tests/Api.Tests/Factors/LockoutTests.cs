using System.Globalization;
using System.Net;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Factors;

/// <summary>
/// Test 4: the per-user lockout after consecutive failed APP and BACKUP checks, under <c>lockout_profile</c> strict (the
/// behaviour before sources, kept by applications stored without the setting). The source-aware default is pinned in
/// <see cref="SourceLockoutTests"/>.
/// </summary>
public sealed class LockoutTests
{
    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Five_wrong_codes_lock_for_300_s_and_the_next_lock_doubles_to_600_s(Db db)
    {
        // Given an active factor
        await using var server = await StrictServerAsync(db);
        var user = FactorApi.NewUser("lock");
        var e = await server.EnrolActiveAsync(user);
        server.Clock!.Advance(TimeSpan.FromSeconds(30));

        // When five wrong codes are sent, the fifth is still an ordinary 401 counting down to zero
        await SendWrongAppCodesAsync(server, user, e.Seed, 5);

        // Then even the right code gets 429 too_many_attempts with Retry-After ≈ 300
        await ExpectLockedAsync(server, user, e.Seed, 299, 300);
        server.Clock.Advance(TimeSpan.FromSeconds(150));
        await ExpectLockedAsync(server, user, e.Seed, 149, 150);

        // When the lock has expired (301 s after it began), then the right code verifies
        server.Clock.Advance(TimeSpan.FromSeconds(151));
        await server.VerifyAppAsync(user, Rfc6238.CodeAt(e.Seed, server.Now())).ExpectVerifiedAsync("APP");

        // When five more wrong codes are sent, then the lock lasts twice as long: 600 s
        server.Clock.Advance(TimeSpan.FromSeconds(30));
        await SendWrongAppCodesAsync(server, user, e.Seed, 5);
        await ExpectLockedAsync(server, user, e.Seed, 599, 600);
        server.Clock.Advance(TimeSpan.FromSeconds(301));
        await ExpectLockedAsync(server, user, e.Seed, 298, 299);
        server.Clock.Advance(TimeSpan.FromSeconds(300));
        await server.VerifyAppAsync(user, Rfc6238.CodeAt(e.Seed, server.Now())).ExpectVerifiedAsync("APP");
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Consecutive_locks_without_a_success_double_each_time(Db db)
    {
        // Given an active factor
        await using var server = await StrictServerAsync(db);
        var user = FactorApi.NewUser("lock-repeat");
        var e = await server.EnrolActiveAsync(user);
        server.Clock!.Advance(TimeSpan.FromSeconds(30));

        // When five wrong codes lock the user, and after the lock five more wrong codes, and again
        await SendWrongAppCodesAsync(server, user, e.Seed, 5);
        await ExpectLockedAsync(server, user, e.Seed, 299, 300);
        server.Clock.Advance(TimeSpan.FromSeconds(301));
        await SendWrongAppCodesAsync(server, user, e.Seed, 5);

        // Then the second lock is 600 s
        await ExpectLockedAsync(server, user, e.Seed, 599, 600);
        server.Clock.Advance(TimeSpan.FromSeconds(601));
        await SendWrongAppCodesAsync(server, user, e.Seed, 5);

        // and the third is 1200 s; after it the right code works
        await ExpectLockedAsync(server, user, e.Seed, 1199, 1200);
        server.Clock.Advance(TimeSpan.FromSeconds(1201));
        await server.VerifyAppAsync(user, Rfc6238.CodeAt(e.Seed, server.Now())).ExpectVerifiedAsync("APP");
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Failures_count_across_two_API_keys_of_the_application_and_lock_both(Db db)
    {
        // Given an active factor and a second test key of the same application
        await using var server = await StrictServerAsync(db);
        var keyB = await server.CreateTestKeyAsync();
        var user = FactorApi.NewUser("lock-keys");
        var e = await server.EnrolActiveAsync(user);
        server.Clock!.Advance(TimeSpan.FromSeconds(30));
        var wrong = Rfc6238.WrongCode(e.Seed, server.Now());

        // When three wrong codes come with key A and two with key B
        for (var i = 0; i < 3; i++)
        {
            await server.VerifyAppAsync(user, wrong).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        }

        var last = await server.VerifyAppAsync(user, wrong, keyB).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        Assert.Equal(1, last.GetProperty("attempts_remaining").GetInt32());
        await server.VerifyAppAsync(user, wrong, keyB).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");

        // Then the right code is refused with 429 through either key
        var right = Rfc6238.CodeAt(e.Seed, server.Now());
        await server.VerifyAppAsync(user, right).ExpectProblemAsync(HttpStatusCode.TooManyRequests, "too_many_attempts");
        await server.VerifyAppAsync(user, right, keyB).ExpectProblemAsync(HttpStatusCode.TooManyRequests, "too_many_attempts");
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Backup_code_failures_count_toward_the_same_lockout(Db db)
    {
        // Given an active factor and a backup set
        await using var server = await StrictServerAsync(db);
        var user = FactorApi.NewUser("lock-backup");
        var e = await server.EnrolActiveAsync(user);
        await server.GenerateBackupAsync(user);
        var codes = await server.LatestBackupCodesAsync(user);
        server.Clock!.Advance(TimeSpan.FromSeconds(30));
        var wrongApp = Rfc6238.WrongCode(e.Seed, server.Now());
        const string wrongBackup = "00000-0000-0000";
        Assert.DoesNotContain(wrongBackup, codes);

        // When three wrong app codes and two wrong backup codes are sent
        for (var i = 0; i < 3; i++)
        {
            await server.VerifyAppAsync(user, wrongApp).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        }

        for (var i = 0; i < 2; i++)
        {
            await server.VerifyBackupAsync(user, wrongBackup).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        }

        // Then both the right app code and a right backup code get 429, and neither is consumed
        await server.VerifyAppAsync(user, Rfc6238.CodeAt(e.Seed, server.Now())).ExpectProblemAsync(HttpStatusCode.TooManyRequests, "too_many_attempts");
        using (var locked = await server.VerifyBackupAsync(user, codes[0]))
        {
            await locked.AssertProblemAsync(HttpStatusCode.TooManyRequests, "too_many_attempts");
            Assert.NotNull(locked.Headers.RetryAfter);
        }

        var factors = await server.FactorsAsync(user);
        Assert.True(factors.GetProperty("lockout").GetProperty("locked").GetBoolean());
        Assert.Equal(10, factors.GetProperty("backup_codes").GetProperty("remaining").GetInt32());

        // When the lock expires, then the backup code works
        server.Clock.Advance(TimeSpan.FromSeconds(301));
        await server.VerifyBackupAsync(user, codes[0]).ExpectVerifiedAsync("BACKUP");
    }

    private static async Task<ApplianceServer> StrictServerAsync(Db db)
    {
        var server = await ApplianceServer.StartAsync(db, fakeClock: true);
        await server.PatchSettingsAsync("""{"lockout_profile":"strict"}""");
        return server;
    }

    private static async Task SendWrongAppCodesAsync(ApplianceServer server, string user, byte[] seed, int count)
    {
        var wrong = Rfc6238.WrongCode(seed, server.Now());
        for (var i = 1; i <= count; i++)
        {
            var problem = await server.VerifyAppAsync(user, wrong).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
            Assert.Equal(count - i, problem.GetProperty("attempts_remaining").GetInt32());
        }
    }

    private static async Task ExpectLockedAsync(ApplianceServer server, string user, byte[] seed, int minRetry, int maxRetry)
    {
        using var response = await server.VerifyAppAsync(user, Rfc6238.CodeAt(seed, server.Now()));
        await response.AssertProblemAsync(HttpStatusCode.TooManyRequests, "too_many_attempts");
        Assert.True(response.Headers.TryGetValues("Retry-After", out var values), "no Retry-After header");
        var retry = int.Parse(values!.Single(), CultureInfo.InvariantCulture);
        Assert.InRange(retry, minRetry, maxRetry);
    }
}
