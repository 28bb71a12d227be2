using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using Dapper;
using DevRift.Hsm.Api.Tests.FailClosed;
using DevRift.Hsm.Api.Tests.Factors;
using DevRift.Hsm.Api.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using OtpNet;

namespace DevRift.Hsm.Api.Tests.Metrics;

/// <summary>One server on the system clock (so that HSM latencies are real) for the metrics tests of a class.</summary>
public sealed class MetricsServer : IAsyncLifetime
{
    public ApplianceServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await ApplianceServer.StartAsync(Db.Sqlite);

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>GET /metrics: exact counter increments after known requests, histogram shape, gauges, escaping, cardinality.</summary>
public sealed class MetricsTests(MetricsServer fixture) : IClassFixture<MetricsServer>
{
    private ApplianceServer Server => fixture.Server;

    [Fact]
    public async Task Metrics_are_served_as_prometheus_text_0_0_4()
    {
        using var client = Server.NewClient(null);
        using var response = await client.GetAsync("/metrics");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains(response.Content.Headers.ContentType!.Parameters, p => p.Name == "version" && p.Value == "0.0.4");
        var metrics = PrometheusText.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("counter", metrics.Types["devrift_http_requests_total"]);
        Assert.Equal("histogram", metrics.Types["devrift_hsm_operation_duration_seconds"]);
        Assert.Equal("gauge", metrics.Types["devrift_outbox_depth"]);
    }

    [Fact]
    public async Task One_valid_and_two_invalid_app_verifies_count_exactly()
    {
        // Given a pending authenticator-app enrolment
        var user = FactorApi.NewUser("metrics-app");
        var e = await Server.EnrolAsync(user);
        var before = await ScrapeAsync();

        // When one valid code and two wrong ones are verified
        var code = new Totp(e.Seed).ComputeTotp(DateTime.UtcNow);
        await Server.VerifyAppAsync(user, code).ExpectVerifiedAsync("APP");
        await Server.VerifyAppAsync(user, ApiTestExtensions.WrongCode(code)).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        await Server.VerifyAppAsync(user, ApiTestExtensions.WrongCode(ApiTestExtensions.WrongCode(code))).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        var after = await ScrapeAsync();

        // Then the verification counters moved by exactly 1 valid and 2 invalid_code, and the request counters with them
        Assert.Equal(1, Delta(before, after, "devrift_verifications_total", ("type", "APP"), ("outcome", "valid")));
        Assert.Equal(2, Delta(before, after, "devrift_verifications_total", ("type", "APP"), ("outcome", "invalid_code")));
        Assert.Equal(1, Delta(before, after, "devrift_http_requests_total", ("route", "/v1/mfa/verify"), ("method", "POST"), ("status", "200")));
        Assert.Equal(2, Delta(before, after, "devrift_http_requests_total", ("route", "/v1/mfa/verify"), ("method", "POST"), ("status", "401")));
        Assert.Equal(1, Delta(before, after, "devrift_http_requests_total", ("route", "/metrics"), ("method", "GET"), ("status", "200")));

        // … and no label anywhere carries the user, a code, the seed or the API key
        var text = await ScrapeTextAsync();
        foreach (var secret in (string[])[user, code, e.Secret, Server.TestKey])
        {
            Assert.DoesNotContain(secret, text, StringComparison.OrdinalIgnoreCase);
        }
    }

    [Fact]
    public async Task Email_verifies_are_counted_by_outcome_code()
    {
        var user = TestUsers.NewEmail("metrics-mail");
        var before = await ScrapeAsync();
        await Server.VerifyCodeAsync(user, "EMAIL", "123456").ExpectProblemAsync(HttpStatusCode.Unauthorized, "no_pending_challenge");
        await Server.VerifyCodeAsync(user, "SOMETHING", "123456").ExpectProblemAsync(HttpStatusCode.BadRequest, "invalid_type");
        await Server.SendAcceptedAsync(user, "EMAIL");
        var code = await Server.LatestCodeAsync(user, "EMAIL");
        await Server.VerifyCodeAsync(user, "EMAIL", code).ExpectVerifiedAsync("EMAIL");
        var after = await ScrapeAsync();

        Assert.Equal(1, Delta(before, after, "devrift_verifications_total", ("type", "EMAIL"), ("outcome", "no_pending_challenge")));
        Assert.Equal(1, Delta(before, after, "devrift_verifications_total", ("type", "EMAIL"), ("outcome", "valid")));
        Assert.Equal(1, Delta(before, after, "devrift_verifications_total", ("type", "invalid"), ("outcome", "invalid_type")));
        Assert.DoesNotContain(after.Samples, s => s.Labels.Values.Contains("SOMETHING"));
    }

