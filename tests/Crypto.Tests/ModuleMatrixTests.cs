using System.Security.Cryptography;
using DevRift.Hsm.Testing;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using OtpNet;

namespace DevRift.Hsm.Crypto.Tests;

/// <summary>The p11-kit server is one per process: every class that uses it runs in this collection, one at a time.</summary>
[CollectionDefinition(nameof(ForwardedModule), DisableParallelization = true)]
public sealed class ForwardedModule;

/// <summary>
/// The key hierarchy and every keyed operation on each PKCS#11 implementation the appliance supports, in the
/// configuration that works there: SoftHSM2 (RFC 5649 wrap, GCM), openCryptoki's soft token (CBC-PAD + HMAC for both)
/// and SoftHSM2 forwarded by p11-kit (RSA-OAEP + HMAC wrap, AES-CTR from ECB + HMAC sealing). Each module's connection
/// is opened once per process on a token that starts empty.
/// </summary>
[Collection(nameof(ForwardedModule))]
public sealed class ModuleMatrixTests
{
    private static readonly Lock s_lock = new();
    private static readonly Dictionary<string, HsmConnection> s_connections = [];
    private static readonly byte[] s_counter = [0, 0, 0, 0, 0, 0, 0, 1];

    public static TheoryData<string> Modules => new() { "softhsm2", "opencryptoki", "p11-kit" };

    internal static HsmConnection Connection(string module)
    {
        lock (s_lock)
        {
            if (!s_connections.TryGetValue(module, out var hsm))
            {
                hsm = HsmConnection.Open(Options(module));
                hsm.InitializeKeys();
                s_connections[module] = hsm;
            }

            return hsm;
        }
    }

    internal static HsmOptions Options(string module) => module switch
    {
        "softhsm2" => SoftHsmTokens.CreateToken(),
        "opencryptoki" => HsmModules.OpenCryptoki('A'),
        "p11-kit" => P11KitServer.Shared.Options(),
        _ => throw new ArgumentOutOfRangeException(nameof(module)),
    };

    [Theory]
    [MemberData(nameof(Modules))]
    public void Init_makes_every_key_sensitive_not_extractable_and_of_the_schemes_kind(string module)
    {
        var hsm = Connection(module);
        using var session = hsm.SlotForTesting().OpenSession(SessionType.ReadOnly);
        // The current version of each purpose (the rotation test of this class may have run first on the same token)
        var current = hsm.KeyVersions().ToDictionary(v => v.Key, v => v.Value[^1]);
        var expected = KeyLabels.All.Select(p => KeyLabels.Label(p, current[p])).ToList();
        if (module != "softhsm2")
        {
            expected.AddRange([KeyLabels.MacLabel(KeyPurpose.SeedKek, current[KeyPurpose.SeedKek]), KeyLabels.MacLabel(KeyPurpose.Seal, current[KeyPurpose.Seal])]);
        }

        foreach (var label in expected)
        {
            var objects = session.FindAllObjects([Attr(CKA.CKA_LABEL, label), Attr(CKA.CKA_TOKEN, true)]);
            Assert.True(objects.Count > 0, $"{module}: no {label}");
            foreach (var obj in objects)
            {
                var cls = session.GetAttributeValue(obj, [CKA.CKA_CLASS])[0].GetValueAsUlong();
                if (cls == (ulong)CKO.CKO_PUBLIC_KEY)
                {
                    continue;
                }

                var attributes = session.GetAttributeValue(obj, [CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE]);
                Assert.True(attributes[0].GetValueAsBool(), $"{module}: {label} is not sensitive");
                Assert.False(attributes[1].GetValueAsBool(), $"{module}: {label} is extractable");
            }
        }

        // Readiness exercises every configured mechanism, and they all work here
        Assert.True(hsm.Probe(), module);

        // The RSA-OAEP seed KEK is a key pair (private half for unwrap, public half for wrap); elsewhere one AES key
        var kek = session.FindAllObjects([Attr(CKA.CKA_LABEL, KeyLabels.Label(KeyPurpose.SeedKek, current[KeyPurpose.SeedKek])), Attr(CKA.CKA_TOKEN, true)]);
        Assert.Equal(module == "p11-kit" ? 2 : 1, kek.Count);
    }

