using OtpNet;
using QRCoder;

namespace DevRift.Hsm.Appliance.Factors;

/// <summary>Key-Uri-Format (<c>otpauth://totp/Issuer:user?secret=…</c>) and its QR code.</summary>
public static class OtpAuth
{
    public static string Base32(ReadOnlySpan<byte> seed) => Base32Encoding.ToString(seed.ToArray()).TrimEnd('=');

    public static string Uri(string issuer, string account, string base32Secret, string algorithm, int digits, int period)
    {
        ArgumentNullException.ThrowIfNull(issuer);
        var label = System.Uri.EscapeDataString(issuer) + ":" + System.Uri.EscapeDataString(account);
        return $"otpauth://totp/{label}?secret={base32Secret}&issuer={System.Uri.EscapeDataString(issuer)}&algorithm={algorithm}&digits={digits}&period={period}";
    }

    /// <summary>A PNG of the URI's QR code (error correction M, 8 pixels a module).</summary>
    public static byte[] QrPng(string uri)
    {
        using var generator = new QRCodeGenerator();
        using var data = generator.CreateQrCode(uri, QRCodeGenerator.ECCLevel.M);
        return new PngByteQRCode(data).GetGraphic(8);
    }

    public static OtpHashMode Mode(string algorithm) => algorithm switch
    {
        "SHA256" => OtpHashMode.Sha256,
        "SHA512" => OtpHashMode.Sha512,
        _ => OtpHashMode.Sha1,
    };
}
