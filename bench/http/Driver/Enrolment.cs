using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using OtpNet;

namespace DevRift.Hsm.Bench.Driver;

/// <summary>
/// Enrols users <c>u{i}@bench.example</c> for i in [from, to): <c>POST /v1/mfa/app</c>, then the first valid
/// <c>Type=APP</c> verify that makes the factor active. Appends <c>user TAB secret</c> lines to the secrets file
/// (a throw-away file of the bench run) and prints one <c>key=value</c> summary line. Stops early, and says so, when
/// the server's resident memory passes <c>--max-rss-mb</c>: on a leaking build 100k enrolments would take the
/// machine down with it.
/// </summary>
internal static class Enrolment
{
    public static async Task<int> RunAsync(Options o)
    {
        var from = o.Int("from");
        var to = o.Int("to");
        var concurrency = o.Int("concurrency", 32);
        var pid = o.Int("pid", 0);
        var maxRssKb = o.Long("max-rss-mb", 0) * 1024;
        var deadline = Stopwatch.StartNew();
        var timeout = TimeSpan.FromSeconds(o.Long("timeout-s", 3600));
        using var client = Http.Client(o.Required("url"), o.Key(), concurrency);

        var secrets = new string?[to - from];
        var next = from;
        var failures = 0;
        long lastStep = 0;
        var stop = 0;
        string? stopReason = null;
        string? firstFailure = null;

        async Task Worker()
        {
            while (Volatile.Read(ref stop) == 0)
            {
                var i = Interlocked.Increment(ref next) - 1;
                if (i >= to)
                {
                    return;
                }

                var user = $"u{i}@bench.example";
                var (secret, step, failure) = await EnrolOneAsync(client, user);
                if (failure is not null)
                {
                    Interlocked.CompareExchange(ref firstFailure, failure, null);
                    if (Interlocked.Increment(ref failures) > 20)
                    {
                        Interlocked.CompareExchange(ref stopReason, "more than 20 enrolments failed", null);
                        Volatile.Write(ref stop, 1);
                    }

                    continue;
                }

                secrets[i - from] = $"{user}\t{secret}";
                InterlockedMax(ref lastStep, step);
            }
        }

        using var monitorStop = new CancellationTokenSource();
        long peakRssKb = 0;
        var monitor = Task.Run(async () =>
        {
            while (!monitorStop.IsCancellationRequested)
            {
                if (pid > 0 && ProcessMemory.ResidentKb(pid) is { } rss)
                {
                    peakRssKb = Math.Max(peakRssKb, rss);
                    if (maxRssKb > 0 && rss > maxRssKb)
                    {
                        Interlocked.CompareExchange(ref stopReason, $"server RSS {rss / 1024} MB passed --max-rss-mb {maxRssKb / 1024}", null);
                        Volatile.Write(ref stop, 1);
                    }
                }

                if (deadline.Elapsed > timeout)
                {
                    Interlocked.CompareExchange(ref stopReason, $"enrolment took longer than {timeout.TotalSeconds:0} s", null);
                    Volatile.Write(ref stop, 1);
                }

                try
                {
                    await Task.Delay(500, monitorStop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        });

        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(Worker)));
        await monitorStop.CancelAsync();
        await monitor;

        var done = secrets.Where(s => s is not null).ToList();
        await File.AppendAllLinesAsync(o.Required("secrets"), done!);
        if (firstFailure is not null)
        {
            await Console.Error.WriteLineAsync($"driver: enrol: {failures} failed, the first: {firstFailure}");
        }

        var seconds = deadline.Elapsed.TotalSeconds;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"enrolled={done.Count} failed={failures} seconds={seconds:0.0} rate={done.Count / seconds:0} last_step={lastStep} peak_rss_kb={peakRssKb} stopped={(stopReason ?? "no").Replace(' ', '_')}"));
        return stopReason is null && failures == 0 ? 0 : 1;
    }

    private static async Task<(string? Secret, long Step, string? Failure)> EnrolOneAsync(HttpClient client, string user)
    {
        try
        {
            using var enrol = await client.PostAsync("/v1/mfa/app", Http.Form($"User={user}"));
            var body = await enrol.Content.ReadAsStringAsync();
            if ((int)enrol.StatusCode != 200)
            {
                return (null, 0, $"POST /v1/mfa/app answered {(int)enrol.StatusCode} {ProblemCode(body)}");
            }

            var secret = JsonDocument.Parse(body).RootElement.GetProperty("secret").GetString()
                ?? throw new DriverException("enrolment without a secret");
            var step = DateTimeOffset.UtcNow.ToUnixTimeSeconds() / TotpCodes.PeriodSeconds;
            var code = TotpCodes.Compute(Base32Encoding.ToBytes(secret), step);
            using var verify = await client.PostAsync("/v1/mfa/verify", Http.Form($"User={user}, Type=APP, Code={code}"));
            var verified = await verify.Content.ReadAsStringAsync();
            return (int)verify.StatusCode == 200 && verified.Contains("\"valid\":true", StringComparison.Ordinal)
                ? (secret, step, null)
                : (null, 0, $"the activating verify answered {(int)verify.StatusCode} {ProblemCode(verified)}");
        }
        catch (HttpRequestException e)
        {
            return (null, 0, $"{e.GetType().Name}: {e.HttpRequestError}");
        }
        catch (TaskCanceledException)
        {
            return (null, 0, "timed out after 30 s");
        }
    }

    /// <summary>The problem's <c>code</c> only: a body may hold a secret, a problem never does.</summary>
    private static string ProblemCode(string body)
    {
        try
        {
            return JsonDocument.Parse(body).RootElement.TryGetProperty("code", out var c) ? c.GetString() ?? "" : "";
        }
        catch (JsonException)
        {
            return "";
        }
    }

    private static void InterlockedMax(ref long target, long value)
    {
        var current = Volatile.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }
}

/// <summary>VmRSS of a process, from <c>/proc/PID/status</c>.</summary>
internal static class ProcessMemory
{
    public static long? ResidentKb(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    return long.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
                }
            }
        }
        catch (IOException)
        {
        }

        return null;
    }
}
