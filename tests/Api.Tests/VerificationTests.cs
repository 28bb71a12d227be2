using System.Net;
using System.Text.Json;
using Dapper;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests;

/// <summary>
/// Single use, binding to the newest challenge, expiry, the attempt limit, racing duplicates and idempotent sends,
/// on SQLite and on PostgreSQL (the rules are the database's, so each database must keep them).
/// </summary>
public sealed class VerificationTests(FakeClockServers servers) : IClassFixture<FakeClockServers>
{
    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_used_code_replayed_is_401_no_pending_challenge(Db db)
    {
        // Given a code that has just verified
        var server = await servers.GetAsync(db);
        var user = TestUsers.NewEmail("replay");
        var id = (await server.SendAcceptedAsync(user, "EMAIL")).GetProperty("id").GetString();
        var code = await server.LatestCodeAsync(user, "EMAIL");
        using (var first = await server.VerifyCodeAsync(user, "EMAIL", code))
        {
            await first.AssertJsonAsync(HttpStatusCode.OK, "verification");
        }

        // When the same request is sent again
        using var replay = await server.VerifyCodeAsync(user, "EMAIL", code);

        // Then 401 no_pending_challenge, and the challenge stays approved with the one attempt it took
        await replay.AssertProblemAsync(HttpStatusCode.Unauthorized, "no_pending_challenge", "code");
        await using var c = await server.OpenDatabaseAsync();
        var row = await c.QuerySingleAsync<(string Status, long Attempts, long? ApprovedAt)>(
            "SELECT status, attempts, approved_at FROM challenges WHERE id = @id", new { id });
        Assert.Equal(("approved", 1L), (row.Status, row.Attempts));
        Assert.NotNull(row.ApprovedAt);
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task The_code_of_a_challenge_replaced_by_a_new_send_is_401_and_the_new_code_verifies(Db db)
    {
        // Given a first SMS challenge, replaced 31 s later (past the cool-down) by a second
        var server = await servers.GetAsync(db);
        var phone = TestUsers.NewPhone();
        var oldId = (await server.SendAcceptedAsync(phone, "SMS")).GetProperty("id").GetString();
        var oldCode = await server.LatestCodeAsync(phone, "SMS");
        string newId, newCode;
        do
        {
            // (a one-in-a-million equal code would prove nothing: send again)
            server.Clock!.Advance(TimeSpan.FromSeconds(31));
            newId = (await server.SendAcceptedAsync(phone, "SMS")).GetProperty("id").GetString()!;
            newCode = await server.LatestCodeAsync(phone, "SMS");
        }
        while (newCode == oldCode);

        Assert.Equal("canceled", await server.StatusInDatabaseAsync(oldId!));

        // When the old code is presented
        using var old = await server.VerifyCodeAsync(phone, "PHONE", oldCode);

        // Then 401 invalid_code (it is checked against the newest challenge only)
        var problem = await old.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_code", "code");
        Assert.Equal(4, problem.GetProperty("attempts_remaining").GetInt32());

        // And the new code verifies, consuming the new challenge
        using var fresh = await server.VerifyCodeAsync(phone, "PHONE", newCode);
        await fresh.AssertJsonAsync(HttpStatusCode.OK, "verification");
        Assert.Equal("approved", await server.StatusInDatabaseAsync(newId));
        Assert.Equal("canceled", await server.StatusInDatabaseAsync(oldId!));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Without_a_cool_down_the_code_of_a_send_in_the_same_millisecond_as_the_one_it_replaced_verifies(Db db)
    {
        // Given an application without resend cool-down, and sends to one user at one frozen instant until the
        // challenge the new send replaced sorts first among equal times (ids are random, so that takes a few sends)
        var server = await servers.GetAsync(db);
        var (_, key) = await server.CreateApplicationWithKeyAsync("No Cool-down", "enterprise",
            new { resend_cooldown_seconds = 0, sends_per_destination = 100 });
        var user = TestUsers.NewEmail("samems");
        await using var c = await server.OpenDatabaseAsync();
        string pendingId;
        var sends = 0;
        do
        {
            pendingId = (await server.SendAcceptedAsync(user, "EMAIL", key)).GetProperty("id").GetString()!;
            sends++;
        }
        while (sends < 2 || await c.QueryFirstAsync<string>(
            "SELECT id FROM challenges WHERE user_key = @user ORDER BY created_at DESC, id DESC", new { user }) == pendingId);

        Assert.Equal(1, await server.CountAsync("SELECT COUNT(DISTINCT created_at) FROM challenges WHERE user_key = @user", new { user }));
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM challenges WHERE user_key = @user AND status = 'pending'", new { user }));

        // When the code of the pending challenge (the last one sent) is presented
        var messageId = await c.QuerySingleAsync<string>("SELECT id FROM outbox WHERE challenge_id = @pendingId", new { pendingId });
        var code = await server.CodeOfMessageAsync(user, messageId, key);
        using var verify = await server.VerifyCodeAsync(user, "EMAIL", code, key);

        // Then it verifies: the pending challenge is the one checked, not a canceled one with the same time
        await verify.AssertJsonAsync(HttpStatusCode.OK, "verification");
        Assert.Equal("approved", await server.StatusInDatabaseAsync(pendingId));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_code_verifies_until_its_lifetime_ends_and_is_401_code_expired_from_then_on(Db db)
    {
        // Given two codes, each sent at the current fake time
        var server = await servers.GetAsync(db);
        var inTime = TestUsers.NewEmail("intime");
        var late = TestUsers.NewEmail("late");
        await server.SendAcceptedAsync(inTime, "EMAIL");
        await server.SendAcceptedAsync(late, "EMAIL");
        var inTimeCode = await server.LatestCodeAsync(inTime, "EMAIL");
        var lateCode = await server.LatestCodeAsync(late, "EMAIL");

        // When one is presented 1 ms before the 600 s lifetime ends, and the other exactly at its end
        server.Clock!.Advance(TimeSpan.FromSeconds(600) - TimeSpan.FromMilliseconds(1));
        using var accepted = await server.VerifyCodeAsync(inTime, "EMAIL", inTimeCode);
        server.Clock.Advance(TimeSpan.FromMilliseconds(1));
        using var expired = await server.VerifyCodeAsync(late, "EMAIL", lateCode);

        // Then the first verifies and the second is 401 code_expired, without counting an attempt
        await accepted.AssertJsonAsync(HttpStatusCode.OK, "verification");
        await expired.AssertProblemAsync(HttpStatusCode.Unauthorized, "code_expired", "code");
        Assert.Equal(0, await server.CountAsync("SELECT attempts FROM challenges WHERE user_key = @late", new { late }));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task After_five_wrong_codes_even_the_right_code_is_429_too_many_attempts(Db db)
    {
        // Given five wrong codes on one challenge (attempts 5 per challenge)
        var server = await servers.GetAsync(db);
        var phone = TestUsers.NewPhone();
        var id = (await server.SendAcceptedAsync(phone, "CALL")).GetProperty("id").GetString();
        var code = await server.LatestCodeAsync(phone, "CALL");
        for (var remaining = 4; remaining >= 0; remaining--)
        {
            using var wrong = await server.VerifyCodeAsync(phone, "PHONE", ApiTestExtensions.WrongCode(code));
            var problem = await wrong.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_code", "code");
            Assert.Equal(remaining, problem.GetProperty("attempts_remaining").GetInt32());
        }

        // When the right code comes sixth
        using var right = await server.VerifyCodeAsync(phone, "PHONE", code);

        // Then 429 too_many_attempts with Retry-After, and the challenge is spent
        var locked = await right.AssertProblemAsync(HttpStatusCode.TooManyRequests, "too_many_attempts", "code");
        Assert.Equal(0, locked.GetProperty("attempts_remaining").GetInt32());
        Assert.NotNull(right.Headers.RetryAfter?.Delta);
        Assert.InRange(right.Headers.RetryAfter!.Delta!.Value.TotalSeconds, 1, 600);
        await using var c = await server.OpenDatabaseAsync();
        var row = await c.QuerySingleAsync<(string Status, long Attempts)>("SELECT status, attempts FROM challenges WHERE id = @id", new { id });
        Assert.Equal(("max_attempts_reached", 5L), row);
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Twenty_concurrent_identical_correct_verifies_succeed_exactly_once(Db db)
    {
        // Given a pending challenge and its code
        var server = await servers.GetAsync(db);
        var user = TestUsers.NewEmail("race");
        var id = (await server.SendAcceptedAsync(user, "EMAIL")).GetProperty("id").GetString();
        var code = await server.LatestCodeAsync(user, "EMAIL");

        // When 20 identical verifies are released at once, each on its own connection
        var results = await VerificationTestExtensions.RaceAsync(server, 20, client => client.PostAsync("/v1/mfa/verify",
            Content.Bytes($"User={user}, Type=EMAIL, Code={code}", "application/x-www-form-urlencoded")));

        // Then exactly one is 200; every other one is refused as used (401) or as over the attempt limit (429), never a 5xx
        Assert.Single(results, r => r.Status == HttpStatusCode.OK);
        Assert.All(results.Where(r => r.Status != HttpStatusCode.OK), r => Assert.True(
            r is (HttpStatusCode.Unauthorized, "no_pending_challenge") or (HttpStatusCode.TooManyRequests, "too_many_attempts"), $"{(int)r.Status} {r.Code}"));

        // And the database holds one approved challenge that took at most its 5 attempts
        await using var c = await server.OpenDatabaseAsync();
        var row = await c.QuerySingleAsync<(string Status, long Attempts)>("SELECT status, attempts FROM challenges WHERE id = @id", new { id });
        Assert.Equal("approved", row.Status);
        Assert.InRange(row.Attempts, 1, 5);
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Twenty_concurrent_wrong_guesses_use_at_most_the_five_attempts(Db db)
    {
        // Given a pending challenge
        var server = await servers.GetAsync(db);
        var phone = TestUsers.NewPhone();
        var id = (await server.SendAcceptedAsync(phone, "SMS")).GetProperty("id").GetString();
        var wrong = ApiTestExtensions.WrongCode(await server.LatestCodeAsync(phone, "SMS"));

        // When 20 wrong guesses are released at once
        var results = await VerificationTestExtensions.RaceAsync(server, 20, client => client.PostAsync("/v1/mfa/verify",
            Content.Bytes($"User={phone}, Type=PHONE, Code={wrong}", "application/x-www-form-urlencoded")));

        // Then exactly five are judged (401 invalid_code) and the rest are 429 too_many_attempts
        Assert.Equal(5, results.Count(r => r is (HttpStatusCode.Unauthorized, "invalid_code")));
        Assert.Equal(15, results.Count(r => r is (HttpStatusCode.TooManyRequests, "too_many_attempts")));

        // And the database counted five attempts and spent the challenge
        await using var c = await server.OpenDatabaseAsync();
        var row = await c.QuerySingleAsync<(string Status, long Attempts)>("SELECT status, attempts FROM challenges WHERE id = @id", new { id });
        Assert.Equal(("max_attempts_reached", 5L), row);
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Twenty_concurrent_sends_to_one_destination_are_accepted_once_inside_the_cool_down(Db db)
    {
        // Given a destination that has received nothing
        var server = await servers.GetAsync(db);
        var email = TestUsers.NewEmail("sendrace");

        // When 20 sends to it are released at once
        var results = await VerificationTestExtensions.RaceAsync(server, 20, client => client.PostAsync("/v1/mfa",
            Content.Bytes($"User={email}, Type=EMAIL", "application/x-www-form-urlencoded")));

        // Then one is accepted and 19 are 429 rate_limited
        Assert.Single(results, r => r.Status == HttpStatusCode.Accepted);
        Assert.Equal(19, results.Count(r => r is (HttpStatusCode.TooManyRequests, "rate_limited")));

        // And one challenge and one message exist
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM challenges WHERE user_key = @email", new { email }));
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM outbox WHERE destination = @email", new { email }));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Retries_with_the_same_Idempotency_Key_return_the_same_challenge_and_send_one_message(Db db)
    {
        // Given a send with an Idempotency-Key
        var server = await servers.GetAsync(db);
        var phone = TestUsers.NewPhone();
        var key = "retry-" + Guid.NewGuid();
        using var first = await server.SendIdempotentAsync($"User={phone}, Type=SMS", key);
        var firstChallenge = await first.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");

        // When it is retried with the same key and body (inside the cool-down, which must not matter)
        using var retry = await server.SendIdempotentAsync($"User={phone}, Type=SMS", key);

        // Then the retry answers 202 with the same challenge
        var retryChallenge = await retry.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");
        Assert.Equal(firstChallenge.GetProperty("id").GetString(), retryChallenge.GetProperty("id").GetString());

        // And one message was sent, one challenge made
        using var outbox = await server.Client.GetAsync($"/v1/test/messages?user={Uri.EscapeDataString(phone)}");
        Assert.Single((await outbox.AssertJsonAsync(HttpStatusCode.OK, "list")).GetProperty("data").EnumerateArray());
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM challenges WHERE user_key = @phone", new { phone }));
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM outbox WHERE destination = @phone", new { phone }));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Concurrent_retries_with_the_same_Idempotency_Key_all_return_the_one_challenge(Db db)
    {
        // Given five copies of one send with one Idempotency-Key, released together
        var server = await servers.GetAsync(db);
        var user = TestUsers.NewEmail("concurrent-retry");
        var key = "race-" + Guid.NewGuid();
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var copies = Enumerable.Range(0, 5).Select(async _ =>
        {
            await start.Task;
            using var response = await server.SendIdempotentAsync($"User={user}, Type=EMAIL", key);
            return (response.StatusCode, Body: await response.Content.ReadAsStringAsync());
        }).ToList();

        // When they race
        start.SetResult();
        var results = await Task.WhenAll(copies);

        // Then every copy is 202 with the same challenge, and one message was queued
        Assert.All(results, r => Assert.True(r.StatusCode == HttpStatusCode.Accepted, $"{(int)r.StatusCode} {r.Body}"));
        Assert.Single(results.Select(r => JsonDocument.Parse(r.Body).RootElement.GetProperty("id").GetString()).Distinct());
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM outbox WHERE destination = @user", new { user }));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task An_Idempotency_Key_reused_with_a_different_body_is_409_idempotency_key_reused(Db db)
    {
        // Given a send with an Idempotency-Key
        var server = await servers.GetAsync(db);
        var first = TestUsers.NewEmail("idem");
        var other = TestUsers.NewEmail("idem");
        var key = "reuse-" + Guid.NewGuid();
        using (var sent = await server.SendIdempotentAsync($"User={first}, Type=EMAIL", key))
        {
            await sent.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");
        }

        // When the key comes again with another user, and with another type
        using var otherUser = await server.SendIdempotentAsync($"User={other}, Type=EMAIL", key);
        using var otherType = await server.SendIdempotentAsync($"User={first}:{TestUsers.NewPhone()}, Type=DUAL", key);

        // Then 409 idempotency_key_reused naming the header, and nothing was sent to the other user
        await otherUser.AssertProblemAsync(HttpStatusCode.Conflict, "idempotency_key_reused", "Idempotency-Key");
        await otherType.AssertProblemAsync(HttpStatusCode.Conflict, "idempotency_key_reused", "Idempotency-Key");
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM outbox WHERE destination = @other", new { other }));
    }
}

internal static class VerificationTestExtensions
{
    /// <summary>The code in one test-outbox message, found by its id.</summary>
    public static async Task<string> CodeOfMessageAsync(this ApplianceServer server, string user, string messageId, string key)
    {
        using var client = server.NewClient(key);
        using var response = await client.GetAsync($"/v1/test/messages?user={Uri.EscapeDataString(user)}");
        var messages = await response.AssertJsonAsync(HttpStatusCode.OK, "list");
        var message = Assert.Single(messages.GetProperty("data").EnumerateArray(), m => m.GetProperty("id").GetString() == messageId);
        return System.Text.RegularExpressions.Regex.Match(message.GetProperty("body").GetString()!, "[0-9]{4,10}").Value;
    }

    /// <summary>Sends <paramref name="count"/> requests, each on its own warmed-up connection, released at once.</summary>
    public static async Task<IReadOnlyList<(HttpStatusCode Status, string? Code)>> RaceAsync(
        ApplianceServer server, int count, Func<HttpClient, Task<HttpResponseMessage>> request)
    {
        var clients = Enumerable.Range(0, count).Select(_ => server.NewClient(server.TestKey)).ToList();
        try
        {
            foreach (var client in clients)
            {
                using var warm = await client.GetAsync("/healthz");
            }

            var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var racers = clients.Select(async client =>
            {
                await start.Task;
                using var response = await request(client);
                var body = await response.Content.ReadAsStringAsync();
                Assert.True((int)response.StatusCode < 500, $"{(int)response.StatusCode} {body}");
                return (response.StatusCode, response.IsSuccessStatusCode ? null : JsonDocument.Parse(body).RootElement.GetProperty("code").GetString());
            }).ToList();
            start.SetResult();
            return await Task.WhenAll(racers);
        }
        finally
        {
            clients.ForEach(c => c.Dispose());
        }
    }

    public static async Task<string> StatusInDatabaseAsync(this ApplianceServer server, string challengeId)
    {
        await using var c = await server.OpenDatabaseAsync();
        return await c.QuerySingleAsync<string>("SELECT status FROM challenges WHERE id = @challengeId", new { challengeId });
    }

    public static async Task<HttpResponseMessage> SendIdempotentAsync(this ApplianceServer server, string body, string idempotencyKey)
    {
        using var client = server.NewClient(server.TestKey);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/mfa") { Content = Content.Bytes(body, "application/x-www-form-urlencoded") };
        request.Headers.Add("Idempotency-Key", idempotencyKey);
        return await client.SendAsync(request);
    }
}
