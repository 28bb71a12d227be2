using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using DevRift.Hsm.Crypto;
using OtpNet;

namespace DevRift.Hsm.Bench;

/// <summary>
/// Counts the PKCS#11 calls behind each benchmarked operation, deterministically, by running them through
/// OpenSC's <c>pkcs11-spy.so</c> in front of SoftHSM2: the timings on a shared machine are noisy, the call
/// counts are not. Started by <c>bench/count-calls.sh</c>, which sets <c>PKCS11SPY</c> and
/// <c>PKCS11SPY_OUTPUT</c> (the spy reads them with getenv, so they must be in the process environment).
/// </summary>
internal static partial class CallCounts
{
    private const int Repetitions = 100;
    private static readonly TotpParameters s_parameters = new(OtpHashMode.Sha1, 6, 30);
    private static readonly DateTimeOffset s_now = DateTimeOffset.FromUnixTimeSeconds(1_750_000_005);

    public static int Run(string[] args)
    {
        var spy = Environment.GetEnvironmentVariable("PKCS11SPY_MODULE") ?? "/usr/lib/x86_64-linux-gnu/pkcs11-spy.so";
        var log = Environment.GetEnvironmentVariable("PKCS11SPY_OUTPUT");
        if (string.IsNullOrEmpty(log) || string.IsNullOrEmpty(Environment.GetEnvironmentVariable("PKCS11SPY")) || !File.Exists(spy))
        {
            Console.Error.WriteLine("--count-calls needs PKCS11SPY, PKCS11SPY_OUTPUT and pkcs11-spy.so; use bench/count-calls.sh");
            return 2;
        }

        var output = args.Length > 0 ? args[0] : null;

        // One entry in the seed-handle cache, as in SeedCacheMissBenchmarks; the single-seed scenarios stay hits.
        using var token = BenchToken.Create(o =>
        {
            o.ModulePath = spy;
            o.SeedHandleCacheSize = 1;
        });
        var vault = token.Vault;
        var verifier = new TotpVerifier(vault);
        var a = WrapFresh(vault);
        var b = WrapFresh(vault);
        var counter = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(counter, 58_333_333);

        var step = s_now.ToUnixTimeSeconds() / s_parameters.PeriodSeconds;
        var window = new[] { step - 1, step, step + 1 }
            .Select(s => verifier.Compute(a, s_parameters, DateTimeOffset.FromUnixTimeSeconds(s * s_parameters.PeriodSeconds)))
            .ToArray();
        var valid = window[1];
        var wrong = Enumerable.Range(0, 1_000_000).Select(n => n.ToString("D6", CultureInfo.InvariantCulture)).First(c => !window.Contains(c));

        _ = vault.ComputeHmac(a, OtpHashMode.Sha1, counter); // A cached
        var useB = false;
        var scenarios = new (string Name, Action Op)[]
        {
            ("HMAC, cached handle (HmacBenchmarks.HsmCachedHandle)", () => vault.ComputeHmac(a, OtpHashMode.Sha1, counter)),
            ("TOTP verify, valid current-step code (TotpBenchmarks.HsmCachedHandle)", () => Expect(verifier.Verify(a, s_parameters, valid, s_now, 1, 1, -1).Valid, true)),
            ("TOTP verify, wrong code (TotpBenchmarks.HsmCachedHandle)", () => Expect(verifier.Verify(a, s_parameters, wrong, s_now, 1, 1, -1).Valid, false)),
            ("HMAC, cache miss (SeedCacheMissBenchmarks.UnwrapSignDestroy)", () =>
            {
                useB = !useB;
                _ = vault.ComputeHmac(useB ? b : a, OtpHashMode.Sha1, counter);
            }),
        };

        var report = new StringBuilder();
        report.AppendLine("# PKCS#11 calls per operation")
            .AppendLine()
            .AppendLine(CultureInfo.InvariantCulture, $"Counted with OpenSC `pkcs11-spy.so` in front of SoftHSM2 over {Repetitions} operations each (after one warm-up operation); made by `bench/count-calls.sh`.")
            .AppendLine("Pkcs11Interop's `Sign` calls `C_Sign` twice (length query, then the MAC), so `C_SignInit` is the number of HMACs.")
            .AppendLine();
        foreach (var (name, op) in scenarios)
        {
            op();
            var counts = Count(log, op);
            report.AppendLine(CultureInfo.InvariantCulture, $"## {name}")
                .AppendLine()
                .AppendLine("| PKCS#11 function | calls per operation |")
                .AppendLine("| --- | ---: |");
            foreach (var (function, calls) in counts.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                report.AppendLine(CultureInfo.InvariantCulture, $"| `{function}` | {calls / (double)Repetitions:0.##} |");
            }

            report.AppendLine();
        }

        var text = report.ToString();
        if (output is null)
        {
            Console.Write(text);
        }
        else
        {
            File.WriteAllText(output, text);
            Console.WriteLine($"wrote {output}");
        }

        return 0;
    }

    private static Dictionary<string, int> Count(string log, Action op)
    {
        var start = new FileInfo(log).Length;
        for (var i = 0; i < Repetitions; i++)
        {
            op();
        }

        string tail;
        using (var stream = new FileStream(log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
        {
            stream.Seek(start, SeekOrigin.Begin);
            using var reader = new StreamReader(stream, Encoding.UTF8);
            tail = reader.ReadToEnd();
        }

        return CallLine().Matches(tail)
            .GroupBy(m => m.Groups[1].Value, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
    }

    private static void Expect(bool actual, bool expected)
    {
        if (actual != expected)
        {
            throw new InvalidOperationException($"TOTP verify returned {actual}, expected {expected}");
        }
    }

    private static WrappedSeed WrapFresh(SeedVault vault)
    {
        var seed = vault.GenerateSeed(OtpHashMode.Sha1);
        try
        {
            return vault.Wrap(seed);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
    }

    [GeneratedRegex(@"^\d+: (C_\w+)\r?$", RegexOptions.Multiline)]
    private static partial Regex CallLine();
}
