using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace DevRift.Hsm.Crypto;

/// <summary>
/// Generates one version of a purpose's key inside the HSM as token objects that never leave it: the key the
/// configured scheme needs (AES-256, a generic HMAC secret, or for an RSA-OAEP seed KEK an RSA-3072 pair whose private
/// half unwraps only) and, for schemes that tag their blobs, the version's own HMAC key.
/// </summary>
internal static class KeyGenerator
{
    public const int RsaBits = 3072;

    /// <summary>Creates version <paramref name="version"/> and returns the labels of the objects made.</summary>
    public static IReadOnlyList<string> Generate(ISession session, KeyPurpose purpose, int version, SeedWrapScheme wrap, SealScheme seal)
    {
        var label = KeyLabels.Label(purpose, version);
        var created = new List<string>();
        try
        {
            if (purpose == KeyPurpose.SeedKek && wrap == SeedWrapScheme.RsaOaepHmac)
            {
                GenerateRsaKek(session, label);
            }
            else
            {
                GenerateSecret(session, purpose, label);
            }

            created.Add(label);
            if ((purpose == KeyPurpose.SeedKek && HsmSchemes.NeedsMacKey(wrap)) || (purpose == KeyPurpose.Seal && HsmSchemes.NeedsMacKey(seal)))
            {
                var mac = KeyLabels.MacLabel(purpose, version);
                GenerateMac(session, mac);
                created.Add(mac);
            }

            return created;
        }
        catch (Pkcs11Exception e) when (e.RV is CKR.CKR_FUNCTION_NOT_SUPPORTED or CKR.CKR_MECHANISM_INVALID or CKR.CKR_TEMPLATE_INCONSISTENT
            or CKR.CKR_ATTRIBUTE_VALUE_INVALID or CKR.CKR_ATTRIBUTE_TYPE_INVALID or CKR.CKR_TEMPLATE_INCOMPLETE)
        {
            throw new HsmConfigurationException(
                $"the HSM cannot generate {label} ({e.RV}): create it with the vendor's tool as a token object labelled '{label}' "
                + $"({Describe(purpose, wrap)}, sensitive, not extractable), then run init again; it is adopted by its label", e);
        }
    }

    /// <summary>What a purpose's key is, for the instructions of a module that cannot generate it.</summary>
    public static string Describe(KeyPurpose purpose, SeedWrapScheme wrap) => purpose switch
    {
        KeyPurpose.SeedKek when wrap == SeedWrapScheme.RsaOaepHmac => $"an RSA-{RsaBits} key pair, the private half unwrap only, the public half wrap only",
        KeyPurpose.SeedKek => "an AES-256 key, wrap and unwrap only",
        KeyPurpose.Seal => "an AES-256 key, encrypt and decrypt only",
        _ => "a 32-byte generic secret, sign and verify only",
    };

    private static void GenerateSecret(ISession session, KeyPurpose purpose, string label)
    {
        var aes = purpose is KeyPurpose.SeedKek or KeyPurpose.Seal;
        var attributes = Common(label, token: true);
        attributes.AddRange([
            HsmContext.Attribute(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
            HsmContext.Attribute(CKA.CKA_KEY_TYPE, aes ? CKK.CKK_AES : CKK.CKK_GENERIC_SECRET),
            HsmContext.Attribute(CKA.CKA_VALUE_LEN, 32UL),
            HsmContext.Attribute(CKA.CKA_WRAP, purpose == KeyPurpose.SeedKek),
            HsmContext.Attribute(CKA.CKA_UNWRAP, purpose == KeyPurpose.SeedKek),
            HsmContext.Attribute(CKA.CKA_ENCRYPT, purpose == KeyPurpose.Seal),
            HsmContext.Attribute(CKA.CKA_DECRYPT, purpose == KeyPurpose.Seal),
            HsmContext.Attribute(CKA.CKA_SIGN, !aes),
            HsmContext.Attribute(CKA.CKA_VERIFY, !aes),
        ]);
        using var template = new Pkcs11Template(attributes);
        session.GenerateKey(HsmContext.Mechanism(aes ? CKM.CKM_AES_KEY_GEN : CKM.CKM_GENERIC_SECRET_KEY_GEN), template.Attributes);
    }

    private static void GenerateMac(ISession session, string label)
    {
        var attributes = Common(label, token: true);
        attributes.AddRange([
            HsmContext.Attribute(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
            HsmContext.Attribute(CKA.CKA_KEY_TYPE, CKK.CKK_GENERIC_SECRET),
            HsmContext.Attribute(CKA.CKA_VALUE_LEN, 32UL),
            HsmContext.Attribute(CKA.CKA_WRAP, false),
            HsmContext.Attribute(CKA.CKA_UNWRAP, false),
            HsmContext.Attribute(CKA.CKA_ENCRYPT, false),
            HsmContext.Attribute(CKA.CKA_DECRYPT, false),
            HsmContext.Attribute(CKA.CKA_SIGN, true),
            HsmContext.Attribute(CKA.CKA_VERIFY, true),
        ]);
        using var template = new Pkcs11Template(attributes);
        session.GenerateKey(HsmContext.Mechanism(CKM.CKM_GENERIC_SECRET_KEY_GEN), template.Attributes);
    }

    private static void GenerateRsaKek(ISession session, string label)
    {
        var id = System.Text.Encoding.ASCII.GetBytes(label);
        List<IObjectAttribute> publicKey =
        [
            HsmContext.Attribute(CKA.CKA_LABEL, label),
            HsmContext.Attribute(CKA.CKA_ID, id),
            HsmContext.Attribute(CKA.CKA_TOKEN, true),
            HsmContext.Attribute(CKA.CKA_PRIVATE, true),
            HsmContext.Attribute(CKA.CKA_MODULUS_BITS, (ulong)RsaBits),
            HsmContext.Attribute(CKA.CKA_PUBLIC_EXPONENT, [0x01, 0x00, 0x01]),
            HsmContext.Attribute(CKA.CKA_WRAP, true),
            HsmContext.Attribute(CKA.CKA_ENCRYPT, false),
            HsmContext.Attribute(CKA.CKA_VERIFY, false),
        ];
        var privateKey = Common(label, token: true);
        privateKey.AddRange([
            HsmContext.Attribute(CKA.CKA_UNWRAP, true),
            HsmContext.Attribute(CKA.CKA_DECRYPT, false),
            HsmContext.Attribute(CKA.CKA_SIGN, false),
        ]);
        using var publicTemplate = new Pkcs11Template(publicKey);
        using var privateTemplate = new Pkcs11Template(privateKey);
        session.GenerateKeyPair(HsmContext.Mechanism(CKM.CKM_RSA_PKCS_KEY_PAIR_GEN), publicTemplate.Attributes, privateTemplate.Attributes, out _, out _);
    }

    private static List<IObjectAttribute> Common(string label, bool token) =>
    [
        HsmContext.Attribute(CKA.CKA_LABEL, label),
        HsmContext.Attribute(CKA.CKA_ID, System.Text.Encoding.ASCII.GetBytes(label)),
        HsmContext.Attribute(CKA.CKA_TOKEN, token),
        HsmContext.Attribute(CKA.CKA_PRIVATE, true),
        HsmContext.Attribute(CKA.CKA_SENSITIVE, true),
        HsmContext.Attribute(CKA.CKA_EXTRACTABLE, false),
        HsmContext.Attribute(CKA.CKA_DERIVE, false),
    ];
}
