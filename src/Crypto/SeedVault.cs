using System.Security.Cryptography;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using OtpNet;

namespace DevRift.Hsm.Crypto;

/// <summary>A TOTP seed wrapped under one version of the seed KEK. Only this is ever stored.</summary>
/// <param name="KekVersion">Version of <c>devrift.seed-kek</c> that wrapped it.</param>
/// <param name="Blob">The wrapped key (RFC 5649 by default): integrity-protected, useless without the HSM.</param>
public sealed record WrappedSeed(int KekVersion, byte[] Blob);

/// <summary>
/// TOTP seeds: generated from HSM randomness, wrapped under the seed KEK, and unwrapped only into
/// non-extractable, sign-only session objects whose handles a bounded LRU keeps. HMACs with a seed are
/// computed inside the HSM.
/// </summary>
public sealed class SeedVault(HsmConnection hsm)
{
    /// <summary>Seed length that matches the hash (RFC 6238; SoftHSM refuses shorter HMAC keys).</summary>
    public static int SeedLength(OtpHashMode mode) => mode switch
    {
        OtpHashMode.Sha1 => 20,
        OtpHashMode.Sha256 => 32,
        OtpHashMode.Sha512 => 64,
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };

    /// <summary>Fresh seed bytes from the HSM. The caller shows them once (QR code) and zeroes the buffer.</summary>
    public byte[] GenerateSeed(OtpHashMode mode) => hsm.Execute(ctx => ctx.Session.GenerateRandom(SeedLength(mode)));

    /// <summary>
    /// Wraps a seed under the current seed KEK with the configured scheme (<see cref="HsmOptions.WrapMechanism"/>). The
    /// seed enters the HSM as a short-lived session object.
    /// </summary>
    public WrappedSeed Wrap(ReadOnlySpan<byte> seed)
    {
        if (seed.Length < 16)
        {
            throw new ArgumentException("a TOTP seed must be at least 16 bytes", nameof(seed));
        }

        var value = seed.ToArray();
        try
        {
            return hsm.Execute(ctx =>
            {
                IObjectHandle obj;
                using (var template = SeedTemplate(value))
                {
                    obj = ctx.Session.CreateObject(template.Attributes);
                }

                try
                {
                    return WrapCurrent(ctx, obj);
                }
                finally
                {
                    ctx.Session.DestroyObject(obj);
                }
            });
        }
        finally
        {
            CryptographicOperations.ZeroMemory(value);
        }
    }

    /// <summary>Re-wraps a seed under the current KEK inside the HSM (for KEK rotation); the seed never leaves it.</summary>
    public WrappedSeed Rewrap(WrappedSeed seed)
    {
        ArgumentNullException.ThrowIfNull(seed);
        return hsm.Execute(ctx =>
        {
            if (ctx.Keys.Current(KeyPurpose.SeedKek).Version == seed.KekVersion)
            {
                return seed;
            }

            var obj = UnwrapObject(ctx, seed, extractable: true);
            try
            {
                return WrapCurrent(ctx, obj);
            }
            finally
            {
                ctx.Session.DestroyObject(obj);
            }
        });
    }

    /// <summary>
    /// Wraps a throwaway random seed with the configured scheme and unwraps it again, destroying both objects: whether
    /// seed wrapping works right now (readiness). Nothing is cached.
    /// </summary>
    internal bool ProbeRoundTrip() => hsm.Execute(ctx =>
    {
        // The way an enrolment brings a seed in (C_CreateObject), so that a module without key generation is ready too.
        var value = ctx.Session.GenerateRandom(20);
        IObjectHandle obj;
        using (var template = SeedTemplate(value))
        {
            obj = ctx.Session.CreateObject(template.Attributes);
        }

        CryptographicOperations.ZeroMemory(value);
        try
        {
            var unwrapped = UnwrapObject(ctx, WrapCurrent(ctx, obj), extractable: false);
            ctx.Session.DestroyObject(unwrapped);
            return true;
        }
        finally
        {
            ctx.Session.DestroyObject(obj);
        }
    });

