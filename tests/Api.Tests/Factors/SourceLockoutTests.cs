using System.Globalization;
using System.Net;
using System.Text;
using Dapper;
using DevRift.Hsm.Api.Tests.Audit;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Factors;

/// <summary>
/// Issue 15, part 3: under <c>lockout_profile</c> source_aware (the default of new applications) failed APP, BACKUP and
/// KEY checks are throttled per source (API key and client_ip, or API key and user), the user lockout engages only on
/// failures from many sources or far more attempts, and a source that has succeeded before is never refused by it.
/// </summary>
public sealed class SourceLockoutTests(FakeClockServers servers) : IClassFixture<FakeClockServers>
{
    private const string Flooder = "198.51.100.1";
    private const string Home = "203.0.113.7";

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_flood_of_wrong_codes_from_one_source_does_not_stop_the_user_from_another_source(Db db)
    {
        // Given an active factor
        var (server, user, e) = await ActiveFactorAsync(db, "flood");
        var wrong = Rfc6238.WrongCode(e.Seed, server.Now());

        // When 30 wrong codes come from one address: five are judged, counting down, and the rest refused unjudged
        for (var i = 1; i <= 30; i++)
        {
            using var response = await server.VerifyAppFromAsync(user, wrong, Flooder);
            if (i <= 5)
            {
                var problem = await response.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_code", "code");
                Assert.Equal(5 - i, problem.GetProperty("attempts_remaining").GetInt32());
            }
            else
            {
                await response.AssertProblemAsync(HttpStatusCode.TooManyRequests, "too_many_attempts", "client_ip");
                Assert.InRange(RetryAfter(response), 59, 60);
            }
        }

        // Then the flooding address stays refused even with the right code, and that refusal changes nothing
        var right = Rfc6238.CodeAt(e.Seed, server.Now());
        var before = await LockoutRowsAsync(server, user);
        var refused = await server.RowsDuringAsync(async () =>
            await server.VerifyAppFromAsync(user, right, Flooder).ExpectProblemAsync(HttpStatusCode.TooManyRequests, "too_many_attempts"));
        Assert.Equal(before, await LockoutRowsAsync(server, user));
        Assert.DoesNotContain(refused, r => r.Event == "lockout.engaged");
        var refusal = refused.OnlyEvent("verification");
        Assert.Equal(("too_many_attempts", Flooder), (refusal.Outcome, refusal.DetailJson.GetProperty("client_ip").GetString()));

        // and the user, from another address, verifies with that same right code (its step was not consumed)
        await server.VerifyAppFromAsync(user, right, Home).ExpectVerifiedAsync("APP");
        Assert.False((await server.FactorsAsync(user)).GetProperty("lockout").GetProperty("locked").GetBoolean());

        // and the database holds the five counted failures and one block of the flooder, and the success of the other address
        var flooder = await SourceAsync(server, user, Flooder);
        Assert.Equal((5, 1, 0), (flooder.Failures, flooder.Blocks, flooder.LastSuccessAt));
        Assert.Equal(server.Now().AddSeconds(60).ToUnixTimeMilliseconds(), flooder.BlockedUntil);
        Assert.Equal(server.Now().ToUnixTimeMilliseconds(), (await SourceAsync(server, user, Home)).LastSuccessAt);

        // and one lockout.engaged record, at source level, names the address
        var engaged = Assert.Single(await server.AuditRowsAsync(), r => r.Event == "lockout.engaged" && r.Subject == user);
        Assert.Equal("source_blocked", engaged.Outcome);
        Assert.Equal(("source", Flooder, Flooder, 5), (engaged.DetailJson.GetProperty("level").GetString(), engaged.DetailJson.GetProperty("source").GetString(),
            engaged.DetailJson.GetProperty("client_ip").GetString(), engaged.DetailJson.GetProperty("source_failures").GetInt32()));

        // When the block has passed and five more wrong codes come from the flooder, then its next refusal lasts twice as long
        server.Clock!.Advance(TimeSpan.FromSeconds(61));
        wrong = Rfc6238.WrongCode(e.Seed, server.Now());
        for (var i = 0; i < 5; i++)
        {
            await server.VerifyAppFromAsync(user, wrong, Flooder).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        }

        using var again = await server.VerifyAppFromAsync(user, wrong, Flooder);
        await again.AssertProblemAsync(HttpStatusCode.TooManyRequests, "too_many_attempts", "client_ip");
        Assert.InRange(RetryAfter(again), 119, 120);
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Failures_from_many_sources_lock_the_user_but_a_known_source_still_verifies(Db db)
    {
        // Given an active factor, and one address that has succeeded for the user
        var (server, user, e) = await ActiveFactorAsync(db, "many");
        await server.VerifyAppFromAsync(user, Rfc6238.CodeAt(e.Seed, server.Now()), Home).ExpectVerifiedAsync("APP");
        server.Clock!.Advance(TimeSpan.FromSeconds(30));

        // When one wrong code comes from each of three other addresses (user_lockout_sources = 3)
        var wrong = Rfc6238.WrongCode(e.Seed, server.Now());
        foreach (var ip in (string[])["198.51.100.1", "198.51.100.2", "198.51.100.3"])
        {
            var problem = await server.VerifyAppFromAsync(user, wrong, ip).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
            Assert.Equal(4, problem.GetProperty("attempts_remaining").GetInt32());
        }

        // Then the right code from a fourth, unknown address is refused: the user is locked for lockout_seconds
        var right = Rfc6238.CodeAt(e.Seed, server.Now());
        using (var locked = await server.VerifyAppFromAsync(user, right, "198.51.100.4"))
        {
            await locked.AssertProblemAsync(HttpStatusCode.TooManyRequests, "too_many_attempts", "user");
            Assert.InRange(RetryAfter(locked), 299, 300);
        }

        var lockout = (await server.FactorsAsync(user)).GetProperty("lockout");
        Assert.True(lockout.GetProperty("locked").GetBoolean());
        Assert.Equal(3, lockout.GetProperty("consecutive_failures").GetInt32());
        var engaged = Assert.Single(await server.AuditRowsAsync(), r => r.Event == "lockout.engaged" && r.Subject == user);
        Assert.Equal(("locked", "user", "198.51.100.3", 3), (engaged.Outcome, engaged.DetailJson.GetProperty("level").GetString(),
            engaged.DetailJson.GetProperty("source").GetString(), engaged.DetailJson.GetProperty("failing_sources").GetInt32()));

        // and the known address verifies with the right code
        await server.VerifyAppFromAsync(user, right, Home).ExpectVerifiedAsync("APP");

        // and its success does not lift the lock for unknown addresses
        server.Clock!.Advance(TimeSpan.FromSeconds(30));
        await server.VerifyAppFromAsync(user, Rfc6238.CodeAt(e.Seed, server.Now()), "198.51.100.4")
            .ExpectProblemAsync(HttpStatusCode.TooManyRequests, "too_many_attempts");
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Far_more_attempts_in_total_lock_the_user_even_from_few_sources(Db db)
    {
        // Given an application with user_lockout_threshold 7, and an active factor
        var server = await servers.GetAsync(db);
        var (_, key) = await server.CreateApplicationWithKeyAsync("Few sources", "standard", new { user_lockout_threshold = 7 });
        var user = FactorApi.NewUser("total");
        var e = await server.EnrolActiveAsync(user, key);
        server.Clock!.Advance(TimeSpan.FromSeconds(30));
        var wrong = Rfc6238.WrongCode(e.Seed, server.Now());

        // When five wrong codes come from one address (which is then refused) and two from another
        for (var i = 0; i < 5; i++)
        {
            await server.VerifyAppFromAsync(user, wrong, "198.51.100.1", key).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        }

        await server.VerifyAppFromAsync(user, wrong, "198.51.100.2", key).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        Assert.False((await server.FactorsAsync(user, key)).GetProperty("lockout").GetProperty("locked").GetBoolean());
        await server.VerifyAppFromAsync(user, wrong, "198.51.100.2", key).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");

        // Then the seventh failure locked the user: a third address is refused naming the user
        await server.VerifyAppFromAsync(user, Rfc6238.CodeAt(e.Seed, server.Now()), "198.51.100.3", key)
            .ExpectProblemAsync(HttpStatusCode.TooManyRequests, "too_many_attempts");
        Assert.True((await server.FactorsAsync(user, key)).GetProperty("lockout").GetProperty("locked").GetBoolean());
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_hard_lock_caused_by_other_sources_does_not_refuse_a_known_source(Db db)
    {
        // Given an application with hard_lock_threshold 6, and a user who has succeeded from one address
        var server = await servers.GetAsync(db);
        var (_, key) = await server.CreateApplicationWithKeyAsync("Hard lock", "standard", new { hard_lock_threshold = 6 });
        var user = FactorApi.NewUser("hard");
        var e = await server.EnrolActiveAsync(user, key);
        server.Clock!.Advance(TimeSpan.FromSeconds(30));
        await server.VerifyAppFromAsync(user, Rfc6238.CodeAt(e.Seed, server.Now()), Home, key).ExpectVerifiedAsync("APP");
        server.Clock.Advance(TimeSpan.FromSeconds(30));

        // When six wrong codes come from two other addresses (five, then one)
        var wrong = Rfc6238.WrongCode(e.Seed, server.Now());
        foreach (var ip in (string[])["198.51.100.1", "198.51.100.1", "198.51.100.1", "198.51.100.1", "198.51.100.1", "198.51.100.2"])
        {
            await server.VerifyAppFromAsync(user, wrong, ip, key).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        }

        // Then the user is hard locked for unknown addresses, and the known one still verifies
        var right = Rfc6238.CodeAt(e.Seed, server.Now());
        await server.VerifyAppFromAsync(user, right, "198.51.100.3", key).ExpectProblemWithParamAsync(HttpStatusCode.TooManyRequests, "too_many_attempts", "user");
        Assert.True((await server.FactorsAsync(user, key)).GetProperty("lockout").GetProperty("hard_locked").GetBoolean());
        await server.VerifyAppFromAsync(user, right, Home, key).ExpectVerifiedAsync("APP");
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Without_client_ip_each_API_key_is_its_own_source(Db db)
    {
        // Given an active factor and a second test key of the same application
        var server = await servers.GetAsync(db);
        var keyB = await server.CreateTestKeyAsync();
        var user = FactorApi.NewUser("keys");
        var e = await server.EnrolActiveAsync(user);
        server.Clock!.Advance(TimeSpan.FromSeconds(30));
        var wrong = Rfc6238.WrongCode(e.Seed, server.Now());

        // When five wrong codes come through key A without client_ip
        for (var remaining = 4; remaining >= 0; remaining--)
        {
            var problem = await server.VerifyAppAsync(user, wrong).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
            Assert.Equal(remaining, problem.GetProperty("attempts_remaining").GetInt32());
        }

        // Then key A is refused for this user, naming the user, and key B verifies the right code
        var right = Rfc6238.CodeAt(e.Seed, server.Now());
        using (var refused = await server.VerifyAppAsync(user, right))
        {
            await refused.AssertProblemAsync(HttpStatusCode.TooManyRequests, "too_many_attempts", "user");
            Assert.InRange(RetryAfter(refused), 59, 60);
        }

        await server.VerifyAppAsync(user, right, keyB).ExpectVerifiedAsync("APP");
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task IPv6_addresses_are_throttled_by_their_64_bit_prefix(Db db)
    {
        // Given an active factor
        var (server, user, e) = await ActiveFactorAsync(db, "ipv6");
        var wrong = Rfc6238.WrongCode(e.Seed, server.Now());

        // When five wrong codes come from five addresses of one /64
        for (var i = 1; i <= 5; i++)
        {
            await server.VerifyAppFromAsync(user, wrong, $"2001:db8:1:2::{i:x}").ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        }

        // Then a sixth address of that /64 is refused, and an address of the next /64 verifies
        var right = Rfc6238.CodeAt(e.Seed, server.Now());
        await server.VerifyAppFromAsync(user, right, "2001:DB8:1:2:ffff::1").ExpectProblemAsync(HttpStatusCode.TooManyRequests, "too_many_attempts");
        await server.VerifyAppFromAsync(user, right, "2001:db8:1:3::1").ExpectVerifiedAsync("APP");
        Assert.Equal(5, (await SourceAsync(server, user, "2001:db8:1:2::/64")).Failures);
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_malformed_client_ip_is_a_400_naming_it_and_changes_nothing(Db db)
    {
        // Given an active factor
        var (server, user, e) = await ActiveFactorAsync(db, "bad-ip");
        var right = Rfc6238.CodeAt(e.Seed, server.Now());
        var before = await LockoutRowsAsync(server, user);

        // When the right code comes with addresses that are not one IPv4 or IPv6 address, in each encoding
        foreach (var bad in (string[])["1.2.3", "203.0.113.7:443", "[2001:db8::1]", "fe80::1%eth0", "256.1.1.1", "localhost", "0x7f.0.0.1", ""])
        {
            await server.PostCurlAsync("/v1/mfa/verify", $"User={user}, Type=APP, Code={right}, Client-Ip={bad}")
                .ExpectProblemWithParamAsync(HttpStatusCode.BadRequest, "invalid_request", "client_ip");
        }

        await server.PostCurlAsync("/v1/mfa/verify", $"user={Uri.EscapeDataString(user)}&type=APP&code={right}&client_ip=1.2.3")
            .ExpectProblemWithParamAsync(HttpStatusCode.BadRequest, "invalid_request", "client_ip");
        await server.PostJsonAsync("/v1/mfa/verify", new { user, type = "APP", code = right, client_ip = "1.2.3.4.5" })
            .ExpectProblemWithParamAsync(HttpStatusCode.BadRequest, "invalid_request", "client_ip");
        await server.PostJsonAsync("/v1/mfa", new { user, type = "EMAIL", client_ip = "not-an-ip" })
            .ExpectProblemWithParamAsync(HttpStatusCode.BadRequest, "invalid_request", "client_ip");

        // Then nothing was counted or sent, and the right code still verifies (its step was not consumed)
        Assert.Equal(before, await LockoutRowsAsync(server, user));
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM challenges WHERE user_key = @user", new { user }));
        await server.VerifyAppFromAsync(user, right, Home).ExpectVerifiedAsync("APP");
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_send_accepts_client_ip_and_records_it_normalised_in_its_audit_detail(Db db)
    {
        var server = await servers.GetAsync(db);
        var user = TestUsers.NewEmail("send-ip");

        // When a code is sent with an IPv4-mapped IPv6 address in the documented comma form
        var rows = await server.RowsDuringAsync(async () =>
        {
            using var response = await server.PostCurlAsync("/v1/mfa", $"User={user}, Type=EMAIL, Client-Ip=::ffff:203.0.113.7");
            await response.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");
        });

        // Then the send's audit record carries the address as IPv4
        Assert.Equal(Home, rows.OnlyEvent("challenge.send").DetailJson.GetProperty("client_ip").GetString());
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Lockout_settings_out_of_range_are_400_naming_the_setting(Db db)
    {
        var server = await servers.GetAsync(db);
        foreach (var (patch, field) in ((object, string)[])
                 [
                     (new { lockout_profile = "lenient" }, "lockout_profile"),
                     (new { source_failure_threshold = 0 }, "source_failure_threshold"),
                     (new { source_delay_seconds = 600, source_delay_max_seconds = 300 }, "source_delay_max_seconds"),
                     (new { user_lockout_sources = 1 }, "user_lockout_sources"),
                     (new { user_lockout_window_seconds = 86_401 }, "user_lockout_window_seconds"),
                     (new { user_lockout_threshold = 100_001 }, "user_lockout_threshold"),
                 ])
        {
            using var response = await server.PatchSettingsAsync(server.ApplicationId, patch);
            await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", field);
        }

        // and the settings stayed as they were
        using var admin = server.NewClient(server.OperatorToken);
        using var read = await admin.GetAsync($"/admin/v1/applications/{server.ApplicationId}/settings");
        var settings = await read.AssertJsonAsync(HttpStatusCode.OK, "settings");
        Assert.Equal(("source_aware", 5, 3_600), (settings.GetProperty("lockout_profile").GetString(), settings.GetProperty("source_failure_threshold").GetInt32(),
            settings.GetProperty("source_delay_max_seconds").GetInt32()));
    }

    /// <summary>A fresh user whose app factor is confirmed (without client_ip), the clock then moved to the next step.</summary>
    private async Task<(ApplianceServer Server, string User, Enrolment Enrolment)> ActiveFactorAsync(Db db, string hint)
    {
        var server = await servers.GetAsync(db);
        var user = FactorApi.NewUser(hint);
        var e = await server.EnrolActiveAsync(user);
        server.Clock!.Advance(TimeSpan.FromSeconds(30));
        return (server, user, e);
    }

    private static int RetryAfter(HttpResponseMessage response)
    {
        Assert.True(response.Headers.TryGetValues("Retry-After", out var values), "no Retry-After header");
        return int.Parse(values!.Single(), CultureInfo.InvariantCulture);
    }

    /// <summary>Every lockout row of the user (the user's and its sources'), as text to compare before and after.</summary>
    private static async Task<string> LockoutRowsAsync(ApplianceServer server, string user)
    {
        await using var c = await server.OpenDatabaseAsync();
        var text = new StringBuilder();
        foreach (var row in await c.QueryAsync("SELECT failures, locks, locked_until, hard_locked FROM lockouts WHERE user_key IN (SELECT identity_id FROM identity_contacts WHERE value = @user)", new { user }))
        {
            text.AppendLine(string.Join(",", ((IDictionary<string, object>)row).Values));
        }

        foreach (var row in await c.QueryAsync(
                     "SELECT source, failures, blocks, blocked_until, last_failure_at, last_success_at FROM lockout_sources WHERE user_key IN (SELECT identity_id FROM identity_contacts WHERE value = @user) ORDER BY source", new { user }))
        {
            text.AppendLine(string.Join(",", ((IDictionary<string, object>)row).Values));
        }

        return text.ToString();
    }

    private static async Task<SourceRow> SourceAsync(ApplianceServer server, string user, string network)
    {
        await using var c = await server.OpenDatabaseAsync();
        return await c.QuerySingleAsync<SourceRow>(
            "SELECT failures, blocks, blocked_until AS BlockedUntil, last_success_at AS LastSuccessAt FROM lockout_sources WHERE user_key IN (SELECT identity_id FROM identity_contacts WHERE value = @user) AND source LIKE @pattern",
            new { user, pattern = "% " + network });
    }

    private sealed class SourceRow
    {
        public long Failures { get; init; }

        public long Blocks { get; init; }

        public long BlockedUntil { get; init; }

        public long LastSuccessAt { get; init; }
    }
}

/// <summary>Verify requests carrying the end user's address.</summary>
public static class SourceLockoutApi
{
    public static Task<HttpResponseMessage> VerifyAppFromAsync(this ApplianceServer server, string user, string code, string clientIp, string? bearer = null) =>
        server.PostCurlAsync("/v1/mfa/verify", $"User={user}, Type=APP, Code={code}, Client-Ip={clientIp}", bearer);

    public static async Task<System.Text.Json.JsonElement> ExpectProblemWithParamAsync(this Task<HttpResponseMessage> pending, HttpStatusCode status, string code, string param)
    {
        using var response = await pending;
        return await response.AssertProblemAsync(status, code, param);
    }
}
