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
    public void A_template_stays_valid_for_the_whole_call_while_the_collector_runs()
    {
        // Given a module that holds every call taking a template (C_CreateObject, C_UnwrapKey, C_FindObjectsInit) for
        // 10 ms and refuses it if the template's memory changed meanwhile
        using var hsm = OpenThroughShim();
        hsm.InitializeKeys();
        var vault = new SeedVault(hsm);
        byte[] data = [0, 0, 0, 0, 0, 0, 0, 1];
        var seedAfterReload = RandomNumberGenerator.GetBytes(20);
        File.WriteAllText(_switch, "hold");

        // When the collector runs and finalizes all the while seeds are brought in and unwrapped, and the key ring reloaded
        using var stop = new CancellationTokenSource();
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        }) { IsBackground = true };
        collector.Start();
        try
        {
            // Then every call succeeds, with the right result (a template freed during its call — Pkcs11Interop's
            // attribute objects free their memory when finalized — would be refused here)
            for (var i = 0; i < 150; i++)
            {
                var seed = RandomNumberGenerator.GetBytes(20);
                var wrapped = vault.Wrap(seed);
                Assert.Equal(ReferenceHmacSha1(seed, data), vault.ComputeHmac(wrapped, OtpNet.OtpHashMode.Sha1, data));
            }

            // And the key ring, searched with a template per object class, reloads every time
            for (var i = 0; i < 200; i++)
            {
                hsm.ReloadKeys();
            }

            Assert.Equal(ReferenceHmacSha1(seedAfterReload, data), vault.ComputeHmac(vault.Wrap(seedAfterReload), OtpNet.OtpHashMode.Sha1, data));
        }
        finally
        {
            stop.Cancel();
            collector.Join();
            File.WriteAllText(_switch, "off");
        }
    }

    [Fact]
    public void A_module_that_refuses_every_seed_call_is_503_and_serves_again_when_it_stops()
    {
        using var hsm = OpenThroughShim();
        hsm.InitializeKeys();
        var vault = new SeedVault(hsm);
        byte[] data = [0, 0, 0, 0, 0, 0, 0, 1];

        // Enrolment (C_CreateObject, then C_WrapKey) and a first HMAC (C_UnwrapKey) refused every time are 503
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

    [Fact]
    public void A_module_that_refuses_to_copy_keys_is_used_with_the_token_keys_themselves()
    {
        // Given a module that answers every C_CopyObject with CKR_ACTION_PROHIBITED
        File.WriteAllText(_switch, "nocopy");
        using var hsm = OpenThroughShim("CKM_AES_CBC_PAD");

        // When the connection makes its keys and reads them again
        hsm.InitializeKeys();
        hsm.ReloadKeys();

        // Then no copy exists and every key is used as the token object it is
        using var inspector = new TokenInspector(hsm);
        Assert.Empty(inspector.KeyCopies());
        Assert.Equal(0, hsm.Execute(ctx => ctx.Keys.SessionCopies));
        foreach (var purpose in KeyLabels.All)
        {
            var entry = hsm.Execute(ctx => ctx.Keys.CurrentEntry(purpose).Entry);
            Assert.True(inspector.Bool(entry.Handle, Net.Pkcs11Interop.Common.CKA.CKA_TOKEN), purpose.ToString());
            Assert.Same(entry.TokenHandle, entry.Handle);
        }

        // And seeds, seals and MACs all work with them
        var vault = new SeedVault(hsm);
        var seed = RandomNumberGenerator.GetBytes(20);
        byte[] data = [0, 0, 0, 0, 0, 0, 0, 1];
        Assert.Equal(ReferenceHmacSha1(seed, data), vault.ComputeHmac(vault.Wrap(seed), OtpNet.OtpHashMode.Sha1, data));
        var sealer = new Sealer(hsm);
        Assert.Equal([7, 8], sealer.Open(sealer.Seal([7, 8], "c"), "c"));
        var mac = new HsmMac(hsm);
        Assert.Equal(mac.Sign(KeyPurpose.Lookup, data).Mac, mac.Sign(KeyPurpose.Lookup, 1, data));
        Assert.True(hsm.Probe());
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
