using System.Net;
using System.Text;
using System.Text.Json;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Factors;

/// <summary>Test 3: racing duplicates of one valid code get exactly one success, on SQLite and on PostgreSQL.</summary>
public sealed class RaceTests
{
    private const int Racers = 20;

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Twenty_parallel_identical_TOTP_verifies_give_exactly_one_success(Db db)
    {
        // Given an active factor (confirmed with the T − 1 code) and a pending one
        await using var server = await ApplianceServer.StartAsync(db, fakeClock: true);
        var active = FactorApi.NewUser("race-active");
        var activeEnrolment = await server.EnrolAsync(active);
        await server.VerifyAppAsync(active, Rfc6238.CodeAt(activeEnrolment.Seed, server.Now(), -1)).ExpectVerifiedAsync("APP");
        var pending = FactorApi.NewUser("race-pending");
        var pendingEnrolment = await server.EnrolAsync(pending);

        // When 20 identical valid codes race on the active factor, and 20 race to confirm the pending one
        var activeResults = await RaceAsync(server, $"User={active}, Type=APP, Code={Rfc6238.CodeAt(activeEnrolment.Seed, server.Now())}");
        var pendingResults = await RaceAsync(server, $"User={pending}, Type=APP, Code={Rfc6238.CodeAt(pendingEnrolment.Seed, server.Now())}");

        // Then each race has exactly one 200 and nineteen 401 invalid_code
        AssertOneWinner(activeResults, "invalid_code");
        AssertOneWinner(pendingResults, "invalid_code");
        Assert.Equal("active", (await server.FactorsAsync(pending)).GetProperty("app").GetProperty("status").GetString());
        Assert.Equal(0, (await server.FactorsAsync(active)).GetProperty("lockout").GetProperty("consecutive_failures").GetInt32());
        Assert.Equal(0, (await server.FactorsAsync(pending)).GetProperty("lockout").GetProperty("consecutive_failures").GetInt32());
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Twenty_parallel_identical_backup_code_verifies_give_exactly_one_success(Db db)
    {
        // Given a backup set
        await using var server = await ApplianceServer.StartAsync(db, fakeClock: true);
        var user = FactorApi.NewUser("race-backup");
        await server.GenerateBackupAsync(user);
        var codes = await server.LatestBackupCodesAsync(user);

        // When 20 identical requests with one code race
        var results = await RaceAsync(server, $"User={user}, Type=BACKUP, Code={codes[0]}");

        // Then exactly one succeeds, the others fail as invalid_code, and one code is gone
        AssertOneWinner(results, "invalid_code");
        var factors = await server.FactorsAsync(user);
        Assert.Equal(9, factors.GetProperty("backup_codes").GetProperty("remaining").GetInt32());

        // and the losers, who held a real code, were not counted as guesses toward the lockout
        Assert.Equal(0, factors.GetProperty("lockout").GetProperty("consecutive_failures").GetInt32());
    }

    private static async Task<List<(HttpStatusCode Status, string Body)>> RaceAsync(ApplianceServer server, string body)
    {
        using var client = server.NewClient(server.TestKey);
        using var start = new SemaphoreSlim(0);
        var tasks = Enumerable.Range(0, Racers).Select(async _ =>
        {
            await start.WaitAsync();
            using var response = await client.PostAsync("/v1/mfa/verify", new StringContent(body, Encoding.UTF8, "application/x-www-form-urlencoded"));
            return (response.StatusCode, await response.Content.ReadAsStringAsync());
        }).ToList();
        start.Release(Racers);
        return [.. await Task.WhenAll(tasks)];
    }

    private static void AssertOneWinner(List<(HttpStatusCode Status, string Body)> results, string loserCode)
    {
        var summary = string.Join("\n", results.Select(r => $"{(int)r.Status} {r.Body}"));
        Assert.True(results.Count(r => r.Status == HttpStatusCode.OK) == 1, summary);
        var losers = results.Where(r => r.Status != HttpStatusCode.OK).ToList();
        Assert.True(losers.Count == Racers - 1, summary);
        foreach (var (status, body) in losers)
        {
            Assert.True(status == HttpStatusCode.Unauthorized, summary);
            using var doc = JsonDocument.Parse(body);
            Assert.Equal(loserCode, doc.RootElement.GetProperty("code").GetString());
        }
    }
}
