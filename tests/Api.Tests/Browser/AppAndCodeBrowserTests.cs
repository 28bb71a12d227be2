using System.Text.RegularExpressions;
using Dapper;
using DevRift.Hsm.Api.Tests.Factors;
using DevRift.Hsm.Api.Tests.Infrastructure;
using OtpNet;

namespace DevRift.Hsm.Api.Tests.Browser;

/// <summary>Authenticator apps, one-time codes and backup codes end to end through /demo, as a person would use it.</summary>
[Collection(BrowserCollection.Name)]
public sealed class AppAndCodeBrowserTests(BrowserFixture browser)
{
    [Fact]
    public async Task An_authenticator_app_enrolled_from_the_QR_code_shown_on_the_demo_page_becomes_active()
    {
        // Given the demo page and a user without an app factor
        var user = TestUsers.NewEmail("app");
        await using var demo = await DemoPage.OpenAsync(browser, browser.Server.TestKey, user);

        // When the user enrols, the page shows the QR code as an image with alt text
        var enrolled = await demo.ClickAsync("enrol-app");
        enrolled.AssertStatus(200);
        var image = demo.Page.Locator("#qr img");
        Assert.Contains(user, await image.GetAttributeAsync("alt") ?? "", StringComparison.Ordinal);
        Assert.True(await image.EvaluateAsync<bool>("img => img.complete && img.naturalWidth > 0"), "the QR image did not load");

        // and the picture the browser rendered decodes (ZXing) to the otpauth URI of this user
        var uri = QrDecoders.ZXingDecode(await image.ScreenshotAsync());
        Assert.StartsWith("otpauth://totp/Demo:" + Uri.EscapeDataString(user) + "?", uri, StringComparison.Ordinal);
        var secret = Regex.Match(uri, "[?&]secret=([A-Z2-7]+)").Groups[1].Value;
        Assert.Equal(secret, await demo.Page.Locator("#app-secret").InnerTextAsync());
        Assert.Equal("pending", await FactorStatusAsync(user));

        // When the code an authenticator app computes from it (Otp.NET) is typed in
        var code = new Totp(Base32Encoding.ToBytes(secret)).ComputeTotp(DateTime.UtcNow);
        await demo.Page.GetByLabel("Code from the app").FillAsync(code);
        var confirmed = await demo.ClickAsync("verify-app");

        // Then the page shows success and the factor is active in the database
        confirmed.AssertStatus(200);
        Assert.Contains("success", confirmed.Text, StringComparison.Ordinal);
        Assert.Equal("active", await FactorStatusAsync(user));
        Assert.Empty(demo.Errors);
    }

    [Fact]
    public async Task An_email_code_read_from_the_outbox_on_the_demo_page_verifies()
    {
        // Given the demo page and a user
        var user = TestUsers.NewEmail("mail");
        await using var demo = await DemoPage.OpenAsync(browser, browser.Server.TestKey, user);

        // When an EMAIL code is sent, the page shows 202 and the message in the test outbox
        await demo.Page.GetByLabel("Send by").SelectOptionAsync("EMAIL");
        var sent = await demo.ClickAsync("send-code");
        sent.AssertStatus(202);
        var (channel, body) = Assert.Single(await demo.OutboxAsync());
        Assert.Equal("EMAIL", channel);
        var code = Regex.Match(body, @"\b\d{6}\b").Value;
        Assert.Equal(await browser.Server.LatestCodeAsync(user, "EMAIL"), code);

        // and a wrong code is refused with the problem code shown
        await demo.Page.GetByLabel("Code you received").FillAsync(ApiTestExtensions.WrongCode(code));
        var wrong = await demo.ClickAsync("verify-code");
        wrong.AssertStatus(401);
        Assert.Equal("invalid_code", wrong.Code);
        Assert.Contains("invalid_code", wrong.Text, StringComparison.Ordinal);

        // When the code read from the page is typed in
        await demo.Page.GetByLabel("Code you received").FillAsync(code);
        var verified = await demo.ClickAsync("verify-code");

        // Then the page shows 200 and the challenge is approved
        verified.AssertStatus(200);
        Assert.Equal(1, await browser.Server.CountAsync("SELECT COUNT(*) FROM challenges WHERE user_key = @user AND status = 'approved'", new { user }));
        Assert.Empty(demo.Errors);
    }

