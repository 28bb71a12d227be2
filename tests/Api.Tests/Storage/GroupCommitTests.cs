using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using Dapper;
using DevRift.Hsm.Api.Tests.Delivery;
using DevRift.Hsm.Appliance.Storage;
using Microsoft.Data.Sqlite;

namespace DevRift.Hsm.Api.Tests.Storage;

/// <summary>
/// SQLite's group commit: concurrent write transactions committed together keep every promise a transaction of its
/// own made — a member's failure is its own, an answer means durable, and a crash loses nothing acknowledged.
/// </summary>
public sealed class GroupCommitTests
{
    private static Database NewDatabase(out string path) => ScratchSqlite.NewDatabase("devrift-group-commit", "id INTEGER PRIMARY KEY, who TEXT NOT NULL", groupCommit: true, out path);

    [Fact]
    public async Task A_batch_in_which_one_transaction_fails_commits_the_others_and_answers_each_once_durable()
    {
        // Given a SQLite database with group commit (the default) and 40 transactions started at once, the 8th of
        // which writes and then fails
        await using var db = NewDatabase(out var path);
        var gate = new TaskCompletionSource();
        var tasks = Enumerable.Range(0, 40).Select(i => db.InTransactionAsync(async (c, tx) =>
        {
            if (i == 0)
            {
                await gate.Task; // the others queue behind it: they form the next batch
            }

            await c.ExecuteAsync("INSERT INTO t (id, who) VALUES (@i, 'writer')", new { i }, tx);
            return i == 7 ? throw new InvalidOperationException("member 7 refuses") : i;
        })).ToList();
        gate.SetResult();

        // When they complete, then member 7 failed with its own exception and every other one succeeded
        var failure = await Assert.ThrowsAsync<InvalidOperationException>(() => tasks[7]);
        Assert.Equal("member 7 refuses", failure.Message);
        foreach (var (task, i) in tasks.Select((t, i) => (t, i)).Where(p => p.i != 7))
        {
            Assert.Equal(i, await task);
        }

        // And what each was answered is committed, seen by another connection; member 7 left nothing behind
        await using var reader = new SqliteConnection($"Data Source={path}");
        var ids = (await reader.QueryAsync<long>("SELECT id FROM t ORDER BY id")).ToList();
        Assert.Equal(Enumerable.Range(0, 40).Where(i => i != 7).Select(i => (long)i), ids);
    }

    [Fact]
    public async Task A_transaction_started_inside_another_is_refused_rather_than_left_waiting_for_its_own_batch()
    {
        await using var db = NewDatabase(out _);
        var nested = db.InTransactionAsync(async (c, tx) =>
            await db.InTransactionAsync((c2, tx2) => Task.FromResult(1)));
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => nested).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Contains("inside another", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Killing_the_process_in_the_middle_of_concurrent_batches_loses_no_acknowledged_send()
    {
        // Given the appliance as a process on SQLite, taking 32 sends at a time
        await using var site = await ChildAppliance.Site.CreateAsync(postgres: false);
        await using var node = ChildAppliance.For(site, new Dictionary<string, string?>(), "node-a");
        await node.InitAsync();
        await node.StartAsync();
        using var http = new HttpClient { BaseAddress = node.BaseAddress, Timeout = TimeSpan.FromSeconds(20) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", node.TestKey);
        var acknowledged = new ConcurrentBag<string>();
        using var stop = new CancellationTokenSource();
        async Task SendLoopAsync(int worker)
        {
            for (var n = 0; n < 400 && !stop.IsCancellationRequested; n++)
            {
                try
                {
                    using var body = new StringContent($"User=gc{worker}x{n}@example.com, Type=EMAIL", System.Text.Encoding.UTF8, "application/x-www-form-urlencoded");
                    using var response = await http.PostAsync("/v1/mfa", body, stop.Token);
                    if (response.StatusCode == HttpStatusCode.Accepted)
                    {
                        using var doc = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync(stop.Token));
                        acknowledged.Add(doc.RootElement.GetProperty("id").GetString()!);
                    }
                }
                catch (Exception e) when (e is HttpRequestException or OperationCanceledException or IOException)
                {
                    return; // the process is gone
                }
            }
        }

        var loops = Enumerable.Range(0, 32).Select(SendLoopAsync).ToList();

        // When it is killed (SIGKILL) while sends are being committed
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (acknowledged.Count < 150 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        await node.KillAsync();
        await stop.CancelAsync();
        await Task.WhenAll(loops);
        Assert.True(acknowledged.Count >= 150, $"only {acknowledged.Count} sends were acknowledged before the kill");

        // Then every send answered 202 is in the database, with its outbox message
        await using var c = new SqliteConnection(site.ConnectionString);
        var stored = (await c.QueryAsync<string>("SELECT id FROM challenges")).ToHashSet(StringComparer.Ordinal);
        Assert.All(acknowledged, id => Assert.Contains(id, stored));
        var withMessage = (await c.QueryAsync<string>("SELECT DISTINCT challenge_id FROM outbox")).ToHashSet(StringComparer.Ordinal);
        Assert.All(acknowledged, id => Assert.Contains(id, withMessage));
    }
}
