using System.Security.Cryptography;
using Net.Pkcs11Interop.Common;
using OtpNet;

namespace DevRift.Hsm.Crypto.Tests;

/// <summary>Seeds wrapped under the seed KEK and used only as sign-only session objects in the HSM.</summary>
public sealed class SeedVaultTests(InitialisedToken token) : IClassFixture<InitialisedToken>
{
    private static readonly byte[] s_counter = [0, 0, 0, 0, 0, 0, 0, 42];

    [Theory]
    [InlineData(OtpHashMode.Sha1, 20)]
    [InlineData(OtpHashMode.Sha256, 32)]
    [InlineData(OtpHashMode.Sha512, 64)]
    public void Wrapped_seed_computes_the_same_hmac_as_the_seed_in_memory(OtpHashMode mode, int seedLength)
    {
        // Given a random seed and its wrapped blob
        var seed = RandomNumberGenerator.GetBytes(seedLength);
        var vault = new SeedVault(token.Hsm);
        var wrapped = vault.Wrap(seed);
        var message = RandomNumberGenerator.GetBytes(100);

        // When the HSM computes HMACs with the unwrapped seed
        var counterMac = vault.ComputeHmac(wrapped, mode, s_counter);
        var messageMac = vault.ComputeHmac(wrapped, mode, message);

        // Then they equal HMACSHA1/256/512 over the original seed, and the blob is not the seed
        Assert.Equal(ReferenceOtp.Hmac(mode, seed, s_counter), counterMac);
        Assert.Equal(ReferenceOtp.Hmac(mode, seed, message), messageMac);
        Assert.Equal(1, wrapped.KekVersion);
        // The scheme byte, then RFC 5649: padded to 8 bytes, plus the integrity block
        Assert.Equal((byte)SeedWrapScheme.AesKeyWrapPad, wrapped.Blob[0]);
        Assert.Equal(1 + ((seedLength + 7) / 8 * 8) + 8, wrapped.Blob.Length);
        Assert.False(wrapped.Blob.AsSpan().IndexOf(seed.AsSpan(0, 8)) >= 0);

        // And a blob stored before blobs recorded their scheme (the bare RFC 5649 output) still serves
        var legacy = new WrappedSeed(1, wrapped.Blob[1..]);
        Assert.Null(SeedVault.SchemeOf(legacy));
        Assert.Equal(ReferenceOtp.Hmac(mode, seed, message), vault.ComputeHmac(legacy, mode, message));
    }

