using System.Net;
using System.Text.Json;
using DevRift.Hsm.Api.Tests.Audit;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Api.Tests.Metrics;

namespace DevRift.Hsm.Api.Tests.Fraud;

/// <summary>
/// The fraud guard on SQLite and PostgreSQL: allowed countries, the shipped high-cost ranges and an application's own
/// blocked ranges, premium-rate and shared-cost number types, velocity per country calling code and per number range,
/// shadow and off modes, the counts in /admin/v1 and /metrics, and the settings' validation. Every refusal changes
/// nothing but the guard's own counts and audit record.
/// </summary>
public sealed class FraudGuardTests(FakeClockServers servers) : IClassFixture<FakeClockServers>
{
    private const string UkPremium = "+449098790000"; // Ofcom's drama range of 0909 premium-rate numbers: shipped +449
    private const string JapanPremium = "+81990123456"; // libphonenumber: PREMIUM_RATE, on no list
    private const string FranceSharedCost = "+33884012345"; // libphonenumber: SHARED_COST, on no list
    private const string Satellite = "+881612345678"; // Iridium, shipped +881
    private const string UkMobile = "+447400123456";

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_number_outside_allowed_countries_is_403_country_not_allowed_and_nothing_is_stored(Db db)
    {
        // Given an application that allows only US numbers
        var server = await servers.GetAsync(db);
        var (app, key) = await server.CreateApplicationWithKeyAsync("Countries", "standard", new { allowed_countries = new[] { "US" } });
        var tables = await server.SendTableCountsAsync();

        // When a UK mobile number and a satellite number (in no country) are sent SMS and CALL codes
        var rows = await server.RowsDuringAsync(async () =>
        {
            using var uk = await server.SendCodeAsync(UkMobile, "SMS", key);
            await uk.AssertProblemAsync(HttpStatusCode.Forbidden, "country_not_allowed", "user");
            using var satellite = await server.SendCodeAsync(Satellite, "CALL", key);
            await satellite.AssertProblemAsync(HttpStatusCode.Forbidden, "country_not_allowed", "user");
        });

        // Then nothing was stored or queued, and each refusal is counted and audited with its rule and country
        Assert.Equal(tables, await server.SendTableCountsAsync());
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM outbox WHERE application_id = @app AND destination IN (@UkMobile, @Satellite)", new { app, UkMobile, Satellite }));
        var blocks = rows.Where(r => r.Event == "fraud_guard.block").ToList();
        Assert.Equal([("GB", "SMS"), ("001", "CALL")], blocks.Select(r => (r.DetailJson.GetProperty("country").GetString(), r.DetailJson.GetProperty("type").GetString())));
        Assert.All(blocks, r => Assert.Equal(("country_not_allowed", "allowed_countries", "country"),
            (r.Outcome, r.DetailJson.GetProperty("rule").GetString(), r.DetailJson.GetProperty("reason").GetString())));
        Assert.Equal([UkMobile, Satellite], blocks.Select(r => r.Subject));
        var guard = await FraudGuardAsync(server, app);
        Assert.Equal(2, Count(guard, "test", "blocked", "country"));
        Assert.Equal(["US"], guard.GetProperty("allowed_countries").EnumerateArray().Select(c => c.GetString()));

        // And a US number and an EMAIL send still go out
        await server.SendAcceptedAsync(TestUsers.NewPhone(), "SMS", key);
        await server.SendAcceptedAsync(TestUsers.NewEmail("countries"), "EMAIL", key);
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Shipped_and_own_blocked_ranges_and_premium_or_shared_cost_numbers_are_403_destination_blocked(Db db)
    {
        // Given an application (enforce, the default) that adds its own range +4474001 to the shipped list
        var server = await servers.GetAsync(db);
        var (app, key) = await server.CreateApplicationWithKeyAsync("Ranges", "standard", new { blocked_ranges = new[] { "+4474001" } });
        Assert.Equal("enforce", (await FraudGuardAsync(server, app)).GetProperty("fraud_guard_mode").GetString());
        var tables = await server.SendTableCountsAsync();
        var before = await ScrapeAsync(server);

        // When codes go to a shipped premium range, the application's range, and numbers libphonenumber types as high-cost
        var sends = new[] { (UkPremium, "SMS"), (UkMobile, "CALL"), (JapanPremium, "WHATSAPP"), (FranceSharedCost, "SMS") };
        var rows = await server.RowsDuringAsync(async () =>
        {
            foreach (var (to, type) in sends)
            {
                using var refused = await server.SendCodeAsync(to, type, key);
                await refused.AssertProblemAsync(HttpStatusCode.Forbidden, "destination_blocked", "user");
            }
        });

        // Then nothing was stored, and each refusal names the rule that matched (never the whole number)
        Assert.Equal(tables, await server.SendTableCountsAsync());
        var blocks = rows.Where(r => r.Event == "fraud_guard.block").ToList();
        Assert.Equal(
            [("shipped_ranges", "+449"), ("blocked_ranges", "+4474001"), ("number_type", "premium_rate"), ("number_type", "shared_cost")],
            blocks.Select(r => (r.DetailJson.GetProperty("rule").GetString(), r.DetailJson.GetProperty("matched").GetString())));
        Assert.All(blocks, r => Assert.Equal(("destination_blocked", "range"), (r.Outcome, r.DetailJson.GetProperty("reason").GetString())));
        Assert.Equal(4, rows.Count(r => r.Event == "challenge.send" && r.Outcome == "destination_blocked"));

        // And the counts show exactly four range blocks, in the operator API and in /metrics
        var guard = await FraudGuardAsync(server, app);
        Assert.Equal(4, Count(guard, "test", "blocked", "range"));
        Assert.Equal(0, Count(guard, "test", "would_block", "range") + Count(guard, "live", "blocked", "range"));
        Assert.Contains("+881", guard.GetProperty("shipped_ranges").EnumerateArray().Select(r => r.GetString()));
        var (exit, stdout, _) = await server.CliAsync("fraud-guard", "show", app);
        Assert.Equal(0, exit);
        Assert.Equal(4, Count(JsonDocument.Parse(stdout).RootElement, "test", "blocked", "range"));
        var after = await ScrapeAsync(server);
        Assert.Equal(4, after.Value("devrift_fraud_guard_total", ("reason", "range"), ("decision", "blocked"))
            - before.Value("devrift_fraud_guard_total", ("reason", "range"), ("decision", "blocked")));
        Assert.Equal(0, after.Value("devrift_fraud_guard_total", ("reason", "country"), ("decision", "blocked"))
            - before.Value("devrift_fraud_guard_total", ("reason", "country"), ("decision", "blocked")));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Dual_with_a_blocked_phone_and_sms_backup_codes_to_one_are_refused_and_email_is_unaffected(Db db)
    {
        // Given an enterprise application with the default guard
        var server = await servers.GetAsync(db);
        var (_, key) = await server.CreateApplicationWithKeyAsync("Dual", "enterprise");
        var email = TestUsers.NewEmail("dual");
        var tables = await server.SendTableCountsAsync();

        // When a DUAL code and SMS backup codes go to a premium-rate number
        using var dual = await server.SendCodeAsync($"{email}:{UkPremium}", "DUAL", key);
        using var backup = await server.PostCurlAsync("/v1/mfa/backup", $"User={UkPremium}, Type=SMS", key);

        // Then both are 403 destination_blocked: not even the email was sent, no backup set exists
        await dual.AssertProblemAsync(HttpStatusCode.Forbidden, "destination_blocked", "user");
        await backup.AssertProblemAsync(HttpStatusCode.Forbidden, "destination_blocked", "user");
        Assert.Equal(tables, await server.SendTableCountsAsync());
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM backup_sets WHERE user_key IN (SELECT identity_id FROM identity_contacts WHERE value = @UkPremium)", new { UkPremium }));

        // And the same email alone is sent
        await server.SendAcceptedAsync(email, "EMAIL", key);
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM outbox WHERE destination = @email", new { email }));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Shadow_mode_sends_and_records_what_it_would_have_blocked(Db db)
    {
        // Given an application in shadow mode that allows only US numbers
        var server = await servers.GetAsync(db);
        var (app, key) = await server.CreateApplicationWithKeyAsync("Shadow", "standard", new { fraud_guard_mode = "shadow", allowed_countries = new[] { "US" } });
        var before = await ScrapeAsync(server);

        // When a premium-rate US number and a UK mobile are sent codes
        var rows = await server.RowsDuringAsync(async () =>
        {
            await server.SendAcceptedAsync("+19005550123", "SMS", key);
            await server.SendAcceptedAsync(UkMobile, "SMS", key);
        });

        // Then both went out, each recorded as a would-block with the problem it would have answered
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM outbox WHERE application_id = @app AND destination = '+19005550123'", new { app }));
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM outbox WHERE application_id = @app AND destination = @UkMobile", new { app, UkMobile }));
        var shadow = rows.Where(r => r.Event == "fraud_guard.would_block").ToList();
        Assert.Equal([("destination_blocked", "+19005550123"), ("country_not_allowed", UkMobile)], shadow.Select(r => (r.Outcome, r.Subject)));
        Assert.DoesNotContain(rows, r => r.Event == "fraud_guard.block");
        Assert.Equal(2, rows.Count(r => r.Event == "challenge.send" && r.Outcome == "ok"));
        var guard = await FraudGuardAsync(server, app);
        Assert.Equal((1, 1, 0), (Count(guard, "test", "would_block", "range"), Count(guard, "test", "would_block", "country"), Count(guard, "test", "blocked", "range")));
        var after = await ScrapeAsync(server);
        Assert.Equal(1, after.Value("devrift_fraud_guard_total", ("reason", "country"), ("decision", "would_block"))
            - before.Value("devrift_fraud_guard_total", ("reason", "country"), ("decision", "would_block")));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Off_mode_checks_nothing_and_records_nothing(Db db)
    {
        // Given an application with the guard off, although its rules would refuse both numbers
        var server = await servers.GetAsync(db);
        var (app, key) = await server.CreateApplicationWithKeyAsync("Off", "standard",
            new { fraud_guard_mode = "off", allowed_countries = new[] { "US" }, blocked_ranges = new[] { "+4474001" }, velocity_per_prefix_per_hour = 1 });

        // When a premium-rate number and the blocked UK mobile are sent codes
        var rows = await server.RowsDuringAsync(async () =>
        {
            await server.SendAcceptedAsync(UkPremium, "SMS", key);
            await server.SendAcceptedAsync(UkMobile, "SMS", key);
        });

        // Then both went out and the guard wrote nothing
        Assert.DoesNotContain(rows, r => r.Event.StartsWith("fraud_guard.", StringComparison.Ordinal));
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM fraud_guard_counts WHERE application_id = @app", new { app }));
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM fraud_guard_velocity WHERE application_id = @app", new { app }));
        Assert.Equal(2, await server.CountAsync("SELECT COUNT(*) FROM outbox WHERE application_id = @app", new { app }));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task The_send_after_the_limit_per_country_code_in_the_hour_is_429_until_the_next_hour(Db db)
    {
        // Given three sends per country calling code per hour, and a clock at ten past a full hour
        var server = await servers.GetAsync(db);
        var (app, key) = await server.CreateApplicationWithKeyAsync("Prefix", "standard", new { velocity_per_prefix_per_hour = 3 });
        AtTenPastTheHour(server);
        var us = Enumerable.Range(0, 4).Select(_ => TestUsers.NewPhone()).ToList();

        // When three different +1 numbers are sent codes, then a fourth
        foreach (var phone in us.Take(3))
        {
            await server.SendAcceptedAsync(phone, "SMS", key);
        }

        var tables = await server.SendTableCountsAsync();
        using var fourth = await server.SendCodeAsync(us[3], "SMS", key);

        // Then the fourth is 429 rate_limited until the hour ends (50 minutes), and nothing of it was stored
        await fourth.AssertProblemAsync(HttpStatusCode.TooManyRequests, "rate_limited", "user");
        Assert.Equal(TimeSpan.FromMinutes(50), fourth.Headers.RetryAfter?.Delta);
        Assert.Equal(tables, await server.SendTableCountsAsync());
        Assert.Equal(1, Count(await FraudGuardAsync(server, app), "test", "blocked", "velocity"));

        // And another country's numbers are not limited by it, and the +1 number goes out in the next hour
        await server.SendAcceptedAsync(UkMobile, "SMS", key);
        server.Clock!.Advance(TimeSpan.FromMinutes(50));
        await server.SendAcceptedAsync(us[3], "SMS", key);
        Assert.Equal(1, Count(await FraudGuardAsync(server, app), "test", "blocked", "velocity"));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task The_send_after_the_limit_per_number_range_is_429_and_other_ranges_go_out(Db db)
    {
        // Given two sends per range (the number without its last three digits) per hour
        var server = await servers.GetAsync(db);
        var (app, key) = await server.CreateApplicationWithKeyAsync("Range", "standard", new { velocity_per_range_per_hour = 2 });
        AtTenPastTheHour(server);

        // When three numbers of the range +14155559 are sent codes
        await server.SendAcceptedAsync("+14155559101", "SMS", key);
        await server.SendAcceptedAsync("+14155559102", "CALL", key);
        using var third = await server.SendCodeAsync("+14155559103", "SMS", key);

        // Then the third is 429 rate_limited, and a number of another range goes out
        await third.AssertProblemAsync(HttpStatusCode.TooManyRequests, "rate_limited", "user");
        Assert.Equal(TimeSpan.FromMinutes(50), third.Headers.RetryAfter?.Delta);
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM outbox WHERE application_id = @app AND destination = '+14155559103'", new { app }));
        await server.SendAcceptedAsync("+14155558101", "SMS", key);
        var guard = await FraudGuardAsync(server, app);
        Assert.Equal((1, 2), (Count(guard, "test", "blocked", "velocity"), guard.GetProperty("velocity_per_range_per_hour").GetInt32()));
        var limited = Assert.Single(await server.AuditRowsAsync(), r => r.ApplicationId == app && r.Event == "fraud_guard.block");
        Assert.Equal("velocity_per_range_per_hour", limited.DetailJson.GetProperty("rule").GetString());
    }

    [Fact]
    public async Task Racing_sends_on_two_nodes_share_one_velocity_count()
    {
        // Given two nodes of one site on PostgreSQL, and an application allowed five sends per country code per hour
        await using var a = await ApplianceServer.StartAsync(Db.Postgres, fakeClock: true);
        await using var b = await ApplianceServer.StartAsync(Db.Postgres, sameSiteAs: a);
        var (app, key) = await a.CreateApplicationWithKeyAsync("Nodes", "standard", new { velocity_per_prefix_per_hour = 5 });
        var phones = Enumerable.Range(0, 12).Select(_ => TestUsers.NewPhone()).ToList();

        // When twelve +1 numbers are sent codes at once, half through each node
        var responses = await Task.WhenAll(phones.Select((phone, i) => (i % 2 == 0 ? a : b).SendCodeAsync(phone, "SMS", key)));

        // Then exactly five were accepted and seven refused 429 rate_limited, counted once each
        try
        {
            Assert.Equal(5, responses.Count(r => r.StatusCode == HttpStatusCode.Accepted));
            foreach (var refused in responses.Where(r => r.StatusCode != HttpStatusCode.Accepted))
            {
                await refused.AssertProblemAsync(HttpStatusCode.TooManyRequests, "rate_limited", "user");
            }

            Assert.Equal(5, await a.CountAsync("SELECT COUNT(*) FROM challenges WHERE application_id = @app", new { app }));
            Assert.Equal(7, Count(await FraudGuardAsync(b, app), "test", "blocked", "velocity"));
            Assert.Equal(5, await a.CountAsync("SELECT sends FROM fraud_guard_velocity WHERE application_id = @app AND scope = 'prefix' AND bucket = '+1'", new { app }));
        }
        finally
        {
            foreach (var response in responses)
            {
                response.Dispose();
            }
        }
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Bad_fraud_guard_settings_are_400_naming_the_setting_and_change_nothing(Db db)
    {
        // Given an application
        var server = await servers.GetAsync(db);
        var (app, _) = await server.CreateApplicationWithKeyAsync("Settings", "standard");
        var bad = new (object Patch, string Param)[]
        {
            (new { allowed_countries = new[] { "GB", "UK" } }, "allowed_countries"),
            (new { allowed_countries = new[] { "GBR" } }, "allowed_countries"),
            (new { fraud_guard_mode = "block" }, "fraud_guard_mode"),
            (new { blocked_ranges = new[] { "4470" } }, "blocked_ranges"),
            (new { blocked_ranges = new[] { "+44x" } }, "blocked_ranges"),
            (new { blocked_ranges = new[] { "+" } }, "blocked_ranges"),
            (new { velocity_per_prefix_per_hour = -1 }, "velocity_per_prefix_per_hour"),
            (new { velocity_per_range_per_hour = -1 }, "velocity_per_range_per_hour"),
        };

        // When each bad value is patched, Then 400 naming the setting
        foreach (var (patch, param) in bad)
        {
            using var response = await server.PatchSettingsAsync(app, patch);
            await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", param);
        }

        // And the settings are the defaults still; good values are stored normalised
        var guard = await FraudGuardAsync(server, app);
        Assert.Equal(("enforce", 0, 0), (guard.GetProperty("fraud_guard_mode").GetString(), guard.GetProperty("allowed_countries").GetArrayLength(), guard.GetProperty("blocked_ranges").GetArrayLength()));
        using var good = await server.PatchSettingsAsync(app, new { fraud_guard_mode = "Shadow", allowed_countries = new[] { "gb", "US", "GB" }, blocked_ranges = new[] { "+44 70" } });
        var settings = await good.AssertJsonAsync(HttpStatusCode.OK, "settings");
        Assert.Equal("shadow", settings.GetProperty("fraud_guard_mode").GetString());
        Assert.Equal(["GB", "US"], settings.GetProperty("allowed_countries").EnumerateArray().Select(c => c.GetString()));
        Assert.Equal(["+4470"], settings.GetProperty("blocked_ranges").EnumerateArray().Select(c => c.GetString()));
    }

    /// <summary>Moves the fake clock to ten minutes past the next full hour (velocity windows are clock hours).</summary>
    private static void AtTenPastTheHour(ApplianceServer server)
    {
        var ms = server.Clock!.GetUtcNow().ToUnixTimeMilliseconds() % 3_600_000;
        server.Clock.Advance(TimeSpan.FromMilliseconds(3_600_000 - ms) + TimeSpan.FromMinutes(10));
    }

    private static async Task<JsonElement> FraudGuardAsync(ApplianceServer server, string app)
    {
        using var admin = server.AdminClient();
        using var response = await admin.GetAsync($"/admin/v1/applications/{app}/fraud-guard");
        var guard = await response.AssertJsonAsync(HttpStatusCode.OK, "fraud_guard");
        Assert.Equal(app, guard.GetProperty("application_id").GetString());
        return guard;
    }

    private static long Count(JsonElement guard, string mode, string decision, string reason) =>
        guard.GetProperty("counts").GetProperty(mode).GetProperty(decision).GetProperty(reason).GetInt64();

    private static async Task<PrometheusText> ScrapeAsync(ApplianceServer server)
    {
        using var client = server.NewClient(null);
        return PrometheusText.Parse(await client.GetStringAsync(new Uri("/metrics", UriKind.Relative)));
    }
}
