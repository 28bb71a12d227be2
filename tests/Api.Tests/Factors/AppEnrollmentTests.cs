using System.Net;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Factors;

/// <summary>Test 1: what an enrolment hands out (QR code, otpauth URI, secret) and that an independent TOTP agrees.</summary>
public sealed class AppEnrollmentTests
{
    [Fact]
    public void The_test_TOTP_matches_the_RFC_6238_SHA1_vectors()
    {
        // Given the RFC 6238 appendix B key, when codes are computed at its times, then they are the published ones.
        var key = "12345678901234567890"u8.ToArray();
        Assert.Equal("94287082", Rfc6238.Code(key, 59 / 30, 8));
        Assert.Equal("07081804", Rfc6238.Code(key, 1111111109 / 30, 8));
        Assert.Equal("14050471", Rfc6238.Code(key, 1111111111 / 30, 8));
        Assert.Equal("89005924", Rfc6238.Code(key, 1234567890 / 30, 8));
        Assert.Equal("69279037", Rfc6238.Code(key, 2000000000 / 30, 8));
    }

    [Fact]
    public async Task Enrolment_QR_code_decodes_to_the_otpauth_uri_whose_secret_yields_codes_that_verify()
    {
        // Given a server on the fake clock
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite, fakeClock: true);

        // When ada enrols an authenticator app
        using var response = await server.PostCurlAsync("/v1/mfa/app", "User=ada@example.com");
        var body = await response.AssertJsonAsync(HttpStatusCode.OK, "app_enrollment");
        var uri = body.GetProperty("otpauth_uri").GetString()!;
        var secret = body.GetProperty("secret").GetString()!;
        var png = Convert.FromBase64String(body.GetProperty("qr_code").GetString()!);

        // Then the response is not cacheable
        Assert.Contains("no-store", response.Headers.CacheControl!.ToString(), StringComparison.Ordinal);
        Assert.True(response.Headers.CacheControl!.NoStore);
        Assert.Equal("pending", body.GetProperty("status").GetString());

        // and the QR PNG decodes, with two independent decoders, to exactly the otpauth URI
        Assert.Equal(uri, QrDecoders.ZXingDecode(png));
        Assert.Equal(uri, await QrDecoders.ZbarDecodeAsync(png));

        // and the URI has the Key-Uri-Format parts
        Assert.StartsWith("otpauth://totp/Demo:ada%40example.com?", uri, StringComparison.Ordinal);
        var query = uri[(uri.IndexOf('?', StringComparison.Ordinal) + 1)..].Split('&')
            .Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);
        Assert.Equal(["secret", "issuer", "algorithm", "digits", "period"], query.Keys.ToArray());
        Assert.Equal("Demo", query["issuer"]);
        Assert.Equal("SHA1", query["algorithm"]);
        Assert.Equal("6", query["digits"]);
        Assert.Equal("30", query["period"]);
        Assert.Equal(secret, query["secret"]);
        Assert.Equal($"otpauth://totp/Demo:ada%40example.com?secret={secret}&issuer=Demo&algorithm=SHA1&digits=6&period=30", uri);

        // and the secret is unpadded RFC 4648 base32 of a 20-byte (SHA-1 sized) seed
        Assert.Matches("^[A-Z2-7]+$", secret);
        Assert.DoesNotContain('=', secret);
        var seed = Base32Text.Decode(secret);
        Assert.Equal(20, seed.Length);

        // and oathtool, from the same secret at the fake clock's time, computes the code the test computes
        var now = server.Now();
        Assert.Equal(new DateTimeOffset(2026, 6, 1, 12, 0, 0, TimeSpan.Zero), now);
        var (exit, stdout, stderr) = await QrDecoders.RunAsync("oathtool", "--totp", "-b", secret, "--now", "2026-06-01 12:00:00 UTC");
        Assert.True(exit == 0, stderr);
        var code = Rfc6238.CodeAt(seed, now);
        Assert.Equal(code, stdout.Trim());

        // and that code verifies as an APP verification, which activates the factor
        using var ok = await server.VerifyAppAsync(FactorApi.Ada, code);
        var verification = await ok.AssertJsonAsync(HttpStatusCode.OK, "verification");
        Assert.True(verification.GetProperty("valid").GetBoolean());
        Assert.Equal("APP", verification.GetProperty("type").GetString());
        Assert.Equal(FactorApi.Ada, verification.GetProperty("user").GetString());
        Assert.False(verification.GetProperty("livemode").GetBoolean());

        // and later codes from the same secret keep verifying
        server.Clock!.Advance(TimeSpan.FromSeconds(30));
        await server.VerifyAppAsync(FactorApi.Ada, Rfc6238.CodeAt(seed, server.Now())).ExpectVerifiedAsync("APP");
        server.Clock!.Advance(TimeSpan.FromMinutes(10));
        await server.VerifyAppAsync(FactorApi.Ada, Rfc6238.CodeAt(seed, server.Now())).ExpectVerifiedAsync("APP");
    }
}
