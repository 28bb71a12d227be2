using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using LowLevel = Net.Pkcs11Interop.LowLevelAPI80;

namespace DevRift.Hsm.Crypto;

/// <summary>
/// Calls whose output size is known in advance, made through Pkcs11Interop's low-level API into a buffer of that
/// size, never trusting a module's length query: AES-GCM (the plaintext plus the 16-byte tag, and back) and HMACs. For
/// HMACs that is one
/// <c>C_SignInit</c> and one <c>C_Sign</c>, where the high-level <c>Sign</c> first asks the module for the length with
/// a second <c>C_Sign</c> (a round trip per HMAC on a network HSM). The low-level library is the same module, opened
/// a second time (the loader shares the mapping), so the high-level sessions' and objects' handles are valid here.
/// Where the platform's PKCS#11 types are not those of <c>LowLevelAPI80</c> (64-bit unsigned long, no struct packing:
/// Linux and macOS), the high-level call is used.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "Lives as long as its module: one per module path, for the whole process; unloading it under a live module would pull the code from under the sessions.")]
internal sealed class FixedLengthSigner
{
    private readonly LowLevel.Pkcs11Library? _library;
    private volatile bool _highLevelOnly;

    public FixedLengthSigner(string modulePath)
    {
        if (Platform.NativeULongSize == 8 && Platform.StructPackingSize == 0)
        {
            _library = new LowLevel.Pkcs11Library(modulePath);
        }
    }

    /// <summary>
    /// AES-GCM with a 96-bit IV and a 128-bit tag: the output is exactly the input plus the tag (encrypt) or minus it
    /// (decrypt), so it goes into a buffer of that size with one <c>C_Encrypt</c>/<c>C_Decrypt</c>; a module that writes
    /// another length is at fault (<c>CKR_DEVICE_ERROR</c>), whatever its length query would have said.
    /// </summary>
    public byte[] Gcm(ISession session, IObjectHandle key, byte[] iv, byte[] aad, byte[] input, bool encrypt)
    {
        if (_library is null || _highLevelOnly)
        {
            return HighLevelGcm(session, key, iv, aad, input, encrypt);
        }

        if (!encrypt && input.Length < GcmTagLength)
        {
            throw new Pkcs11Exception("C_Decrypt", CKR.CKR_ENCRYPTED_DATA_LEN_RANGE);
        }

        var ivPointer = UnmanagedMemory.Allocate(iv.Length);
        var aadPointer = UnmanagedMemory.Allocate(Math.Max(aad.Length, 1));
        UnmanagedMemory.Write(ivPointer, iv);
        UnmanagedMemory.Write(aadPointer, aad);
        var mechanism = LowLevel.CkmUtils.CreateMechanism(CKM.CKM_AES_GCM, new LowLevel.MechanismParams.CK_GCM_PARAMS
        {
            Iv = ivPointer,
            IvLen = (ulong)iv.Length,
            IvBits = (ulong)iv.Length * 8,
            AAD = aadPointer,
            AADLen = (ulong)aad.Length,
            TagBits = GcmTagLength * 8,
        });
        try
        {
            var rv = encrypt
                ? _library.C_EncryptInit(session.SessionId, ref mechanism, key.ObjectId)
                : _library.C_DecryptInit(session.SessionId, ref mechanism, key.ObjectId);
            if (rv == CKR.CKR_CRYPTOKI_NOT_INITIALIZED)
            {
                _highLevelOnly = true;
                return HighLevelGcm(session, key, iv, aad, input, encrypt);
            }

            if (rv != CKR.CKR_OK)
            {
                throw new Pkcs11Exception(encrypt ? "C_EncryptInit" : "C_DecryptInit", rv);
            }

            var expected = encrypt ? input.Length + GcmTagLength : input.Length - GcmTagLength;
            // Decryption gets room for the whole input: some modules ask for it before they know the tag is valid.
            var output = new byte[encrypt ? expected : input.Length];
            var written = (ulong)output.Length;
            rv = encrypt
                ? _library.C_Encrypt(session.SessionId, input, (ulong)input.Length, output, ref written)
                : _library.C_Decrypt(session.SessionId, input, (ulong)input.Length, output, ref written);
            if (rv != CKR.CKR_OK)
            {
                throw new Pkcs11Exception(encrypt ? "C_Encrypt" : "C_Decrypt", rv);
            }

            return written == (ulong)expected
                ? (encrypt ? output : output[..expected])
                : throw new Pkcs11Exception(encrypt ? "C_Encrypt" : "C_Decrypt", CKR.CKR_DEVICE_ERROR);
        }
        finally
        {
            UnmanagedMemory.Free(ref mechanism.Parameter);
            UnmanagedMemory.Free(ref ivPointer);
            UnmanagedMemory.Free(ref aadPointer);
        }
    }

    private const int GcmTagLength = 16;

    private static byte[] HighLevelGcm(ISession session, IObjectHandle key, byte[] iv, byte[] aad, byte[] input, bool encrypt)
    {
        var parameters = Pkcs11Module.Factories.MechanismParamsFactory.CreateCkGcmParams(iv, (ulong)iv.Length * 8, aad, GcmTagLength * 8);
        var mechanism = Pkcs11Module.Factories.MechanismFactory.Create(CKM.CKM_AES_GCM, parameters);
        return encrypt ? session.Encrypt(mechanism, key, input) : session.Decrypt(mechanism, key, input);
    }

    /// <summary>HMAC output length of a mechanism.</summary>
    public static int HmacLength(CKM mechanism) => mechanism switch
    {
        CKM.CKM_SHA_1_HMAC => 20,
        CKM.CKM_SHA256_HMAC => 32,
        CKM.CKM_SHA512_HMAC => 64,
        _ => throw new ArgumentOutOfRangeException(nameof(mechanism), mechanism, "not an HMAC mechanism of this appliance"),
    };

    /// <summary>HMAC of <paramref name="data"/> with <paramref name="key"/> on <paramref name="session"/>.</summary>
    public byte[] Hmac(ISession session, CKM mechanism, IObjectHandle key, byte[] data)
    {
        if (_library is null || _highLevelOnly)
        {
            return session.Sign(HsmContext.Mechanism(mechanism), key, data);
        }

        var length = HmacLength(mechanism);
        var ckMechanism = LowLevel.CkmUtils.CreateMechanism(mechanism);
        var rv = _library.C_SignInit(session.SessionId, ref ckMechanism, key.ObjectId);
        if (rv == CKR.CKR_CRYPTOKI_NOT_INITIALIZED && !_highLevelOnly)
        {
            // A module whose second load is a separate instance (p11-kit's RPC client makes a virtual module per
            // C_GetFunctionList): this view of it was never initialised. Use the high-level call from now on.
            _highLevelOnly = true;
        }

        if (_highLevelOnly)
        {
            return session.Sign(HsmContext.Mechanism(mechanism), key, data);
        }

        if (rv != CKR.CKR_OK)
        {
            throw new Pkcs11Exception("C_SignInit", rv);
        }

        var mac = new byte[length];
        var written = (ulong)length;
        rv = _library.C_Sign(session.SessionId, data, (ulong)data.Length, mac, ref written);
        if (rv != CKR.CKR_OK)
        {
            throw new Pkcs11Exception("C_Sign", rv);
        }

        // An HMAC is exactly the hash's length; anything else is a module fault, never data to compare.
        return written == (ulong)length ? mac : throw new Pkcs11Exception("C_Sign", CKR.CKR_DEVICE_ERROR);
    }
}
