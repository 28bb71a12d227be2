using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using DevRift.Hsm.Api.Tests.Factors;
using DevRift.Hsm.Api.Tests.Infrastructure;
using OtpNet;

namespace DevRift.Hsm.Api.Tests.FailClosed;

/// <summary>One HTTP exchange a load loop made: when it started and ended (Stopwatch ticks), the status and problem code.</summary>
public sealed record Exchange(string Loop, long Started, long Ended, int Status, string? Code);

/// <summary>What a request was answered.</summary>
public sealed record Answer(HttpStatusCode Status, string Body);

/// <summary>GET /readyz as read by a test.</summary>
public sealed record Readiness(HttpStatusCode Status, string Ready, string Hsm, string Storage);

/// <summary>A user with an active authenticator app.</summary>
public sealed record AppUser(string User, byte[] Seed, string Secret);

/// <summary>Concurrent client loops against a server, every exchange recorded; and the secrets they handled.</summary>
public sealed class LoadLoops(ApplianceServer server)
{
    private readonly List<Task> _loops = [];
    private readonly CancellationTokenSource _stop = new();

    public ConcurrentQueue<Exchange> Exchanges { get; } = new();

    /// <summary>Every code the loops sent or read, for the log scan.</summary>
    public ConcurrentBag<string> Codes { get; } = new();

    public void Start(string name, Func<CancellationToken, Task> iteration) => _loops.Add(Task.Run(async () =>
    {
        while (!_stop.IsCancellationRequested)
        {
            await iteration(_stop.Token);
        }
    }));

    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_loops);
    }

    /// <summary>Sends one request, records it, and returns its status and body.</summary>
    public async Task<Answer> SendAsync(string loop, Func<Task<HttpResponseMessage>> call)
    {
        var started = Stopwatch.GetTimestamp();
        using var response = await call();
        var body = await response.Content.ReadAsStringAsync();
        var ended = Stopwatch.GetTimestamp();
        string? code = null;
        if (response.Content.Headers.ContentType?.MediaType == "application/problem+json")
        {
            code = JsonDocument.Parse(body).RootElement.GetProperty("code").GetString();
        }

        Exchanges.Enqueue(new Exchange(loop, started, ended, (int)response.StatusCode, code));
        return new Answer(response.StatusCode, body);
    }

    /// <summary>One send → read the test outbox → verify cycle for a fresh email user (each cycle ends in 200 when all serves).</summary>
    public async Task EmailCycleAsync(string loop)
    {
        var user = TestUsers.NewEmail("load");
        var (sent, _) = await SendAsync(loop, () => server.SendCodeAsync(user, "EMAIL"));
        if (sent != HttpStatusCode.Accepted)
        {
            return;
        }

        var (read, messages) = await SendAsync(loop, () => server.Client.GetAsync($"/v1/test/messages?user={Uri.EscapeDataString(user)}"));
        if (read != HttpStatusCode.OK)
        {
            return;
        }

        var body = JsonDocument.Parse(messages).RootElement.GetProperty("data")[0].GetProperty("body").GetString()!;
        var code = Regex.Match(body, @"\d{4,10}").Value;
        Codes.Add(code);
        await SendAsync(loop, () => server.VerifyCodeAsync(user, "EMAIL", code));
    }

    /// <summary>The current TOTP code (Otp.NET, from the enrolment secret) of one of the users, round robin.</summary>
    public async Task AppVerifyAsync(string loop, IReadOnlyList<AppUser> users, int iteration)
    {
        var (user, seed, _) = users[iteration % users.Count];
        var code = new Totp(seed).ComputeTotp(DateTime.UtcNow);
        Codes.Add(code);
        await SendAsync(loop, () => server.VerifyAppAsync(user, code));
    }
}

public static class FailClosedAssertions
{
    /// <summary>Enrols an authenticator app and confirms it with the current code (Otp.NET on the system clock).</summary>
    public static async Task<AppUser> EnrolActiveNowAsync(this ApplianceServer server, string user)
    {
        var e = await server.EnrolAsync(user);
        await server.VerifyAppAsync(user, new Totp(e.Seed).ComputeTotp(DateTime.UtcNow)).ExpectVerifiedAsync("APP");
        return new AppUser(user, e.Seed, e.Secret);
    }

    /// <summary>GET /readyz: the status and the body's fields.</summary>
    public static async Task<Readiness> ReadyAsync(this ApplianceServer server)
    {
        using var client = server.NewClient(null);
        using var response = await client.GetAsync("/readyz");
        var root = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        return new Readiness(response.StatusCode, root.GetProperty("status").GetString()!, root.GetProperty("hsm").GetString()!, root.GetProperty("storage").GetString()!);
    }

    /// <summary>Polls <paramref name="condition"/> every 100 ms until it holds; fails after <paramref name="limit"/>.</summary>
    public static async Task<TimeSpan> EventuallyAsync(string what, TimeSpan limit, Func<Task<bool>> condition)
    {
        var started = Stopwatch.GetTimestamp();
        while (true)
        {
            if (await condition())
            {
                return Stopwatch.GetElapsedTime(started);
            }

            Assert.True(Stopwatch.GetElapsedTime(started) < limit, $"{what} did not happen within {limit.TotalSeconds} s");
            await Task.Delay(100);
        }
    }

    /// <summary>
    /// Asserts that no captured log line holds one of the secrets. Digit codes are matched as whole numbers (a run of
    /// digits not after a '.' or another digit), so that a timing like 1.123456 ms is not a false alarm.
    /// </summary>
    public static void AssertNoSecretsIn(IEnumerable<string> lines, IEnumerable<(string What, string Value)> secrets)
    {
        var list = secrets.Where(s => s.Value.Length > 0).ToList();
        var numbers = list.Where(s => s.Value.All(char.IsAsciiDigit)).GroupBy(s => s.Value).ToDictionary(g => g.Key, g => g.First().What);
        var texts = list.Where(s => !s.Value.All(char.IsAsciiDigit)).Distinct().ToList();
        foreach (var line in lines)
        {
            foreach (Match number in s_wholeNumber.Matches(line))
            {
                Assert.False(numbers.TryGetValue(number.Value, out var what), $"{what} in log line: {line}");
            }

            foreach (var (what, value) in texts)
            {
                Assert.False(line.Contains(value, StringComparison.OrdinalIgnoreCase), $"{what} in log line: {line}");
            }
        }
    }

    private static readonly Regex s_wholeNumber = new(@"(?<![0-9.])[0-9]+(?![0-9])", RegexOptions.Compiled);
}
