using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Dapper;
using DevRift.Hsm.Api.Tests.Audit;
using DevRift.Hsm.Api.Tests.Factors;
using DevRift.Hsm.Api.Tests.Infrastructure;
using Npgsql;

namespace DevRift.Hsm.Api.Tests.FailClosed;

/// <summary>
/// PostgreSQL goes away twice while verifications are in flight on eight connections (issue 10): whatever a request was
/// answered, the database agrees with it — a 200 consumed its code and has its audit record; anything else consumed
/// nothing, and the same code verifies once the database is back.
/// </summary>
public sealed class StorageOutageUnderLoadTests
{
    private sealed record Item(string Type, string User, string Code, string? ChallengeId, long Step);

    [Fact]
    public async Task A_postgres_outage_under_load_never_ends_with_a_code_consumed_and_a_refused_answer()
    {
        // Given 96 users with an email code each and 24 with an active authenticator app and a code of a new step
        await using var server = await ApplianceServer.StartAsync(Db.Postgres, fakeClock: true);
        var items = new List<Item>();
        for (var i = 0; i < 96; i++)
        {
            var user = TestUsers.NewEmail("outage");
            var id = (await server.SendAcceptedAsync(user, "EMAIL")).GetProperty("id").GetString()!;
            items.Add(new Item("EMAIL", user, await server.LatestCodeAsync(user, "EMAIL"), id, 0));
        }

        var apps = new List<(string User, byte[] Seed)>();
        for (var i = 0; i < 24; i++)
        {
            var user = FactorApi.NewUser("outage-app");
            apps.Add((user, (await server.EnrolActiveAsync(user)).Seed));
        }

        server.Clock!.Advance(TimeSpan.FromSeconds(30));
        items.AddRange(apps.Select(a => new Item("APP", a.User, Rfc6238.CodeAt(a.Seed, server.Now()), null, Rfc6238.Step(server.Now()))));
        var shuffled = new ConcurrentQueue<Item>(items.OrderBy(_ => Random.Shared.Next()));
        var answers = new ConcurrentDictionary<Item, (HttpStatusCode Status, string? Code)>();
        var database = new NpgsqlConnectionStringBuilder(server.ConnectionString).Database!;

        // When eight loops verify every code while the database is cut off twice (connections refused, open ones terminated)
        async Task LoopAsync()
        {
            while (shuffled.TryDequeue(out var item))
            {
                using var response = item.Type == "APP" ? await server.VerifyAppAsync(item.User, item.Code) : await server.VerifyCodeAsync(item.User, "EMAIL", item.Code);
                var body = await response.Content.ReadAsStringAsync();
                var code = response.Content.Headers.ContentType?.MediaType == "application/problem+json"
                    ? JsonDocument.Parse(body).RootElement.GetProperty("code").GetString()
                    : null;
                answers[item] = (response.StatusCode, code);
            }
        }

        async Task CutAsync()
        {
            await using var admin = new NpgsqlConnection(ApplianceServer.PostgresAdmin);
            await admin.OpenAsync();
            foreach (var at in (int[])[items.Count / 5, items.Count / 2])
            {
                while (answers.Count < at && !shuffled.IsEmpty)
                {
                    await Task.Delay(5);
                }

                try
                {
                    await admin.ExecuteAsync($"ALTER DATABASE {database} ALLOW_CONNECTIONS false");
                    await admin.ExecuteAsync($"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}' AND pid <> pg_backend_pid()");
                    await Task.Delay(300);
                }
                finally
                {
                    await admin.ExecuteAsync($"ALTER DATABASE {database} ALLOW_CONNECTIONS true");
                }
            }
        }

        await Task.WhenAll([CutAsync(), .. Enumerable.Range(0, 8).Select(_ => Task.Run(LoopAsync))]);
        await FailClosedAssertions.EventuallyAsync("readiness after the database returned", TimeSpan.FromSeconds(30),
            async () => await server.ReadyAsync() == new Readiness(HttpStatusCode.OK, "ready", "ok", "ok"));

        // Then every answer was a 200 or a 503 storage_unavailable, and the outage refused some of them
        Assert.Equal(items.Count, answers.Count);
        Assert.All(answers, a => Assert.True(a.Value.Status == HttpStatusCode.OK || (a.Value.Status == HttpStatusCode.ServiceUnavailable && a.Value.Code == "storage_unavailable"),
            $"{a.Key.Type} {a.Key.User}: {(int)a.Value.Status} {a.Value.Code}"));
        Assert.Contains(answers.Values, a => a.Status == HttpStatusCode.ServiceUnavailable);
        Assert.Contains(answers.Values, a => a.Status == HttpStatusCode.OK);

        // And the database agrees with each answer: a 200 consumed its code and is audited, a 503 consumed nothing
        var audited = (await server.AuditRowsAsync()).Where(r => r.Event == "verification" && r.Outcome == "valid").Select(r => r.Subject!).ToList();
        await using var c = await server.OpenDatabaseAsync();
        foreach (var (item, answer) in answers)
        {
            var consumed = item.Type == "APP"
                ? await c.QuerySingleAsync<long>("SELECT last_used_step FROM totp_factors WHERE user_key IN (SELECT identity_id FROM identity_contacts WHERE value = @User) AND status = 'active'", item) == item.Step
                : await c.QuerySingleAsync<string>("SELECT status FROM challenges WHERE id = @ChallengeId", item) == "approved";
            var ok = answer.Status == HttpStatusCode.OK;
            Assert.True(consumed == ok, $"{item.Type} {item.User}: answered {(int)answer.Status}, code {(consumed ? "consumed" : "not consumed")}");
            // (an APP user's enrolment confirmation is audited too: count this verification's record beyond it)
            Assert.Equal((ok ? 1 : 0) + (item.Type == "APP" ? 1 : 0), audited.Count(s => s == item.User));
        }

        // And every refused code verifies now
        foreach (var (item, _) in answers.Where(a => a.Value.Status != HttpStatusCode.OK))
        {
            await (item.Type == "APP" ? server.VerifyAppAsync(item.User, item.Code) : server.VerifyCodeAsync(item.User, "EMAIL", item.Code)).ExpectVerifiedAsync(item.Type);
        }

        var chain = await server.VerifyChainAsync();
        Assert.True(chain.GetProperty("valid").GetBoolean(), chain.ToString());
        Assert.Equal(0, chain.GetProperty("pending").GetInt64());
    }
}
