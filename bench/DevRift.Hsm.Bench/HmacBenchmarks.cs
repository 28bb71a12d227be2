using System.Buffers.Binary;
using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using DevRift.Hsm.Crypto;
using OtpNet;

namespace DevRift.Hsm.Bench;

/// <summary>
/// One HMAC-SHA1 over an 8-byte counter (the HOTP/TOTP input): in the HSM with the seed's unwrapped handle
/// already cached (one <c>C_Sign</c>), against the same HMAC in process memory.
/// </summary>
[MemoryDiagnoser]
public class HmacBenchmarks
{
    private BenchToken? _token;
    private SeedVault _vault = null!;
    private WrappedSeed _wrapped = null!;
    private byte[] _seed = null!;
    private byte[] _counter = null!;

    [GlobalSetup]
    public void Setup()
    {
        _token = BenchToken.Create();
        _vault = _token.Vault;
        _seed = _vault.GenerateSeed(OtpHashMode.Sha1);
        _wrapped = _vault.Wrap(_seed);
        _counter = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(_counter, 58_333_333);

        // Warm the handle cache and check that both sides compute the same MAC.
        var inHsm = _vault.ComputeHmac(_wrapped, OtpHashMode.Sha1, _counter);
        if (!inHsm.AsSpan().SequenceEqual(InMemoryHmacSha1()))
        {
            throw new InvalidOperationException("the HSM HMAC differs from the in-memory HMAC");
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_seed is not null)
        {
            CryptographicOperations.ZeroMemory(_seed);
        }

        _token?.Dispose();
    }

    /// <summary><see cref="HMACSHA1.HashData(byte[], byte[])"/> with the seed in memory.</summary>
    [Benchmark(Baseline = true)]
    public byte[] InMemoryHmacSha1() => HmacSha1(_seed, _counter);

    /// <summary><see cref="SeedVault.ComputeHmac"/>: one <c>C_Sign</c> on the cached seed handle.</summary>
    [Benchmark]
    public byte[] HsmCachedHandle() => _vault.ComputeHmac(_wrapped, OtpHashMode.Sha1, _counter);

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Security", "CA5350", Justification = "RFC 4226/6238 TOTP is HMAC-SHA1; this is the in-memory reference the HSM is compared with.")]
    private static byte[] HmacSha1(byte[] key, byte[] data) => HMACSHA1.HashData(key, data);
}
