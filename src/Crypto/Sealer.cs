using System.Buffers.Binary;
using System.Security.Cryptography;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace DevRift.Hsm.Crypto;

/// <summary>
/// Sealing under the HSM seal key, for secrets at rest for a short while (outbox bodies), with the configured scheme
/// (<see cref="HsmOptions.SealMechanism"/>). Every blob starts with its scheme and key version, so blobs sealed before a
/// change of scheme still open. The header and the caller's context are authenticated, so a blob moved to another
/// row does not open:
/// <list type="bullet">
/// <item><c>0x01 ‖ version (4, BE) ‖ IV (12) ‖ ciphertext ‖ tag (16)</c>: AES-256-GCM, header and context as AAD.</item>
/// <item><c>0x02 ‖ version ‖ IV (16) ‖ ciphertext ‖ HMAC (32)</c>: AES-256-CBC-PAD, then HMAC-SHA256 under the version's MAC key.</item>
/// <item><c>0x03 ‖ version ‖ counter (16) ‖ ciphertext ‖ HMAC (32)</c>: AES-256-CTR from the HSM's AES-ECB, then the same HMAC.</item>
/// </list>
/// The HMAC covers the header, the context's length and bytes, and the ciphertext, and is checked before anything is
/// decrypted.
/// </summary>
public sealed class Sealer(HsmConnection hsm)
{
    private const int VersionEnd = 1 + 4;
    private const int MacLength = 32;

