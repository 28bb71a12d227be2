using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using DevRift.Hsm.Testing;
using OtpNet;
using Xunit.Abstractions;

namespace DevRift.Hsm.Crypto.Tests;

/// <summary>Many threads sharing one connection: every result right, nothing thrown.</summary>
public sealed class ConcurrencyTests(InitialisedToken token, ITestOutputHelper output) : IClassFixture<InitialisedToken>
{
    private const int Threads = 8;

    [Fact]
    public void Eight_threads_of_ten_thousand_hmacs_each_all_get_the_right_answer()
    {
        // Given four inputs whose lookup MACs (HSM key) and seed HMACs (wrapped seed) are known
        var mac = new HsmMac(token.Hsm);
        var vault = new SeedVault(token.Hsm);
        var seed = RandomNumberGenerator.GetBytes(32);
        var wrapped = vault.Wrap(seed);
        var inputs = Enumerable.Range(0, 4).Select(i => Encoding.ASCII.GetBytes($"input-{i}")).ToArray();
        var expectedMacs = inputs.Select(d => mac.Sign(KeyPurpose.Lookup, d).Mac).ToArray();
        var expectedSeedMacs = inputs.Select(d => ReferenceOtp.Hmac(OtpHashMode.Sha256, seed, d)).ToArray();

        // When 8 threads each run 10,000 HMACs in the HSM, alternating the two kinds, all at once
        var (ops, wrong, errors, elapsed) = Hammer(Threads, 10_000, (t, i) =>
        {
            var k = (t + i) % inputs.Length;
            return i % 2 == 0
                ? mac.Sign(KeyPurpose.Lookup, inputs[k]) is { Version: 1 } m && m.Mac.AsSpan().SequenceEqual(expectedMacs[k])
                : vault.ComputeHmac(wrapped, OtpHashMode.Sha256, inputs[k]).AsSpan().SequenceEqual(expectedSeedMacs[k]);
        });
        output.WriteLine($"{ops} HMACs in {elapsed.TotalMilliseconds:F0} ms");

        // Then all 80,000 ran, none threw, every one was right, and the connection is still up
        Assert.Empty(errors.Select(e => e.Message).Distinct());
        Assert.Equal(0, wrong);
        Assert.Equal(80_000, ops);
        Assert.True(token.Hsm.IsAvailable);
    }

    [Fact]
    public void Seed_hmacs_while_the_cache_evicts_under_concurrency_all_succeed()
    {
        // Given a connection whose unwrapped-seed cache holds 2 seeds, and 6 seeds in use
        using var churn = new SeedChurn();

        // When 8 threads each run 1,000 HMACs cycling through the seeds (constant eviction and re-unwrap)
        var (ops, wrong, errors, elapsed) = churn.Run();
        output.WriteLine($"{ops} HMACs in {elapsed.TotalMilliseconds:F0} ms, {wrong} wrong, {errors.Count} threw");
        foreach (var g in errors.GroupBy(e => e.Message))
        {
            output.WriteLine($"{g.Count()} x {g.Key}");
        }

        // Then every one ran and was right: eviction is invisible to callers
        Assert.Equal(8_000, ops);
        Assert.Equal(0, wrong);
        Assert.Empty(errors.Select(e => e.Message).Distinct());
    }

    [Fact]
    public void Seed_objects_evicted_under_concurrency_are_destroyed_in_the_hsm()
    {
        // Given a connection whose unwrapped-seed cache holds 2 seeds, and 6 seeds in use
        using var churn = new SeedChurn();

        // When 8 threads each run 1,000 HMACs cycling through the seeds (constant eviction and re-unwrap)
        _ = churn.Run();

        // Then the HSM holds exactly the unwrapped seeds the cache knows: every evicted one was destroyed
        using var inspector = new TokenInspector(churn.Hsm);
        var sessionObjects = inspector.UnwrappedSeeds().Count;
        output.WriteLine($"cache holds {churn.Vault.CachedHandles}, HSM holds {sessionObjects} session objects");
        Assert.Equal(2, churn.Vault.CachedHandles);
        Assert.Equal(2, sessionObjects);
    }

    /// <summary>Six seeds through a two-slot cache from eight threads: every HMAC evicts and re-unwraps.</summary>
    private sealed class SeedChurn : IDisposable
    {
        private readonly byte[] _data = Encoding.ASCII.GetBytes("counter");
        private readonly WrappedSeed[] _wrapped;
        private readonly byte[][] _expected;

        public SeedChurn()
        {
            var options = SoftHsmTokens.CreateToken();
            options.SeedHandleCacheSize = 2;
            Hsm = HsmConnection.Open(options);
            Hsm.InitializeKeys();
            Vault = new SeedVault(Hsm);
            var seeds = Enumerable.Range(0, 6).Select(_ => RandomNumberGenerator.GetBytes(20)).ToArray();
            _wrapped = seeds.Select(s => Vault.Wrap(s)).ToArray();
            _expected = seeds.Select(s => ReferenceOtp.Hmac(OtpHashMode.Sha1, s, _data)).ToArray();
        }

        public HsmConnection Hsm { get; }

        public SeedVault Vault { get; }

        public (int Ops, int Wrong, List<Exception> Errors, TimeSpan Elapsed) Run() => Hammer(Threads, 1_000, (t, i) =>
        {
            var k = ((t * 7) + i) % _wrapped.Length;
            return Vault.ComputeHmac(_wrapped[k], OtpHashMode.Sha1, _data).AsSpan().SequenceEqual(_expected[k]);
        });

        public void Dispose() => Hsm.Dispose();
    }

    private static (int Ops, int Wrong, List<Exception> Errors, TimeSpan Elapsed) Hammer(int threads, int perThread, Func<int, int, bool> op)
    {
        var ops = 0;
        var wrong = 0;
        var errors = new ConcurrentQueue<Exception>();
        using var start = new Barrier(threads + 1);
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            for (var i = 0; i < perThread; i++)
            {
                try
                {
                    if (!op(t, i))
                    {
                        Interlocked.Increment(ref wrong);
                    }
                }
                catch (Exception e)
                {
                    errors.Enqueue(e);
                }

                Interlocked.Increment(ref ops);
            }
        })).ToList();
        workers.ForEach(w => w.Start());
        var clock = Stopwatch.StartNew();
        start.SignalAndWait();
        workers.ForEach(w => w.Join());
        return (ops, wrong, [.. errors], clock.Elapsed);
    }
}
