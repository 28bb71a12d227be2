using DevRift.Hsm.Appliance.Factors;
using OtpNet;

namespace DevRift.Hsm.Appliance.Tests;

/// <summary>The Key-Uri-Format enrolment URI and its base32 secret.</summary>
public sealed class OtpAuthTests
{
    [Fact]
    public void The_uri_names_issuer_account_and_parameters_escaped()
    {
        var uri = OtpAuth.Uri("Acme Bank", "ada+mfa@example.com", "JBSWY3DPEHPK3PXP", "SHA256", 8, 60);
        Assert.Equal("otpauth://totp/Acme%20Bank:ada%2Bmfa%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=Acme%20Bank&algorithm=SHA256&digits=8&period=60", uri);
    }

    [Fact]
    public void The_secret_is_unpadded_base32_that_decodes_to_the_seed()
    {
        byte[] seed = [0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x21, 0xde, 0xad, 0xbe, 0xef, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x21, 0xde, 0xad, 0xbe, 0xef];
        var secret = OtpAuth.Base32(seed);
        Assert.DoesNotContain('=', secret);
        Assert.Equal(32, secret.Length);
        Assert.Equal(seed, Base32Encoding.ToBytes(secret));
    }

    [Fact]
    public void The_qr_code_is_a_png()
    {
        var png = OtpAuth.QrPng("otpauth://totp/A:b?secret=JBSWY3DPEHPK3PXP");
        Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, png[..8]);
    }

    [Theory]
    [InlineData("SHA1", OtpHashMode.Sha1)]
    [InlineData("SHA256", OtpHashMode.Sha256)]
    [InlineData("SHA512", OtpHashMode.Sha512)]
    public void Algorithms_map_to_OtpNet_modes(string algorithm, OtpHashMode mode) => Assert.Equal(mode, OtpAuth.Mode(algorithm));
}
