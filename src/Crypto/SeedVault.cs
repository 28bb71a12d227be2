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

    /// <summary>Wraps a seed under the current seed KEK. The seed enters the HSM as a short-lived session object.</summary>
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
                var (version, kek) = ctx.Keys.Current(KeyPurpose.SeedKek);
                var obj = ctx.Session.CreateObject([
                    HsmContext.Attribute(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
                    HsmContext.Attribute(CKA.CKA_KEY_TYPE, CKK.CKK_GENERIC_SECRET),
                    HsmContext.Attribute(CKA.CKA_TOKEN, false),
                    HsmContext.Attribute(CKA.CKA_PRIVATE, true),
                    HsmContext.Attribute(CKA.CKA_SENSITIVE, true),
                    HsmContext.Attribute(CKA.CKA_EXTRACTABLE, true),
                    HsmContext.Attribute(CKA.CKA_SIGN, true),
                    HsmContext.Attribute(CKA.CKA_VALUE, value),
                ]);
                try
                {
                    return new WrappedSeed(version, ctx.Session.WrapKey(HsmContext.Mechanism(hsm.WrapMechanism), kek, obj));
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
            var (version, kek) = ctx.Keys.Current(KeyPurpose.SeedKek);
            if (version == seed.KekVersion)
            {
                return seed;
            }

            IObjectHandle obj;
            try
            {
                obj = ctx.Session.UnwrapKey(
                    HsmContext.Mechanism(hsm.WrapMechanism),
                    ctx.Keys.Handle(KeyPurpose.SeedKek, seed.KekVersion),
                    seed.Blob,
                    UnwrapTemplate(extractable: true));
            }
            catch (Pkcs11Exception e) when (HsmContext.IsBadData(ctx, e))
            {
                throw new HsmDataException($"the wrapped seed was refused by the HSM ({e.RV})", e);
            }
            try
            {
                return new WrappedSeed(version, ctx.Session.WrapKey(HsmContext.Mechanism(hsm.WrapMechanism), kek, obj));
            }
            finally
            {
                ctx.Session.DestroyObject(obj);
            }
        });
    }

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

            var kek = cache.Keys.Handle(KeyPurpose.SeedKek, seed.KekVersion);
            IObjectHandle created;
            try
            {
                created = cache.Session.UnwrapKey(HsmContext.Mechanism(hsm.WrapMechanism), kek, seed.Blob, UnwrapTemplate(extractable: false));
            }
            catch (Pkcs11Exception e) when (HsmContext.IsBadData(cache, e))
            {
                throw new HsmDataException($"the wrapped seed was refused by the HSM ({e.RV})", e);
            }

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

    private static List<IObjectAttribute> UnwrapTemplate(bool extractable) =>
    [
        HsmContext.Attribute(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
        HsmContext.Attribute(CKA.CKA_KEY_TYPE, CKK.CKK_GENERIC_SECRET),
        HsmContext.Attribute(CKA.CKA_TOKEN, false),
        HsmContext.Attribute(CKA.CKA_PRIVATE, true),
        HsmContext.Attribute(CKA.CKA_SENSITIVE, true),
        HsmContext.Attribute(CKA.CKA_EXTRACTABLE, extractable),
        HsmContext.Attribute(CKA.CKA_SIGN, true),
        HsmContext.Attribute(CKA.CKA_VERIFY, false),
        HsmContext.Attribute(CKA.CKA_ENCRYPT, false),
        HsmContext.Attribute(CKA.CKA_DECRYPT, false),
        HsmContext.Attribute(CKA.CKA_WRAP, false),
        HsmContext.Attribute(CKA.CKA_UNWRAP, false),
        HsmContext.Attribute(CKA.CKA_DERIVE, false),
    ];

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
