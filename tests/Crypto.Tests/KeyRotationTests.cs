using System.Security.Cryptography;
using System.Text;
using DevRift.Hsm.Testing;
using Net.Pkcs11Interop.Common;
using OtpNet;

namespace DevRift.Hsm.Crypto.Tests;

/// <summary>Rotation adds version N+1; data made under older versions still verifies. One token per test.</summary>
public sealed class KeyRotationTests
{
    private static readonly byte[] s_data = Encoding.ASCII.GetBytes("api-key verifier input");

    [Fact]
    public void Rotating_the_lookup_key_creates_v2_and_v1_macs_still_verify()
    {
        // Given a token with v1 keys and MACs made under lookup v1
        using var hsm = SoftHsmTokens.CreateInitialisedToken();
        var mac = new HsmMac(hsm);
        var verifiers = new LookupVerifiers(mac);
        var v1Mac = mac.Sign(KeyPurpose.Lookup, s_data);
        var v1Verifier = verifiers.Compute("api-key", "app_1", "sk_live_abc");

        // When the lookup key is rotated
        var label = hsm.RotateKey(KeyPurpose.Lookup);

        // Then devrift.lookup.v2 exists beside v1, new MACs use it, and v1 MACs still verify
        Assert.Equal("devrift.lookup.v2", label);
        Assert.Equal([1, 2], hsm.KeyVersions()[KeyPurpose.Lookup]);
        Assert.All(KeyLabels.All.Where(p => p != KeyPurpose.Lookup), p => Assert.Equal([1], hsm.KeyVersions()[p]));
        Assert.Equal(1, v1Mac.Version);
        var v2Mac = mac.Sign(KeyPurpose.Lookup, s_data);
        Assert.Equal(2, v2Mac.Version);
        Assert.Equal(2, mac.CurrentVersion(KeyPurpose.Lookup));
        Assert.NotEqual(v1Mac.Mac, v2Mac.Mac);
        Assert.Equal(v1Mac.Mac, mac.Sign(KeyPurpose.Lookup, 1, s_data));
        Assert.Equal(v2Mac.Mac, mac.Sign(KeyPurpose.Lookup, 2, s_data));
        Assert.True(verifiers.Matches("api-key", "app_1", "sk_live_abc", v1Verifier));
        Assert.Equal(2, verifiers.Compute("api-key", "app_1", "sk_live_abc").Version);
    }

    [Fact]
    public void Rotated_key_is_as_protected_as_the_first()
    {
        // Given a token whose lookup key was rotated
        using var hsm = SoftHsmTokens.CreateInitialisedToken();
        hsm.RotateKey(KeyPurpose.Lookup);

        // When the new key is looked at from outside the layer
        using var inspector = new TokenInspector(hsm);
        var key = inspector.KeyByLabel("devrift.lookup.v2");

        // Then it is a sensitive, never-extractable, sign-only token object with its label as ID
        Assert.True(inspector.Bool(key, CKA.CKA_TOKEN));
        Assert.True(inspector.Bool(key, CKA.CKA_SENSITIVE));
        Assert.True(inspector.Bool(key, CKA.CKA_ALWAYS_SENSITIVE));
        Assert.False(inspector.Bool(key, CKA.CKA_EXTRACTABLE));
        Assert.True(inspector.Bool(key, CKA.CKA_NEVER_EXTRACTABLE));
        Assert.True(inspector.Bool(key, CKA.CKA_SIGN));
        Assert.False(inspector.Bool(key, CKA.CKA_ENCRYPT));
        Assert.Equal(Encoding.ASCII.GetBytes("devrift.lookup.v2"), inspector.Id(key));
        Assert.Equal(CKR.CKR_ATTRIBUTE_SENSITIVE, inspector.ReadValue(key).Rv);
        Assert.Equal(6, inspector.SecretKeys(token: true).Count);
    }

    [Fact]
    public void Rotating_the_code_key_keeps_old_challenges_codes()
    {
        // Given a challenge whose code was derived under code key v1
        using var hsm = SoftHsmTokens.CreateInitialisedToken();
        var codes = new OobCodes(new HsmMac(hsm));
        byte[] nonce = [1, 2, 3, 4];
        var v1Code = codes.Derive("ch_1", "sms", nonce, 8, codes.CurrentVersion);

        // When the code key is rotated
        Assert.Equal("devrift.code.v2", hsm.RotateKey(KeyPurpose.Code));

        // Then the old challenge still verifies with the version it recorded, and new challenges use v2
        Assert.True(codes.Verify("ch_1", "sms", nonce, 8, 1, v1Code));
        Assert.Equal(2, codes.CurrentVersion);
        Assert.NotEqual(v1Code, codes.Derive("ch_1", "sms", nonce, 8, 2)); // a 1e-8 collision aside
    }

    [Fact]
    public void Rotating_the_seal_key_keeps_old_blobs_open()
    {
        // Given a blob sealed under seal v1
        using var hsm = SoftHsmTokens.CreateInitialisedToken();
        var sealer = new Sealer(hsm);
        var old = sealer.Seal(s_data, "outbox:1");

        // When the seal key is rotated
        Assert.Equal("devrift.seal.v2", hsm.RotateKey(KeyPurpose.Seal));
        var fresh = sealer.Seal(s_data, "outbox:2");

        // Then the old blob still opens, and new blobs name version 2
        Assert.Equal(s_data, sealer.Open(old, "outbox:1"));
        Assert.Equal(1, Sealer.VersionOf(old));
        Assert.Equal(2, Sealer.VersionOf(fresh));
        Assert.Equal(s_data, sealer.Open(fresh, "outbox:2"));
    }

    [Fact]
    public void Rotating_the_seed_kek_keeps_old_seeds_and_rewrap_moves_them_to_v2()
    {
        // Given a seed wrapped under seed-kek v1
        using var hsm = SoftHsmTokens.CreateInitialisedToken();
        var vault = new SeedVault(hsm);
        var seed = RandomNumberGenerator.GetBytes(20);
        var v1 = vault.Wrap(seed);
        var expected = ReferenceOtp.Hmac(OtpHashMode.Sha1, seed, s_data);

        // When the KEK is rotated and the seed re-wrapped inside the HSM
        Assert.Equal("devrift.seed-kek.v2", hsm.RotateKey(KeyPurpose.SeedKek));
        var v2 = vault.Rewrap(v1);

        // Then both blobs compute the seed's HMAC, the new one names v2, and re-wrapping it again is a no-op
        Assert.Equal(1, v1.KekVersion);
        Assert.Equal(2, v2.KekVersion);
        Assert.NotEqual(v1.Blob, v2.Blob);
        Assert.Equal(expected, vault.ComputeHmac(v1, OtpHashMode.Sha1, s_data));
        Assert.Equal(expected, vault.ComputeHmac(v2, OtpHashMode.Sha1, s_data));
        Assert.Same(v2, vault.Rewrap(v2));
        Assert.Equal(2, vault.Wrap(seed).KekVersion);
    }
}
