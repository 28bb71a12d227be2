using System.Buffers.Binary;
using Net.Pkcs11Interop.Common;

namespace DevRift.Hsm.Crypto;

/// <summary>
/// AES-256-GCM sealing with the HSM seal key, for secrets at rest for a short while (outbox bodies). Format:
/// <c>0x01 ‖ key version (4, BE) ‖ IV (12) ‖ ciphertext ‖ tag (16)</c>; the header and the caller's context
/// are authenticated, so a blob moved to another row does not open.
/// </summary>
public sealed class Sealer(HsmConnection hsm)
{
    private const byte Format = 1;
    private const int HeaderLength = 1 + 4 + 12;

    /// <summary>Seals <paramref name="plaintext"/> bound to <paramref name="context"/> (e.g. the row id).</summary>
    public byte[] Seal(byte[] plaintext, string context)
    {
        ArgumentNullException.ThrowIfNull(plaintext);
        return hsm.Execute<byte[]>(ctx =>
        {
            var (version, key) = ctx.Keys.Current(KeyPurpose.Seal);
            var header = new byte[HeaderLength];
            header[0] = Format;
            BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(1), version);
            var iv = ctx.Session.GenerateRandom(12);
            iv.CopyTo(header, 5);
            var mechanism = GcmMechanism(iv, Aad(header, context));
            var body = ctx.Session.Encrypt(mechanism, key, plaintext);
            return [.. header, .. body];
        });
    }

    /// <summary>Opens a sealed blob; a wrong context, a tampered blob or an unknown version throws <see cref="HsmDataException"/>.</summary>
    public byte[] Open(byte[] sealedBlob, string context)
    {
        ArgumentNullException.ThrowIfNull(sealedBlob);
        if (sealedBlob.Length < HeaderLength + 16 || sealedBlob[0] != Format)
        {
            throw new HsmDataException("not a sealed blob");
        }

        var version = BinaryPrimitives.ReadInt32BigEndian(sealedBlob.AsSpan(1));
        var header = sealedBlob[..HeaderLength];
        var iv = sealedBlob[5..HeaderLength];
        return hsm.Execute(ctx =>
        {
            var key = ctx.Keys.Handle(KeyPurpose.Seal, version);
            try
            {
                return ctx.Session.Decrypt(GcmMechanism(iv, Aad(header, context)), key, sealedBlob[HeaderLength..]);
            }
            catch (Net.Pkcs11Interop.Common.Pkcs11Exception e) when (HsmContext.IsBadData(ctx, e))
            {
                throw new HsmDataException($"the sealed blob does not open ({e.RV})", e);
            }
        });
    }

    /// <summary>Key version a blob was sealed with (for rotation reports).</summary>
    public static int VersionOf(byte[] sealedBlob) =>
        sealedBlob is { Length: >= 5 } ? BinaryPrimitives.ReadInt32BigEndian(sealedBlob.AsSpan(1)) : 0;

    private static byte[] Aad(byte[] header, string context) => [.. header, .. System.Text.Encoding.UTF8.GetBytes(context)];

    private static Net.Pkcs11Interop.HighLevelAPI.IMechanism GcmMechanism(byte[] iv, byte[] aad)
    {
        var parameters = Pkcs11Module.Factories.MechanismParamsFactory.CreateCkGcmParams(iv, 96, aad, 128);
        return Pkcs11Module.Factories.MechanismFactory.Create(CKM.CKM_AES_GCM, parameters);
    }
}