    [Theory]
    [MemberData(nameof(Modules))]
    public void A_wrapped_seed_computes_the_reference_hmac_and_a_changed_blob_is_refused(string module)
    {
        var vault = new SeedVault(Connection(module));
        var seed = RandomNumberGenerator.GetBytes(20);
        var wrapped = vault.Wrap(seed);
        var scheme = module switch
        {
            "softhsm2" => SeedWrapScheme.AesKeyWrapPad,
            "opencryptoki" => SeedWrapScheme.AesCbcPadHmac,
            _ => SeedWrapScheme.RsaOaepHmac,
        };

        Assert.Equal(scheme, SeedVault.SchemeOf(wrapped));
        Assert.Equal(ReferenceOtp.Hmac(OtpHashMode.Sha1, seed, s_counter), vault.ComputeHmac(wrapped, OtpHashMode.Sha1, s_counter));
        Assert.True(wrapped.Blob.AsSpan().IndexOf(seed.AsSpan(0, 8)) < 0);

        // Every byte matters: a flipped bit in the body or the tag is refused as data, never unwrapped into a seed
        foreach (var position in new[] { 1, wrapped.Blob.Length / 2, wrapped.Blob.Length - 1 })
        {
            var changed = wrapped.Blob.ToArray();
            changed[position] ^= 0x01;
            Assert.Throws<HsmDataException>(() => vault.ComputeHmac(new WrappedSeed(wrapped.KekVersion, changed), OtpHashMode.Sha1, s_counter));
        }
    }

    [Theory]
    [MemberData(nameof(Modules))]
    public void A_sealed_blob_opens_with_its_context_only_and_not_when_changed(string module)
    {
        var sealer = new Sealer(Connection(module));
        var plaintext = RandomNumberGenerator.GetBytes(100);
        var blob = sealer.Seal(plaintext, "outbox:42");
        Assert.Equal(module switch { "softhsm2" => 1, "opencryptoki" => 2, _ => 3 }, blob[0]);
        Assert.Equal(plaintext, sealer.Open(blob, "outbox:42"));
        Assert.Throws<HsmDataException>(() => sealer.Open(blob, "outbox:43"));
        var changed = blob.ToArray();
        changed[^20] ^= 0x80;
        Assert.Throws<HsmDataException>(() => sealer.Open(changed, "outbox:42"));
        Assert.Equal([], sealer.Open(sealer.Seal([], "empty"), "empty"));
    }

    [Theory]
    [MemberData(nameof(Modules))]
    public void Rotating_each_purpose_keeps_old_data_working_and_retiring_destroys_every_object_of_the_version(string module)
    {
        var hsm = Connection(module);
        var vault = new SeedVault(hsm);
        var sealer = new Sealer(hsm);
        var seed = RandomNumberGenerator.GetBytes(32);
        var oldSeed = vault.Wrap(seed);
        var oldSealed = sealer.Seal([1, 2, 3], "ctx");
        var before = hsm.KeyVersions();

        foreach (var purpose in KeyLabels.All)
        {
            var label = hsm.RotateKey(purpose);
            Assert.Equal(KeyLabels.Label(purpose, before[purpose][^1] + 1), label);
        }

        Assert.Empty(hsm.KeyProblems());
        // Old data opens under the old versions; a rewrap moves the seed to the new KEK, the HMAC unchanged
        Assert.Equal([1, 2, 3], sealer.Open(oldSealed, "ctx"));
        var rewrapped = vault.Rewrap(oldSeed);
        Assert.Equal(hsm.CurrentVersion(KeyPurpose.SeedKek), rewrapped.KekVersion);
        Assert.Equal(ReferenceOtp.Hmac(OtpHashMode.Sha256, seed, s_counter), vault.ComputeHmac(rewrapped, OtpHashMode.Sha256, s_counter));

        // Retiring the old seal version removes its key and its MAC key from the token; its blobs no longer open
        var oldVersion = SealerVersion(oldSealed);
        Assert.True(hsm.RetireKey(KeyPurpose.Seal, oldVersion));
        using var session = hsm.SlotForTesting().OpenSession(SessionType.ReadOnly);
        Assert.Empty(session.FindAllObjects([Attr(CKA.CKA_LABEL, KeyLabels.Label(KeyPurpose.Seal, oldVersion))]));
        Assert.Empty(session.FindAllObjects([Attr(CKA.CKA_LABEL, KeyLabels.MacLabel(KeyPurpose.Seal, oldVersion))]));
        Assert.Throws<HsmDataException>(() => sealer.Open(oldSealed, "ctx"));
    }

