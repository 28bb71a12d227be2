using Net.Pkcs11Interop.Common;

namespace DevRift.Hsm.Crypto;

/// <summary>
/// How TOTP seeds are wrapped under the seed KEK. Recorded in the first byte of every blob it makes, so a change of
/// <see cref="HsmOptions.WrapMechanism"/> leaves the seeds already stored working.
/// </summary>
public enum SeedWrapScheme : byte
{
    /// <summary>RFC 5649 AES key wrap with padding (<c>CKM_AES_KEY_WRAP_PAD</c>); integrity from the wrap itself.</summary>
    AesKeyWrapPad = 1,

    /// <summary>RFC 3394 AES key wrap (<c>CKM_AES_KEY_WRAP</c>); seeds must be a multiple of 8 bytes.</summary>
    AesKeyWrap = 2,

    /// <summary>
    /// AES-CBC with PKCS#7 padding (<c>CKM_AES_CBC_PAD</c>) and an HMAC-SHA256 tag over the blob under the KEK version's
    /// own MAC key, checked before the HSM sees the blob (encrypt-then-MAC: a CBC unwrap alone accepts a changed blob).
    /// </summary>
    AesCbcPadHmac = 3,

    /// <summary>
    /// RSA-OAEP (SHA-1, MGF1-SHA-1: what SoftHSM2 and p11-kit forward) under an RSA-3072 key pair whose private half
    /// never leaves the HSM, with the same HMAC tag (anyone holding the public key could otherwise make a blob).
    /// </summary>
    RsaOaepHmac = 4,
}

/// <summary>How outbox bodies and other short-lived secrets are sealed under the seal key; the blob's first byte.</summary>
public enum SealScheme : byte
{
    /// <summary>AES-256-GCM (<c>CKM_AES_GCM</c>).</summary>
    AesGcm = 1,

    /// <summary>AES-256-CBC with padding (<c>CKM_AES_CBC_PAD</c>), then HMAC-SHA256 under the seal version's MAC key.</summary>
    AesCbcPadHmac = 2,

    /// <summary>
    /// AES-256-CTR whose key stream the HSM computes with <c>CKM_AES_ECB</c> over counter blocks (for modules that forward
    /// nothing better), then HMAC-SHA256 under the seal version's MAC key.
    /// </summary>
    AesCtrHmac = 3,
}

/// <summary>The mechanisms a configuration needs, and the one-line reasons when a module lacks one.</summary>
internal static class HsmSchemes
{
    public static SeedWrapScheme ParseWrap(string name) => name.Trim().ToUpperInvariant() switch
    {
        "CKM_AES_KEY_WRAP_PAD" => SeedWrapScheme.AesKeyWrapPad,
        "CKM_AES_KEY_WRAP" => SeedWrapScheme.AesKeyWrap,
        "CKM_AES_CBC_PAD" => SeedWrapScheme.AesCbcPadHmac,
        "CKM_RSA_PKCS_OAEP" => SeedWrapScheme.RsaOaepHmac,
        _ => throw new HsmConfigurationException(
            $"Hsm:WrapMechanism '{name}' is not CKM_AES_KEY_WRAP_PAD, CKM_AES_KEY_WRAP, CKM_AES_CBC_PAD or CKM_RSA_PKCS_OAEP"),
    };

    public static SealScheme ParseSeal(string name) => name.Trim().ToUpperInvariant() switch
    {
        "CKM_AES_GCM" => SealScheme.AesGcm,
        "CKM_AES_CBC_PAD" => SealScheme.AesCbcPadHmac,
        "CKM_AES_ECB" => SealScheme.AesCtrHmac,
        _ => throw new HsmConfigurationException($"Hsm:SealMechanism '{name}' is not CKM_AES_GCM, CKM_AES_CBC_PAD or CKM_AES_ECB"),
    };

    public static string SettingValue(SeedWrapScheme scheme) => Mechanism(scheme).ToString();

    public static string SettingValue(SealScheme scheme) => Mechanism(scheme).ToString();

    public static CKM Mechanism(SeedWrapScheme scheme) => scheme switch
    {
        SeedWrapScheme.AesKeyWrapPad => CKM.CKM_AES_KEY_WRAP_PAD,
        SeedWrapScheme.AesKeyWrap => CKM.CKM_AES_KEY_WRAP,
        SeedWrapScheme.AesCbcPadHmac => CKM.CKM_AES_CBC_PAD,
        SeedWrapScheme.RsaOaepHmac => CKM.CKM_RSA_PKCS_OAEP,
        _ => throw new ArgumentOutOfRangeException(nameof(scheme)),
    };

    public static CKM Mechanism(SealScheme scheme) => scheme switch
    {
        SealScheme.AesGcm => CKM.CKM_AES_GCM,
        SealScheme.AesCbcPadHmac => CKM.CKM_AES_CBC_PAD,
        SealScheme.AesCtrHmac => CKM.CKM_AES_ECB,
        _ => throw new ArgumentOutOfRangeException(nameof(scheme)),
    };

    /// <summary>Whether blobs of the scheme carry an HMAC tag under the key version's MAC key.</summary>
    public static bool NeedsMacKey(SeedWrapScheme scheme) => scheme is SeedWrapScheme.AesCbcPadHmac or SeedWrapScheme.RsaOaepHmac;

    /// <summary>Whether blobs of the scheme carry an HMAC tag under the key version's MAC key.</summary>
    public static bool NeedsMacKey(SealScheme scheme) => scheme is not SealScheme.AesGcm;

    /// <summary>A mechanism the configuration needs, with the flags it needs and what it is for.</summary>
    public sealed record Requirement(CKM Mechanism, bool Wrap, bool Encrypt, bool Sign, string Purpose, string? Setting);

    /// <summary>
    /// Every mechanism <paramref name="wrap"/> and <paramref name="seal"/> need to serve. Key generation is not among
    /// them: keys made with a vendor's tools are adopted, and <c>init</c> reports a module that cannot generate one.
    /// </summary>
    public static IReadOnlyList<Requirement> Requirements(SeedWrapScheme wrap, SealScheme seal) =>
    [
        new(CKM.CKM_SHA256_HMAC, false, false, true, "HMAC-SHA256 (one-time codes, verifiers, the audit chain)", null),
        new(CKM.CKM_SHA_1_HMAC, false, false, true, "HMAC-SHA1 (TOTP, RFC 6238's default)", null),
        new(Mechanism(wrap), true, false, false, "wrapping TOTP seeds", "Hsm:WrapMechanism"),
        new(Mechanism(seal), false, true, false, "sealing outbox bodies", "Hsm:SealMechanism"),
    ];

    /// <summary>The seed wrap schemes whose mechanism a module offers, as setting values (for the refusal's hint).</summary>
    public static IEnumerable<string> Offered(Func<CKM, (bool Wrap, bool Encrypt)?> info, bool wrapping) =>
        wrapping
            ? Enum.GetValues<SeedWrapScheme>().Where(s => info(Mechanism(s)) is { Wrap: true }).Select(SettingValue)
            : Enum.GetValues<SealScheme>().Where(s => info(Mechanism(s)) is { Encrypt: true }).Select(SettingValue);
}
