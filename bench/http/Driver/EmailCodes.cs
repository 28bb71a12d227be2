using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace DevRift.Hsm.Bench.Driver;

/// <summary>
/// Reads the codes of an e-mail send run from the test outbox. The wrk send script names its users
/// <c>s{tag}t{thread}n{i}@bench.example</c>, i counting from 0 per thread; <c>--issued</c> gives each thread's count.
/// Writes <c>user SPACE code</c> for every user whose message is there (a request still in flight when wrk stopped
/// may have left none).
/// </summary>
internal static partial class EmailCodes
{
    public static async Task<int> RunAsync(Options o)
    {
        var tag = o.Required("tag");
        var issued = o.Required("issued").Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(n => int.Parse(n, CultureInfo.InvariantCulture)).ToArray();
        var users = issued.SelectMany((count, thread) => Enumerable.Range(0, count).Select(i => $"s{tag}t{thread}n{i}@bench.example")).ToArray();
        var concurrency = o.Int("concurrency", 32);
        using var client = Http.Client(o.Required("url"), o.Key(), concurrency);

        var codes = new string?[users.Length];
        var missing = 0;
        await Parallel.ForAsync(0, users.Length, new ParallelOptions { MaxDegreeOfParallelism = concurrency }, async (i, ct) =>
        {
            using var response = await client.GetAsync($"/v1/test/messages?user={Uri.EscapeDataString(users[i])}", ct);
            if ((int)response.StatusCode != 200)
            {
                throw new DriverException($"GET /v1/test/messages answered {(int)response.StatusCode}");
            }

            using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ct));
            var data = doc.RootElement.GetProperty("data");
            var match = data.GetArrayLength() > 0 ? CodeInBody().Match(data[0].GetProperty("body").GetString() ?? "") : null;
            if (match is { Success: true })
            {
                codes[i] = $"{users[i]} {match.Groups[1].Value}";
            }
            else
            {
                Interlocked.Increment(ref missing);
            }
        });

        var lines = codes.Where(c => c is not null).ToList();
        await File.WriteAllLinesAsync(o.Required("out"), lines!);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"codes={lines.Count} missing={missing}"));
        return 0;
    }

    [GeneratedRegex(@"code is:? (\d{4,10})\b")]
    private static partial Regex CodeInBody();
}