    /// <summary>Seals <paramref name="plaintext"/> bound to <paramref name="context"/> (e.g. the row id).</summary>
    public byte[] Seal(byte[] plaintext, string context)
    {
        ArgumentNullException.ThrowIfNull(plaintext);
        var scheme = hsm.SealScheme;
        return hsm.Execute<byte[]>(ctx =>
        {
            var (version, entry) = ctx.Keys.CurrentEntry(KeyPurpose.Seal);
            var header = new byte[VersionEnd + IvLength(scheme)];
            header[0] = (byte)scheme;
            BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(1), version);
            ctx.Session.GenerateRandom(IvLength(scheme)).CopyTo(header, VersionEnd);
            var iv = header[VersionEnd..];
            switch (scheme)
            {
                case SealScheme.AesGcm:
                    return [.. header, .. ctx.Connection.Signer.Gcm(ctx.Session, entry.Handle, iv, Aad(header, context), plaintext, encrypt: true)];
                case SealScheme.AesCbcPadHmac:
                    byte[] cbc;
                    using (var mechanism = HsmContext.Mechanism(CKM.CKM_AES_CBC_PAD, iv))
                    {
                        cbc = [.. header, .. ctx.Session.Encrypt(mechanism, entry.Handle, plaintext)];
                    }

                    return [.. cbc, .. Mac(ctx, entry.MacKey(KeyPurpose.Seal, version), cbc, header.Length, context)];
                default:
                    byte[] ctr = [.. header, .. Ctr(ctx, entry.Handle, iv, plaintext)];
                    return [.. ctr, .. Mac(ctx, entry.MacKey(KeyPurpose.Seal, version), ctr, header.Length, context)];
            }
        });
    }

    /// <summary>Opens a sealed blob; a wrong context, a tampered blob or an unknown version throws <see cref="HsmDataException"/>.</summary>
    public byte[] Open(byte[] sealedBlob, string context)
    {
        ArgumentNullException.ThrowIfNull(sealedBlob);
        if (sealedBlob.Length < VersionEnd || !Enum.IsDefined((SealScheme)sealedBlob[0]))
        {
            throw new HsmDataException("not a sealed blob");
        }

        var scheme = (SealScheme)sealedBlob[0];
        var headerLength = VersionEnd + IvLength(scheme);
        var tagLength = scheme == SealScheme.AesGcm ? 16 : MacLength;
        if (sealedBlob.Length < headerLength + tagLength)
        {
            throw new HsmDataException("not a sealed blob");
        }

        var version = BinaryPrimitives.ReadInt32BigEndian(sealedBlob.AsSpan(1));
        var header = sealedBlob[..headerLength];
        var iv = sealedBlob[VersionEnd..headerLength];
        return hsm.Execute(ctx =>
        {
            var entry = ctx.Keys.Entry(KeyPurpose.Seal, version);
            try
            {
                if (scheme == SealScheme.AesGcm)
                {
                    return ctx.Connection.Signer.Gcm(ctx.Session, entry.Handle, iv, Aad(header, context), sealedBlob[headerLength..], encrypt: false);
                }

                var body = sealedBlob[..^MacLength];
                if (!CryptographicOperations.FixedTimeEquals(Mac(ctx, entry.MacKey(KeyPurpose.Seal, version), body, headerLength, context), sealedBlob.AsSpan(body.Length)))
                {
                    throw new HsmDataException("the sealed blob does not open (its HMAC does not verify)");
                }

                var ciphertext = body[headerLength..];
                if (scheme != SealScheme.AesCbcPadHmac)
                {
                    return Ctr(ctx, entry.Handle, iv, ciphertext);
                }

                using var mechanism = HsmContext.Mechanism(CKM.CKM_AES_CBC_PAD, iv);
                return ctx.Session.Decrypt(mechanism, entry.Handle, ciphertext);
            }
            catch (Pkcs11Exception e) when (HsmContext.IsBadData(ctx, e))
            {
                throw new HsmDataException($"the sealed blob does not open ({e.RV})", e);
            }
        });
    }

    /// <summary>Key version a blob was sealed with (for rotation reports).</summary>
    public static int VersionOf(byte[] sealedBlob) =>
        sealedBlob is { Length: >= 5 } ? BinaryPrimitives.ReadInt32BigEndian(sealedBlob.AsSpan(1)) : 0;

    private static int IvLength(SealScheme scheme) => scheme == SealScheme.AesGcm ? 12 : 16;

    private static byte[] Aad(byte[] header, string context) => [.. header, .. System.Text.Encoding.UTF8.GetBytes(context)];

    // HMAC over header ‖ context length (4, BE) ‖ context ‖ ciphertext: the length keeps bytes from moving between the
    // context and the ciphertext.
    private static byte[] Mac(HsmContext ctx, IObjectHandle key, byte[] headerAndCiphertext, int headerLength, string context)
    {
        var contextBytes = System.Text.Encoding.UTF8.GetBytes(context);
        var input = new byte[headerAndCiphertext.Length + 4 + contextBytes.Length];
        headerAndCiphertext.AsSpan(0, headerLength).CopyTo(input);
        BinaryPrimitives.WriteInt32BigEndian(input.AsSpan(headerLength), contextBytes.Length);
        contextBytes.CopyTo(input, headerLength + 4);
        headerAndCiphertext.AsSpan(headerLength).CopyTo(input.AsSpan(headerLength + 4 + contextBytes.Length));
        return ctx.Hmac(CKM.CKM_SHA256_HMAC, key, input);
    }

    /// <summary>AES-CTR (SP 800-38A): the HSM encrypts the counter blocks with AES-ECB; the key stream is XORed here.</summary>
    private static byte[] Ctr(HsmContext ctx, IObjectHandle key, byte[] initialCounter, byte[] input)
    {
        var blocks = (input.Length + 15) / 16;
        var counters = new byte[Math.Max(blocks, 1) * 16];
        var counter = BinaryPrimitives.ReadUInt128BigEndian(initialCounter);
        for (var i = 0; i < blocks; i++)
        {
            BinaryPrimitives.WriteUInt128BigEndian(counters.AsSpan(i * 16), counter + (UInt128)i);
        }

        var stream = ctx.Session.Encrypt(HsmContext.Mechanism(CKM.CKM_AES_ECB), key, counters);
        if (stream.Length != counters.Length)
        {
            throw new Pkcs11Exception("C_Encrypt", CKR.CKR_DEVICE_ERROR);
        }

        var output = new byte[input.Length];
        for (var i = 0; i < input.Length; i++)
        {
            output[i] = (byte)(input[i] ^ stream[i]);
        }

        CryptographicOperations.ZeroMemory(stream);
        return output;
    }
}