    /// <summary>The scheme a stored blob was wrapped with (legacy blobs, from before schemes were recorded, are RFC 3394/5649).</summary>
    public static SeedWrapScheme? SchemeOf(WrappedSeed seed)
    {
        ArgumentNullException.ThrowIfNull(seed);
        return seed.Blob.Length % 8 == 0 ? null : seed.Blob.Length > 0 && Enum.IsDefined((SeedWrapScheme)seed.Blob[0]) ? (SeedWrapScheme)seed.Blob[0] : null;
    }

    // Blob: scheme (1) ‖ body ‖ tag (32, for tagged schemes). Every such blob is 1 mod 8 bytes long, where the RFC
    // 3394/5649 output stored before schemes were recorded is a multiple of 8: that is how the two are told apart.
    private WrappedSeed WrapCurrent(HsmContext ctx, IObjectHandle obj)
    {
        var scheme = hsm.WrapScheme;
        var (version, kek) = ctx.Keys.CurrentEntry(KeyPurpose.SeedKek);
        var wrappingKey = scheme == SeedWrapScheme.RsaOaepHmac
            ? kek.Public ?? throw new HsmConfigurationException($"{KeyLabels.Label(KeyPurpose.SeedKek, version)} has no RSA public key; run init")
            : kek.Handle;
        byte[] iv = scheme == SeedWrapScheme.AesCbcPadHmac ? ctx.Session.GenerateRandom(16) : [];
        using var mechanism = WrapMechanism(scheme, iv);
        byte[] blob = [(byte)scheme, .. iv, .. ctx.Session.WrapKey(mechanism, wrappingKey, obj)];
        if (HsmSchemes.NeedsMacKey(scheme))
        {
            blob = [.. blob, .. Tag(ctx, kek.MacKey(KeyPurpose.SeedKek, version), version, blob)];
        }

        return new WrappedSeed(version, blob);
    }

    /// <summary>
    /// The mechanism of <paramref name="scheme"/>, CBC's with its IV (empty for the others). CBC's IV and OAEP's
    /// parameters are native memory the mechanism owns: dispose it after the call (see <see cref="Pkcs11Template"/>).
    /// </summary>
    private static IMechanism WrapMechanism(SeedWrapScheme scheme, byte[] iv) => scheme switch
    {
        SeedWrapScheme.AesKeyWrapPad or SeedWrapScheme.AesKeyWrap => HsmContext.Mechanism(HsmSchemes.Mechanism(scheme)),
        SeedWrapScheme.AesCbcPadHmac => HsmContext.Mechanism(CKM.CKM_AES_CBC_PAD, iv),
        SeedWrapScheme.RsaOaepHmac => OaepMechanism(),
        _ => throw new InvalidOperationException(),
    };

    /// <summary>Unwraps a stored seed into a session object; a blob that fails its tag or the HSM's check is <see cref="HsmDataException"/>.</summary>
    private IObjectHandle UnwrapObject(HsmContext ctx, WrappedSeed seed, bool extractable)
    {
        try
        {
            using var template = UnwrapTemplate(extractable, explicitExtractable: true);
            return UnwrapObject(ctx, seed, template.Attributes);
        }
        catch (Pkcs11Exception e) when (extractable && e.RV == CKR.CKR_ATTRIBUTE_READ_ONLY)
        {
            // openCryptoki refuses CKA_EXTRACTABLE in an unwrap template (its default for an unwrapped key is true).
            using var template = UnwrapTemplate(extractable, explicitExtractable: false);
            return UnwrapObject(ctx, seed, template.Attributes);
        }
    }