    [Fact]
    public void Opencryptoki_with_the_default_wrap_mechanism_is_refused_in_one_line_naming_the_alternatives()
    {
        var options = HsmModules.OpenCryptoki('A');
        options.WrapMechanism = "CKM_AES_KEY_WRAP_PAD";
        var e = Assert.IsType<HsmConfigurationException>(Record.Exception(() => HsmConnection.Open(options)));
        Assert.Equal(
            $"the HSM module '{options.ModulePath}' lacks CKM_AES_KEY_WRAP_PAD, needed for wrapping TOTP seeds: set Hsm:WrapMechanism to one it offers (CKM_AES_CBC_PAD, CKM_RSA_PKCS_OAEP)",
            e.Message);
    }

    [Fact]
    public void A_forwarded_module_without_gcm_is_refused_in_one_line_naming_what_it_forwards()
    {
        var options = P11KitServer.Shared.Options();
        options.SealMechanism = "CKM_AES_GCM";
        var e = Assert.IsType<HsmConfigurationException>(Record.Exception(() => HsmConnection.Open(options)));
        Assert.Equal(
            $"the HSM module '{options.ModulePath}' lacks CKM_AES_GCM, needed for sealing outbox bodies: set Hsm:SealMechanism to one it offers (CKM_AES_ECB)",
            e.Message);
    }

    [Fact]
    public void A_key_ring_that_does_not_suit_a_changed_scheme_is_named_and_init_makes_the_next_version()
    {
        // Given a token initialised for RFC 5649 and GCM
        var options = SoftHsmTokens.CreateToken();
        using (var first = HsmConnection.Open(options))
        {
            first.InitializeKeys();
        }

        // When it is opened for RSA-OAEP wrapping and CBC-PAD sealing
        options.WrapMechanism = "CKM_RSA_PKCS_OAEP";
        options.SealMechanism = "CKM_AES_CBC_PAD";
        using var hsm = HsmConnection.Open(options);

        // Then the unsuitable keys are named, and init makes the next versions of what is needed only
        Assert.Equal(
            [
                "devrift.seed-kek.v1 is not an RSA key pair, which Hsm:WrapMechanism CKM_RSA_PKCS_OAEP needs: run init to create the next version",
                "devrift.seal.v1 has no MAC key (devrift.seal.v1.mac), which Hsm:SealMechanism CKM_AES_CBC_PAD needs: run init to create the next version",
            ],
            hsm.KeyProblems());
        Assert.Equal(["devrift.seed-kek.v2", "devrift.seed-kek.v2.mac", "devrift.seal.v2", "devrift.seal.v2.mac"], hsm.InitializeKeys());
        Assert.Empty(hsm.KeyProblems());
        Assert.Empty(hsm.InitializeKeys());
    }

    private static int SealerVersion(byte[] blob) => Sealer.VersionOf(blob);

    private static IObjectAttribute Attr(CKA type, string value) => HsmConnection.Factories.ObjectAttributeFactory.Create(type, value);

    private static IObjectAttribute Attr(CKA type, bool value) => HsmConnection.Factories.ObjectAttributeFactory.Create(type, value);
}