    [Fact]
    public async Task An_SMS_code_verifies_as_PHONE_and_a_DUAL_code_from_the_email_verifies_as_DUAL_on_the_demo_page()
    {
        // Given the demo page with a user's email and phone (the demo application is on the enterprise plan)
        var user = TestUsers.NewEmail("sms");
        var phone = TestUsers.NewPhone();
        await using var demo = await DemoPage.OpenAsync(browser, browser.Server.TestKey, user, phone);

        // When an SMS code is sent, read from the page's outbox and typed in
        await demo.Page.GetByLabel("Send by").SelectOptionAsync("SMS");
        (await demo.ClickAsync("send-code")).AssertStatus(202);
        var (channel, body) = Assert.Single(await demo.OutboxAsync());
        Assert.Equal("SMS", channel);
        await demo.Page.GetByLabel("Code you received").FillAsync(Regex.Match(body, @"\b\d{6}\b").Value);
        var verification = demo.Page.WaitForResponseAsync(r => r.Url.EndsWith("/v1/mfa/verify", StringComparison.Ordinal));
        var verified = await demo.ClickAsync("verify-code");

        // Then it verifies, sent as Type=PHONE for the phone number
        verified.AssertStatus(200);
        var sent = (await verification).Request.PostDataJSON()!.Value;
        Assert.Equal("PHONE", sent.GetProperty("type").GetString());
        Assert.Equal(phone, sent.GetProperty("user").GetString());

        // When a DUAL code is sent, the outbox of email:phone shows it by email and by SMS
        await demo.Page.GetByLabel("Send by").SelectOptionAsync("DUAL");
        (await demo.ClickAsync("send-code")).AssertStatus(202);
        var outbox = await demo.OutboxAsync();
        Assert.Equal(["EMAIL", "SMS"], outbox.Take(2).Select(m => m.Channel).Order(StringComparer.Ordinal).ToArray());
        var emailed = Regex.Match(outbox.First(m => m.Channel == "EMAIL").Body, @"\b\d{6}\b").Value;

        // Then the emailed one verifies as DUAL for email:phone
        await demo.Page.GetByLabel("Code you received").FillAsync(emailed);
        var dualVerification = demo.Page.WaitForResponseAsync(r => r.Url.EndsWith("/v1/mfa/verify", StringComparison.Ordinal));
        (await demo.ClickAsync("verify-code")).AssertStatus(200);
        var dualSent = (await dualVerification).Request.PostDataJSON()!.Value;
        Assert.Equal("DUAL", dualSent.GetProperty("type").GetString());
        Assert.Equal(user + ":" + phone, dualSent.GetProperty("user").GetString());
        Assert.Empty(demo.Errors);
    }

    [Fact]
    public async Task Backup_codes_generated_on_the_demo_page_are_read_from_its_outbox_and_one_verifies_once()
    {
        // Given the demo page and a user
        var user = TestUsers.NewEmail("backup");
        await using var demo = await DemoPage.OpenAsync(browser, browser.Server.TestKey, user);

        // When backup codes are generated for the email, the page shows 202 and the codes in the outbox
        await demo.Page.GetByLabel("Deliver by").SelectOptionAsync("EMAIL");
        var generated = await demo.ClickAsync("generate-backup");
        generated.AssertStatus(202);
        var message = Assert.Single(await demo.OutboxAsync());
        var codes = FactorApi.BackupCodesIn(message.Body);
        Assert.Equal(10, codes.Count);

        // When one is typed in, it verifies; typed again, it is refused
        await demo.Page.GetByLabel("One backup code").FillAsync(codes[3]);
        (await demo.ClickAsync("verify-backup")).AssertStatus(200);
        var again = await demo.ClickAsync("verify-backup");
        again.AssertStatus(401);
        Assert.Equal("invalid_code", again.Code);
        Assert.Equal(1, await browser.Server.CountAsync("SELECT COUNT(*) FROM backup_codes WHERE user_key IN (SELECT identity_id FROM identity_contacts WHERE value = @user) AND used_at IS NOT NULL", new { user }));
        Assert.Empty(demo.Errors);
    }

    private async Task<string?> FactorStatusAsync(string user)
    {
        await using var connection = await browser.Server.OpenDatabaseAsync();
        return await connection.QuerySingleOrDefaultAsync<string>("SELECT status FROM totp_factors WHERE user_key IN (SELECT identity_id FROM identity_contacts WHERE value = @user)", new { user });
    }
}