    [Fact]
    public async Task Hsm_latency_is_a_histogram_with_cumulative_buckets_after_hsm_work()
    {
        // Given HSM work: enrolment (random, wrap), a TOTP verify (unwrap, HMAC in the HSM), API-key checks (sign)
        var user = FactorApi.NewUser("metrics-hsm");
        await Server.EnrolActiveNowAsync(user);
        var metrics = await ScrapeAsync();

        foreach (var operation in (string[])["sign", "compute_hmac", "wrap", "generate_seed"])
        {
            var buckets = metrics.Samples
                .Where(s => s.Name == "devrift_hsm_operation_duration_seconds_bucket" && s.Labels["operation"] == operation)
                .Select(s => (Le: s.Labels["le"], s.Value)).ToList();
            var count = metrics.Value("devrift_hsm_operation_duration_seconds_count", ("operation", operation));
            var sum = metrics.Value("devrift_hsm_operation_duration_seconds_sum", ("operation", operation));

            // Then buckets ascend, counts are cumulative, the last is +Inf and equals the count
            Assert.True(buckets.Count >= 2, $"{operation}: {buckets.Count} buckets");
            Assert.Equal("+Inf", buckets[^1].Le);
            var bounds = buckets.SkipLast(1).Select(b => double.Parse(b.Le, CultureInfo.InvariantCulture)).ToList();
            Assert.Equal(bounds.Order().ToList(), bounds);
            Assert.Equal(bounds.Distinct().Count(), bounds.Count);
            for (var i = 1; i < buckets.Count; i++)
            {
                Assert.True(buckets[i].Value >= buckets[i - 1].Value, $"{operation}: bucket {buckets[i].Le} < {buckets[i - 1].Le}");
            }

            Assert.True(count > 0, $"{operation}: count {count}");
            Assert.Equal(count, buckets[^1].Value);
            Assert.True(sum > 0, $"{operation}: sum {sum}");
        }
    }

    [Fact]
    public async Task Outbox_depth_reflects_queued_rows()
    {
        var before = await ScrapeAsync();

        // Given three queued and one claimed live message, none due before the year 2286
        await using (var db = await Server.OpenDatabaseAsync())
        {
            foreach (var (status, claimedUntil) in (ValueTuple<string, long?>[])[("queued", null), ("queued", null), ("queued", null), ("sending", long.MaxValue / 2)])
            {
                await db.ExecuteAsync(
                    """
                    INSERT INTO outbox (id, application_id, mode, challenge_id, kind, channel, destination, locale, sealed_body, status, attempts, next_attempt_at, created_at, expires_at, claimed_by, claimed_until)
                    VALUES (@id, @app, 'live', NULL, 'code', 'EMAIL', 'depth@example.com', 'en', NULL, @status, 0, 9999999999999, 0, 9999999999999, 'test', @claimedUntil)
                    """,
                    new { id = "msg_depth_" + Guid.NewGuid().ToString("N"), app = Server.ApplicationId, status, claimedUntil });
            }
        }

        // Then the gauge, read from the database at scrape, shows them
        var after = await ScrapeAsync();
        Assert.Equal(3, Delta(before, after, "devrift_outbox_depth", ("status", "queued")));
        Assert.Equal(1, Delta(before, after, "devrift_outbox_depth", ("status", "sending")));
    }

