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
        using var hsm = HsmConnection.Open(options);
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

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static void AssertUnavailable(Action operation)
    {
        var e = Record.Exception(operation);
        Assert.True(e is HsmUnavailableException, $"expected HsmUnavailableException, got {e?.GetType().Name ?? "success"}: {e}");
    }
}