    [Fact]
    public void Same_seed_wrapped_twice_gives_the_same_blob_and_one_cached_object()
    {
        // Given a seed
        var seed = RandomNumberGenerator.GetBytes(20);
        var vault = new SeedVault(token.Hsm);
        var cachedBefore = vault.CachedHandles;

        // When it is wrapped twice and both blobs are used
        var first = vault.Wrap(seed);
        var second = vault.Wrap(seed);
        var a = vault.ComputeHmac(first, OtpHashMode.Sha1, s_counter);
        var b = vault.ComputeHmac(second, OtpHashMode.Sha1, s_counter);

        // Then RFC 5649 wrapping is deterministic, the HMACs agree and one session object serves both
        Assert.Equal(first.Blob, second.Blob);
        Assert.Equal(a, b);
        Assert.Equal(cachedBefore + 1, vault.CachedHandles);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    [InlineData(15)]
    [InlineData(27)]
    public void Tampered_wrapped_seed_is_never_used(int flippedByte)
    {
        // Given a wrapped seed with one byte flipped
        var vault = new SeedVault(token.Hsm);
        var wrapped = vault.Wrap(RandomNumberGenerator.GetBytes(20));
        var blob = (byte[])wrapped.Blob.Clone();
        blob[flippedByte] ^= 0x01;
        var cachedBefore = vault.CachedHandles;

        // When it is used
        var e = Record.Exception(() => vault.ComputeHmac(wrapped with { Blob = blob }, OtpHashMode.Sha1, s_counter));

        // Then the HSM's integrity check stops it: an HSM failure, no HMAC, nothing cached
        Assert.IsAssignableFrom<HsmException>(e);
        Assert.True(vault.CachedHandles <= cachedBefore);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    [InlineData(15)]
    [InlineData(27)]
    public void Tampered_wrapped_seed_is_refused(int flippedByte)
    {
        // Given a wrapped seed with one byte flipped
        var vault = new SeedVault(token.Hsm);
        var wrapped = vault.Wrap(RandomNumberGenerator.GetBytes(20));
        var blob = (byte[])wrapped.Blob.Clone();
        blob[flippedByte] ^= 0x01;

        // When it is used
        var e = Record.Exception(() => vault.ComputeHmac(wrapped with { Blob = blob }, OtpHashMode.Sha1, s_counter));

        // Then the HSM's integrity check refuses it as bad data
        Assert.IsType<HsmDataException>(e);
    }

    [Fact]
    public void Tampered_wrapped_seed_leaves_the_connection_up()
    {
        // Given a good wrapped seed and a tampered copy
        var seed = RandomNumberGenerator.GetBytes(20);
        var vault = new SeedVault(token.Hsm);
        var wrapped = vault.Wrap(seed);
        var blob = (byte[])wrapped.Blob.Clone();
        blob[^1] ^= 0x80;

        // When the tampered copy is refused
        _ = Record.Exception(() => vault.ComputeHmac(wrapped with { Blob = blob }, OtpHashMode.Sha1, s_counter));

        // Then a bad blob is not a lost HSM: the connection stayed up and the good seed still works
        Assert.True(token.Hsm.IsAvailable);
        Assert.Equal(ReferenceOtp.Hmac(OtpHashMode.Sha1, seed, s_counter), vault.ComputeHmac(wrapped, OtpHashMode.Sha1, s_counter));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(99)]
    public void Blob_claiming_an_unknown_kek_version_is_refused(int kekVersion)
    {
        // Given a good blob that claims a KEK version the token does not hold
        var vault = new SeedVault(token.Hsm);
        var wrapped = vault.Wrap(RandomNumberGenerator.GetBytes(20));

        // When it is used
        var e = Record.Exception(() => vault.ComputeHmac(wrapped with { KekVersion = kekVersion }, OtpHashMode.Sha1, s_counter));

        // Then it is refused as bad data naming the missing key, and the connection stays up
        var data = Assert.IsType<HsmDataException>(e);
        Assert.Equal($"the token has no devrift.seed-kek.v{kekVersion} key", data.Message);
        Assert.True(token.Hsm.IsAvailable);
    }

    [Fact]
    public void Seed_shorter_than_16_bytes_is_refused_before_the_hsm()
    {
        // Given a 15-byte seed
        var vault = new SeedVault(token.Hsm);

        // When it is wrapped
        var e = Record.Exception(() => vault.Wrap(new byte[15]));

        // Then it is refused as an argument error
        Assert.Equal("seed", Assert.IsType<ArgumentException>(e).ParamName);
    }

    [Fact]
    public void Unwrapped_seed_is_a_sign_only_non_extractable_session_object()
    {
        // Given the session objects that exist now
        using var inspector = new TokenInspector(token.Hsm);
        var before = inspector.SecretKeys(token: false).Select(h => h.ObjectId).ToHashSet();
        var vault = new SeedVault(token.Hsm);
        var wrapped = vault.Wrap(RandomNumberGenerator.GetBytes(32));

        // When the seed is used once (unwrapped into the HSM)
        _ = vault.ComputeHmac(wrapped, OtpHashMode.Sha256, s_counter);

        // Then exactly one new session object holds it: private, sensitive, not extractable, usable only to sign
        var seed = Assert.Single(inspector.SecretKeys(token: false), h => !before.Contains(h.ObjectId));
        Assert.False(inspector.Bool(seed, CKA.CKA_TOKEN));
        Assert.True(inspector.Bool(seed, CKA.CKA_PRIVATE));
        Assert.True(inspector.Bool(seed, CKA.CKA_SENSITIVE));
        Assert.False(inspector.Bool(seed, CKA.CKA_EXTRACTABLE));
        Assert.Equal((ulong)CKK.CKK_GENERIC_SECRET, inspector.ULong(seed, CKA.CKA_KEY_TYPE));
        Assert.True(inspector.Bool(seed, CKA.CKA_SIGN));
        foreach (var usage in new[] { CKA.CKA_VERIFY, CKA.CKA_ENCRYPT, CKA.CKA_DECRYPT, CKA.CKA_WRAP, CKA.CKA_UNWRAP, CKA.CKA_DERIVE })
        {
            Assert.False(inspector.Bool(seed, usage), usage.ToString());
        }

        Assert.Equal(CKR.CKR_ATTRIBUTE_SENSITIVE, inspector.ReadValue(seed).Rv);
        Assert.Equal(CKR.CKR_KEY_UNEXTRACTABLE, inspector.TryWrap(inspector.KeyByLabel("devrift.seed-kek.v1"), seed));
    }
}
