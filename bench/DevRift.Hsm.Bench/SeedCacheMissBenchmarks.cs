using System.Buffers.Binary;
using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using DevRift.Hsm.Crypto;
using Net.Pkcs11Interop.Common;
using OtpNet;

namespace DevRift.Hsm.Bench;

/// <summary>
/// The seed-handle cache miss path. The connection keeps a single unwrapped seed
/// (<see cref="HsmOptions.SeedHandleCacheSize"/> = 1) and the miss benchmark alternates between two wrapped
/// seeds, so every call unwraps its seed (<c>C_UnwrapKey</c>), destroys the one it evicts
/// (<c>C_DestroyObject</c>) and signs (<c>C_Sign</c>). The baseline signs with one seed only: a cache hit.
/// </summary>
[MemoryDiagnoser]
public class SeedCacheMissBenchmarks
{
    private BenchToken? _token;
    private SeedVault _vault = null!;
    private WrappedSeed _a = null!;
    private WrappedSeed _b = null!;
    private byte[] _counter = null!;
    private bool _useB;

    [GlobalSetup]
    public void Setup()
    {
        _token = BenchToken.Create(o => o.SeedHandleCacheSize = 1);
        _vault = _token.Vault;
        _a = WrapFresh(_vault);
        _b = WrapFresh(_vault);
        _counter = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(_counter, 58_333_333);

        var macA = _vault.ComputeHmac(_a, OtpHashMode.Sha1, _counter);
        var macB = _vault.ComputeHmac(_b, OtpHashMode.Sha1, _counter);
        if (macA.AsSpan().SequenceEqual(macB) || _vault.CachedHandles != 1)
        {
            throw new InvalidOperationException("expected two distinct seeds and a one-entry handle cache");
        }

        // Every miss must destroy the seed it evicts: after a run of misses only one unwrapped seed may exist.
        for (var i = 0; i < 10; i++)
        {
            _ = UnwrapSignDestroy();
        }

        var sessionKeys = UnwrappedSeedObjects(_token.Connection);
        if (sessionKeys != 1)
        {
            throw new InvalidOperationException($"expected 1 unwrapped seed object in the HSM after 10 misses, found {sessionKeys}");
        }

        _useB = false;
        _ = _vault.ComputeHmac(_a, OtpHashMode.Sha1, _counter); // leave A cached for the baseline
    }

    [GlobalCleanup]
    public void Cleanup() => _token?.Dispose();

    /// <summary>Cache hit: one <c>C_Sign</c>.</summary>
    [Benchmark(Baseline = true)]
    public byte[] CachedHandleSign() => _vault.ComputeHmac(_a, OtpHashMode.Sha1, _counter);

    /// <summary>Cache miss: <c>C_UnwrapKey</c>, <c>C_DestroyObject</c> of the evicted seed, <c>C_Sign</c>.</summary>
    [Benchmark]
    public byte[] UnwrapSignDestroy()
    {
        _useB = !_useB;
        return _vault.ComputeHmac(_useB ? _b : _a, OtpHashMode.Sha1, _counter);
    }

    /// <summary>
    /// Session (non-token) secret keys visible to this application without a label: the unwrapped seeds (the session
    /// copies of the token's keys carry their labels).
    /// </summary>
    private static int UnwrappedSeedObjects(HsmConnection connection) => connection.Execute(ctx =>
        ctx.Session.FindAllObjects([
            HsmContext.Attribute(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
            HsmContext.Attribute(CKA.CKA_TOKEN, false),
        ]).Count(h => ctx.Session.GetAttributeValue(h, [CKA.CKA_LABEL])[0].GetValueAsString() is null or ""));

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
}
