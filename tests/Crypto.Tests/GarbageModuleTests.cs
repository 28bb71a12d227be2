using System.Security.Cryptography;
using DevRift.Hsm.Testing;

namespace DevRift.Hsm.Crypto.Tests;

/// <summary>
/// A module that answers with garbage — a length query of 2^64−1, a signature one byte short — played by
/// <c>tests/hsm/garbage-module.c</c> (built by <c>test.sh</c>, path in <c>DEVRIFT_TEST_GARBAGE_MODULE</c>) in front of a
/// separate copy of SoftHSM2, switched on and off by a file. Every operation is <see cref="HsmUnavailableException"/>
/// (503), never an OverflowException or another bug-shaped exception (500), and the connection serves again by itself.
/// </summary>
public sealed class GarbageModuleTests : IDisposable
{
    private static readonly Lock s_copyLock = new();
    private readonly string _directory = Directory.CreateTempSubdirectory("devrift-garbage-").FullName;
    private readonly string _switch;

    public GarbageModuleTests()
    {
        _switch = Path.Combine(_directory, "switch");
        File.WriteAllText(_switch, "off");
    }

    // GCM goes into a buffer of the known size (a wrong length written is a device error); CBC-PAD asks the module
    // for the length first, and 2^64-1 makes Pkcs11Interop throw OverflowException: both must be 503.
    [Theory]
    [InlineData("CKM_AES_GCM")]
    [InlineData("CKM_AES_CBC_PAD")]
    public void A_module_answering_with_garbage_fails_closed_and_serves_again_when_it_stops(string sealMechanism)
    {
        using var hsm = OpenThroughShim(sealMechanism);
        hsm.InitializeKeys();
        var sealer = new Sealer(hsm);
        var vault = new SeedVault(hsm);
        var wrapped = vault.Wrap(RandomNumberGenerator.GetBytes(20));
        var sealedBlob = sealer.Seal([1, 2, 3], "c");
        Assert.Equal([1, 2, 3], sealer.Open(sealedBlob, "c"));

        File.WriteAllText(_switch, "on");
        AssertUnavailable(() => sealer.Seal([4], "c"));
        AssertUnavailable(() => sealer.Open(sealedBlob, "c"));
        AssertUnavailable(() => vault.ComputeHmac(wrapped, OtpNet.OtpHashMode.Sha1, [1]));
        Assert.False(hsm.Probe());

        File.WriteAllText(_switch, "off");
        var until = DateTime.UtcNow.AddSeconds(15);
        while (!hsm.Probe() && DateTime.UtcNow < until)
        {
            Thread.Sleep(100);
        }

        Assert.Equal([1, 2, 3], sealer.Open(sealedBlob, "c"));
        Assert.Equal(20, vault.ComputeHmac(wrapped, OtpNet.OtpHashMode.Sha1, [1]).Length);
    }

    [Fact]
    public void A_seed_create_wrap_or_unwrap_refused_once_succeeds_and_one_refused_every_time_is_503()
    {
        // Given seeds wrapped through the shim while it forwards every call
        using var hsm = OpenThroughShim();
        hsm.InitializeKeys();
        var vault = new SeedVault(hsm);
        var seeds = Enumerable.Range(0, 4).Select(_ => RandomNumberGenerator.GetBytes(20)).ToList();
        var wrapped = seeds.Take(2).Select(s => vault.Wrap(s)).ToList();
        byte[] data = [0, 0, 0, 0, 0, 0, 0, 1];

        // When every other C_WrapKey and C_UnwrapKey is refused with CKR_ATTRIBUTE_VALUE_INVALID and every other
        // C_CreateObject with CKR_TEMPLATE_INCONSISTENT (as SoftHSM2 does now and then under load): of any two calls in a
        // row one is refused, so without a second attempt one of these fails
        File.WriteAllText(_switch, "flaky");
        wrapped.AddRange(seeds.Skip(2).Select(s => vault.Wrap(s)));

        // Then bringing the seed in, wrapping and unwrapping it (a first HMAC with each seed) succeed, with the right results
        for (var i = 0; i < seeds.Count; i++)
        {
            Assert.Equal(ReferenceHmacSha1(seeds[i], data), vault.ComputeHmac(wrapped[i], OtpNet.OtpHashMode.Sha1, data));
        }

        // And a module that refuses every time is still 503, enrolment and unwrap alike
        File.WriteAllText(_switch, "refuse");
        AssertUnavailable(() => vault.Wrap(RandomNumberGenerator.GetBytes(20)));
        File.WriteAllText(_switch, "off");
        var freshSeed = RandomNumberGenerator.GetBytes(20);
        var fresh = vault.Wrap(freshSeed); // not unwrapped yet: its first HMAC needs C_UnwrapKey
        File.WriteAllText(_switch, "refuse");
        AssertUnavailable(() => vault.ComputeHmac(fresh, OtpNet.OtpHashMode.Sha1, data));

        // And it serves again once the module does
        File.WriteAllText(_switch, "off");
        Assert.Equal(ReferenceHmacSha1(freshSeed, data), vault.ComputeHmac(fresh, OtpNet.OtpHashMode.Sha1, data));
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private HsmConnection OpenThroughShim(string sealMechanism = "CKM_AES_GCM")
    {
        var module = Environment.GetEnvironmentVariable("DEVRIFT_TEST_GARBAGE_MODULE") is { Length: > 0 } path
            ? path
            : throw new InvalidOperationException("DEVRIFT_TEST_GARBAGE_MODULE is not set: run the tests with ./test.sh, which builds it");

        // The shim forwards to its own copy of SoftHSM2 (a second instance, not the one the other tests share)
        // (one copy per process: the module stays loaded, and a second copy would be a second instance)
        var target = Path.Combine(Path.GetTempPath(), $"devrift-softhsm2-copy-{Environment.ProcessId}.so");
        lock (s_copyLock)
        {
            if (!File.Exists(target))
            {
                File.Copy(SoftHsmTokens.ModulePath, target);
            }
        }

        HsmModules.SetNativeEnvironment("DEVRIFT_GARBAGE_TARGET", target);
        HsmModules.SetNativeEnvironment("DEVRIFT_GARBAGE_SWITCH", _switch);
        var options = SoftHsmTokens.CreateToken();
        options.ModulePath = module;
        options.SealMechanism = sealMechanism;
        return HsmConnection.Open(options);
    }

    // The reference HMAC for a TOTP seed: RFC 6238's default is HMAC-SHA-1, which is what the vault computes here
#pragma warning disable CA5350
    private static byte[] ReferenceHmacSha1(byte[] key, byte[] data) => HMACSHA1.HashData(key, data);
#pragma warning restore CA5350

    private static void AssertUnavailable(Action operation)
    {
        var e = Record.Exception(operation);
        Assert.True(e is HsmUnavailableException, $"expected HsmUnavailableException, got {e?.GetType().Name ?? "success"}: {e}");
    }
}