    [Fact]
    public async Task Source_blocks_and_user_lockouts_are_counted_apart()
    {
        // Given an active factor and the default source_aware lockout: 5 failures refuse a source, 3 failing sources lock the user
        var user = FactorApi.NewUser("metrics-lock");
        var app = await Server.EnrolActiveNowAsync(user);
        var before = await ScrapeAsync();

        // When four wrong codes come from one address, nothing has engaged
        var wrong = ApiTestExtensions.WrongCode(new Totp(app.Seed).ComputeTotp(DateTime.UtcNow));
        for (var i = 0; i < 4; i++)
        {
            await Server.VerifyAppFromAsync(user, wrong, "198.51.100.1").ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        }

        var afterFour = await ScrapeAsync();
        Assert.Equal(0, Delta(before, afterFour, "devrift_lockout_source_blocks_total"));
        Assert.Equal(0, Delta(before, afterFour, "devrift_lockouts_total"));

        // When the fifth fails and the sixth finds the address refused, one source block and no user lockout are counted
        await Server.VerifyAppFromAsync(user, wrong, "198.51.100.1").ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        await Server.VerifyAppFromAsync(user, wrong, "198.51.100.1").ExpectProblemAsync(HttpStatusCode.TooManyRequests, "too_many_attempts");
        var afterSource = await ScrapeAsync();
        Assert.Equal(1, Delta(before, afterSource, "devrift_lockout_source_blocks_total"));
        Assert.Equal(0, Delta(before, afterSource, "devrift_lockouts_total"));
        Assert.Equal(1, Delta(before, afterSource, "devrift_verifications_total", ("type", "APP"), ("outcome", "too_many_attempts")));

        // When two more addresses fail, the user lockout engages: one lockout, and still one source block
        await Server.VerifyAppFromAsync(user, wrong, "198.51.100.2").ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        await Server.VerifyAppFromAsync(user, wrong, "198.51.100.3").ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        var after = await ScrapeAsync();
        Assert.Equal(1, Delta(before, after, "devrift_lockouts_total"));
        Assert.Equal(1, Delta(before, after, "devrift_lockout_source_blocks_total"));
    }

    [Fact]
    public async Task Label_values_are_escaped()
    {
        // Given a DevRift.Hsm meter of this host with a label value holding a quote, a backslash and a line feed
        var meters = Server.Services.GetRequiredService<IMeterFactory>();
        var meter = meters.Create("DevRift.Hsm.EscapeTest");
        var counter = meter.CreateCounter<long>("devrift.escape.test", description: "Escaping \\ test\nsecond line");
        const string awkward = "a\"b\\c\nd";
        counter.Add(2, new KeyValuePair<string, object?>("value", awkward));

        // Then the exposition escapes it and a strict reader gets the original back
        var text = await ScrapeTextAsync();
        Assert.Contains("devrift_escape_test_total{value=\"a\\\"b\\\\c\\nd\"} 2\n", text, StringComparison.Ordinal);
        Assert.Contains("# HELP devrift_escape_test_total Escaping \\\\ test\\nsecond line\n", text, StringComparison.Ordinal);
        Assert.Equal(2, PrometheusText.Parse(text).Value("devrift_escape_test_total", ("value", awkward)));
    }

    [Fact]
    public async Task Unknown_paths_and_ids_do_not_create_route_labels()
    {
        // When requests go to many distinct unknown paths and to many distinct challenge ids
        using var anonymous = Server.NewClient(null);
        var before = await ScrapeAsync();
        for (var i = 0; i < 5; i++)
        {
            using var missing = await anonymous.GetAsync($"/no-such-{Guid.NewGuid():N}/x");
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
            using var unknownChallenge = await Server.Client.GetAsync($"/v1/mfa/mfa_{Guid.NewGuid():N}");
            Assert.Equal(HttpStatusCode.NotFound, unknownChallenge.StatusCode);
        }

        // Then they are counted under one "unmatched" label and the route template, never the raw path
        var after = await ScrapeAsync();
        Assert.Equal(5, Delta(before, after, "devrift_http_requests_total", ("route", "unmatched"), ("method", "GET"), ("status", "404")));
        Assert.Equal(5, Delta(before, after, "devrift_http_requests_total", ("route", "/v1/mfa/{id}"), ("method", "GET"), ("status", "404")));
        var routes = after.Samples.Where(s => s.Name == "devrift_http_requests_total").Select(s => s.Labels["route"]).ToHashSet();
        Assert.DoesNotContain(routes, r => r.Contains("no-such", StringComparison.Ordinal) || r.Contains("mfa_", StringComparison.Ordinal));
        Assert.All(routes, r => Assert.True(r == "unmatched" || r.StartsWith('/'), r));
    }

    private async Task<string> ScrapeTextAsync()
    {
        using var client = Server.NewClient(null);
        return await client.GetStringAsync("/metrics");
    }

    private async Task<PrometheusText> ScrapeAsync() => PrometheusText.Parse(await ScrapeTextAsync());

    private static double Delta(PrometheusText before, PrometheusText after, string name, params (string Name, string Value)[] labels) =>
        after.Value(name, labels) - before.Value(name, labels);
}
