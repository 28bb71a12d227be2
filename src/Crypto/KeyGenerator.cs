using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace DevRift.Hsm.Crypto;

/// <summary>Generates a purpose's key inside the HSM as a token object that never leaves it.</summary>
internal static class KeyGenerator
{
    public static IObjectHandle Generate(ISession session, KeyPurpose purpose, string label)
    {
        var aes = purpose is KeyPurpose.SeedKek or KeyPurpose.Seal;
        var attributes = new List<IObjectAttribute>
        {
            HsmContext.Attribute(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
            HsmContext.Attribute(CKA.CKA_KEY_TYPE, aes ? CKK.CKK_AES : CKK.CKK_GENERIC_SECRET),
            HsmContext.Attribute(CKA.CKA_VALUE_LEN, 32UL),
            HsmContext.Attribute(CKA.CKA_LABEL, label),
            HsmContext.Attribute(CKA.CKA_ID, System.Text.Encoding.ASCII.GetBytes(label)),
            HsmContext.Attribute(CKA.CKA_TOKEN, true),
            HsmContext.Attribute(CKA.CKA_PRIVATE, true),
            HsmContext.Attribute(CKA.CKA_SENSITIVE, true),
            HsmContext.Attribute(CKA.CKA_EXTRACTABLE, false),
            HsmContext.Attribute(CKA.CKA_WRAP, purpose == KeyPurpose.SeedKek),
            HsmContext.Attribute(CKA.CKA_UNWRAP, purpose == KeyPurpose.SeedKek),
            HsmContext.Attribute(CKA.CKA_ENCRYPT, purpose == KeyPurpose.Seal),
            HsmContext.Attribute(CKA.CKA_DECRYPT, purpose == KeyPurpose.Seal),
            HsmContext.Attribute(CKA.CKA_SIGN, !aes),
            HsmContext.Attribute(CKA.CKA_VERIFY, !aes),
            HsmContext.Attribute(CKA.CKA_DERIVE, false),
        };
        var mechanism = HsmContext.Mechanism(aes ? CKM.CKM_AES_KEY_GEN : CKM.CKM_GENERIC_SECRET_KEY_GEN);
        return session.GenerateKey(mechanism, attributes);
    }
}
