using System.Buffers.Binary;
using Net.Pkcs11Interop.Common;

namespace DevRift.Hsm.Crypto;

/// <summary>A MAC made with one version of a purpose's key. The version is stored beside the MAC.</summary>
/// <param name="Version">The key version that made it.</param>
/// <param name="Mac">HMAC-SHA256 output (32 bytes).</param>
public readonly record struct KeyedMac(int Version, byte[] Mac);

/// <summary>
/// HMAC-SHA256 with the HSM's own keys (code, lookup, audit): the key never leaves the token, so a stolen
/// database cannot be brute-forced offline.
/// </summary>
public sealed class HsmMac(HsmConnection hsm)
{
    /// <summary>MAC under the purpose's current key version.</summary>
    public KeyedMac Sign(KeyPurpose purpose, byte[] data)
    {
        EnsureMacPurpose(purpose);
        return hsm.Execute(ctx =>
        {
            var (version, handle) = ctx.Keys.Current(purpose);
            return new KeyedMac(version, ctx.Hmac(CKM.CKM_SHA256_HMAC, handle, data));
        });
    }

    /// <summary>
    /// A MAC chain under the purpose's current key version, in one HSM operation: <c>mac_i = HMAC(key, mac_{i-1} ‖
    /// messages[i])</c>, with <paramref name="previous"/> as <c>mac_{-1}</c>. The same MACs as one
    /// <see cref="Sign(KeyPurpose, byte[])"/> per message, without a trip to the HSM's thread for each.
    /// </summary>
    public IReadOnlyList<KeyedMac> SignChained(KeyPurpose purpose, byte[] previous, IReadOnlyList<byte[]> messages)
    {
        EnsureMacPurpose(purpose);
        ArgumentNullException.ThrowIfNull(previous);
        ArgumentNullException.ThrowIfNull(messages);
        return hsm.Execute(ctx =>
        {
            var (version, handle) = ctx.Keys.Current(purpose);
            var macs = new KeyedMac[messages.Count];
            var link = previous;
            for (var i = 0; i < messages.Count; i++)
            {
                link = ctx.Hmac(CKM.CKM_SHA256_HMAC, handle, [.. link, .. messages[i]]);
                macs[i] = new KeyedMac(version, link);
            }

            return macs;
        });
    }

    /// <summary>MAC under a given key version (to check data made before a rotation).</summary>
    public byte[] Sign(KeyPurpose purpose, int version, byte[] data)
    {
        EnsureMacPurpose(purpose);
        return hsm.Execute(ctx =>
            ctx.Hmac(CKM.CKM_SHA256_HMAC, ctx.Keys.Handle(purpose, version), data));
    }

    /// <summary>The current key version of a purpose.</summary>
    public int CurrentVersion(KeyPurpose purpose) => hsm.Execute(ctx => ctx.Keys.Current(purpose).Version);

    /// <summary>
    /// Unambiguous encoding of several fields for MAC input: each field length-prefixed (4 bytes, big-endian),
    /// so that ("ab","c") and ("a","bc") never collide.
    /// </summary>
    public static byte[] Encode(params ReadOnlySpan<string> fields)
    {
        var total = 0;
        foreach (var f in fields)
        {
            total += 4 + System.Text.Encoding.UTF8.GetByteCount(f);
        }

        var buffer = new byte[total];
        var offset = 0;
        foreach (var f in fields)
        {
            var n = System.Text.Encoding.UTF8.GetBytes(f, buffer.AsSpan(offset + 4));
            BinaryPrimitives.WriteInt32BigEndian(buffer.AsSpan(offset), n);
            offset += 4 + n;
        }

        return buffer;
    }

    private static void EnsureMacPurpose(KeyPurpose purpose)
    {
        if (purpose is not (KeyPurpose.Code or KeyPurpose.Lookup or KeyPurpose.Audit))
        {
            throw new ArgumentOutOfRangeException(nameof(purpose), purpose, "not an HMAC key");
        }
    }
}

/// <summary>Random bytes from the HSM's generator.</summary>
public sealed class HsmRandom(HsmConnection hsm)
{
    /// <summary>Returns <paramref name="count"/> random bytes from <c>C_GenerateRandom</c>.</summary>
    public byte[] GetBytes(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        return hsm.Execute(ctx => ctx.Session.GenerateRandom(count));
    }
}