    private IObjectHandle UnwrapObject(HsmContext ctx, WrappedSeed seed, List<IObjectAttribute> template)
    {
        var blob = seed.Blob;
        try
        {
            if (blob.Length % 8 == 0)
            {
                return ctx.Session.UnwrapKey(HsmContext.Mechanism(hsm.LegacyWrapMechanism), ctx.Keys.Handle(KeyPurpose.SeedKek, seed.KekVersion), blob, template);
            }

            var scheme = SchemeOf(seed) ?? throw new HsmDataException("not a wrapped seed");
            var kek = ctx.Keys.Entry(KeyPurpose.SeedKek, seed.KekVersion);
            var body = blob.AsSpan(1);
            if (HsmSchemes.NeedsMacKey(scheme))
            {
                if (blob.Length < 1 + TagLength + 16
                    || !CryptographicOperations.FixedTimeEquals(Tag(ctx, kek.MacKey(KeyPurpose.SeedKek, seed.KekVersion), seed.KekVersion, blob[..^TagLength]), blob.AsSpan(blob.Length - TagLength)))
                {
                    throw new HsmDataException("the wrapped seed's tag does not verify");
                }

                body = body[..^TagLength];
            }

            if (kek.IsRsa != (scheme == SeedWrapScheme.RsaOaepHmac))
            {
                throw new HsmDataException($"the wrapped seed's scheme does not match {KeyLabels.Label(KeyPurpose.SeedKek, seed.KekVersion)}");
            }

            byte[] iv = scheme == SeedWrapScheme.AesCbcPadHmac ? body[..16].ToArray() : [];
            using var mechanism = WrapMechanism(scheme, iv);
            return ctx.Session.UnwrapKey(mechanism, kek.Handle, body[iv.Length..].ToArray(), template);
        }
        catch (Pkcs11Exception e) when (HsmContext.IsBadData(ctx, e))
        {
            throw new HsmDataException($"the wrapped seed was refused by the HSM ({e.RV})", e);
        }
    }

    private const int TagLength = 32;

    // The tag binds the blob to the KEK version stored beside it: a blob moved under another version does not verify.
    private static byte[] Tag(HsmContext ctx, IObjectHandle mac, int kekVersion, byte[] blob)
    {
        var input = new byte[TagDomain.Length + 4 + blob.Length];
        TagDomain.CopyTo(input, 0);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(input.AsSpan(TagDomain.Length), kekVersion);
        blob.CopyTo(input, TagDomain.Length + 4);
        return ctx.Hmac(CKM.CKM_SHA256_HMAC, mac, input);
    }

    private static readonly byte[] TagDomain = "devrift.seed-wrap.v1\0"u8.ToArray();

    // SHA-1 with MGF1-SHA-1: the OAEP parameters SoftHSM2 accepts (and p11-kit forwards); OAEP's security does not rest
    // on SHA-1's collision resistance.
    private static IMechanism OaepMechanism() => Pkcs11Module.Factories.MechanismFactory.Create(
        CKM.CKM_RSA_PKCS_OAEP,
        Pkcs11Module.Factories.MechanismParamsFactory.CreateCkRsaPkcsOaepParams((ulong)CKM.CKM_SHA_1, (ulong)CKG.CKG_MGF1_SHA1, (ulong)CKZ.CKZ_DATA_SPECIFIED, null));

    /// <summary>HMAC of <paramref name="data"/> with the wrapped seed, computed in the HSM (one <c>C_Sign</c> on a cached handle).</summary>
    public byte[] ComputeHmac(WrappedSeed seed, OtpHashMode mode, byte[] data)
    {
        ArgumentNullException.ThrowIfNull(seed);
        var mechanism = HmacMechanism(mode);
        var key = SeedHandleCache.KeyOf(seed);
        for (var attempt = 0; attempt < 3; attempt++)
        {
            var result = hsm.Execute(ctx =>
            {
                var lease = hsm.SeedHandles.Acquire(key, ctx.Generation) ?? Unwrap(key, seed);
                try
                {
                    return ctx.Hmac(mechanism, lease.Handle, data);
                }
                catch (Pkcs11Exception e) when (e.RV is CKR.CKR_KEY_HANDLE_INVALID or CKR.CKR_OBJECT_HANDLE_INVALID)
                {
                    // The object is gone (its session was reset): forget it and unwrap again.
                    hsm.SeedHandles.Invalidate(lease);
                    return null;
                }
                finally
                {
                    if (hsm.SeedHandles.Release(lease, ctx.Generation) is { } evicted)
                    {
                        Destroy([evicted]);
                    }
                }
            });
            if (result is not null)
            {
                return result;
            }
        }

        throw new HsmUnavailableException("the unwrapped seed object kept disappearing");
    }

    /// <summary>An Otp.NET key provider whose HMAC runs in the HSM with this wrapped seed.</summary>
    public IKeyProvider KeyProvider(WrappedSeed seed) => new HsmSeedKeyProvider(this, seed);

    /// <summary>Unwrapped seeds currently held as session objects.</summary>
    public int CachedHandles => hsm.SeedHandles.Count;

    /// <summary>Unwraps on the long-lived cache session so the object outlives the pooled session's lease.</summary>
    private SeedHandleCache.Entry Unwrap(string key, WrappedSeed seed)
    {
        var toDestroy = new List<IObjectHandle>();
        var entry = hsm.ExecuteOnCacheSession(cache =>
        {
            if (hsm.SeedHandles.Acquire(key, cache.Generation) is { } again)
            {
                return again;
            }

            var created = UnwrapObject(cache, seed, extractable: false);
            return hsm.SeedHandles.Add(key, cache.Generation, created, toDestroy);
        });
        Destroy(toDestroy);
        return entry;
    }

    private void Destroy(List<IObjectHandle> handles)
    {
        if (handles.Count == 0)
        {
            return;
        }

        hsm.ExecuteOnCacheSession(cache =>
        {
            foreach (var handle in handles)
            {
                try
                {
                    cache.Session.DestroyObject(handle);
                }
                catch (Pkcs11Exception e) when (e.RV is CKR.CKR_OBJECT_HANDLE_INVALID)
                {
                    // Already gone.
                }
            }

            return 0;
        });
    }

    /// <summary>A seed brought into the HSM as a session object, extractable only so that it can be wrapped.</summary>
    private static Pkcs11Template SeedTemplate(byte[] value) => new(
    [
        HsmContext.Attribute(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
        HsmContext.Attribute(CKA.CKA_KEY_TYPE, CKK.CKK_GENERIC_SECRET),
        HsmContext.Attribute(CKA.CKA_TOKEN, false),
        HsmContext.Attribute(CKA.CKA_PRIVATE, true),
        HsmContext.Attribute(CKA.CKA_SENSITIVE, true),
        HsmContext.Attribute(CKA.CKA_EXTRACTABLE, true),
        HsmContext.Attribute(CKA.CKA_SIGN, true),
        HsmContext.Attribute(CKA.CKA_VALUE, value),
    ]);

    private static Pkcs11Template UnwrapTemplate(bool extractable, bool explicitExtractable = true) => new(
    [
        HsmContext.Attribute(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
        HsmContext.Attribute(CKA.CKA_KEY_TYPE, CKK.CKK_GENERIC_SECRET),
        HsmContext.Attribute(CKA.CKA_TOKEN, false),
        HsmContext.Attribute(CKA.CKA_PRIVATE, true),
        HsmContext.Attribute(CKA.CKA_SENSITIVE, true),
        .. explicitExtractable || !extractable ? [HsmContext.Attribute(CKA.CKA_EXTRACTABLE, extractable)] : Array.Empty<IObjectAttribute>(),
        HsmContext.Attribute(CKA.CKA_SIGN, true),
        HsmContext.Attribute(CKA.CKA_VERIFY, false),
        HsmContext.Attribute(CKA.CKA_ENCRYPT, false),
        HsmContext.Attribute(CKA.CKA_DECRYPT, false),
        HsmContext.Attribute(CKA.CKA_WRAP, false),
        HsmContext.Attribute(CKA.CKA_UNWRAP, false),
        HsmContext.Attribute(CKA.CKA_DERIVE, false),
    ]);

    internal static CKM HmacMechanism(OtpHashMode mode) => mode switch
    {
        OtpHashMode.Sha1 => CKM.CKM_SHA_1_HMAC,
        OtpHashMode.Sha256 => CKM.CKM_SHA256_HMAC,
        OtpHashMode.Sha512 => CKM.CKM_SHA512_HMAC,
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };

    private sealed class HsmSeedKeyProvider(SeedVault vault, WrappedSeed seed) : IKeyProvider
    {
        public byte[] ComputeHmac(OtpHashMode mode, byte[] data) => vault.ComputeHmac(seed, mode, data);
    }
}
