using System.Buffers.Text;
using System.Text.Json;
using Dapper;
using DevRift.Hsm.Api.Tests.Infrastructure;
using Microsoft.Playwright;

namespace DevRift.Hsm.Api.Tests.Browser;

/// <summary>Security keys through /demo and RIFT elements, with Chromium's DevTools virtual authenticator.</summary>
[Collection(BrowserCollection.Name)]
public sealed class SecurityKeyBrowserTests(BrowserFixture browser)
{
    [Fact]
    public async Task A_security_key_registered_on_the_demo_page_verifies_and_its_counter_advances()
    {
        // Given the demo page with the demo test key, and a CTAP2 USB virtual authenticator that verifies the user
        var user = TestUsers.NewEmail("key");
        await using var demo = await DemoPage.OpenAsync(browser, browser.Server.TestKey, user);
        var cdp = await demo.Page.Context.NewCDPSessionAsync(demo.Page);
        await cdp.SendAsync("WebAuthn.enable");
        var added = await cdp.SendAsync("WebAuthn.addVirtualAuthenticator", new Dictionary<string, object>
        {
            ["options"] = new Dictionary<string, object>
            {
                ["protocol"] = "ctap2",
                ["transport"] = "usb",
                ["hasResidentKey"] = false,
                ["hasUserVerification"] = true,
                ["isUserVerified"] = true,
                ["automaticPresenceSimulation"] = true,
            },
        });
        var authenticatorId = added!.Value.GetProperty("authenticatorId").GetString()!;

        // When the user registers a security key
        var registration = demo.Page.WaitForResponseAsync(r => r.Url.EndsWith("/v1/mfa/keys/registration", StringComparison.Ordinal) && r.Request.Method == "POST");
        var registered = await demo.ClickAsync("register-key");

        // Then the page shows 201, and the row exists with the authenticator's credential id and counter
        registered.AssertStatus(201);
        Assert.Equal(201, (await registration).Status);
        var authenticatorCredential = Assert.Single((await CredentialsAsync(cdp, authenticatorId)).EnumerateArray());
        var credentialId = Convert.FromBase64String(authenticatorCredential.GetProperty("credentialId").GetString()!);
        var row = await KeyRowAsync(user);
        Assert.Equal(credentialId, row.CredentialId);
        Assert.Equal(authenticatorCredential.GetProperty("signCount").GetInt64(), row.SignCount);
        Assert.Contains(Base64Url.EncodeToString(credentialId), registered.Text + await demo.Page.Locator("#result-body").InnerTextAsync(), StringComparison.Ordinal);

        // When the user verifies with it
        var verification = demo.Page.WaitForResponseAsync(r => r.Url.EndsWith("/v1/mfa/verify", StringComparison.Ordinal) && r.Request.Method == "POST");
        var verified = await demo.ClickAsync("verify-key");

        // Then the page saw 200 with a valid KEY verification, for an assertion RIFT elements encoded as base64url JSON
        verified.AssertStatus(200);
        var response = await verification;
        Assert.Equal(200, response.Status);
        var body = (await response.JsonAsync())!.Value;
        Assert.True(body.GetProperty("valid").GetBoolean());
        Assert.Equal("KEY", body.GetProperty("type").GetString());
        var sent = response.Request.PostDataJSON()!.Value;
        Assert.Equal("KEY", sent.GetProperty("type").GetString());
        Assert.Equal(Base64Url.EncodeToString(credentialId), sent.GetProperty("credential").GetProperty("rawId").GetString());
        Assert.Equal("public-key", sent.GetProperty("credential").GetProperty("type").GetString());

        // and the stored counter advanced to the authenticator's, with last_used_at set
        var after = await KeyRowAsync(user);
        var authenticatorCount = Assert.Single((await CredentialsAsync(cdp, authenticatorId)).EnumerateArray()).GetProperty("signCount").GetInt64();
        Assert.True(after.SignCount > row.SignCount, $"sign_count {row.SignCount} -> {after.SignCount} did not advance");
        Assert.Equal(authenticatorCount, after.SignCount);
        Assert.NotNull(after.LastUsedAt);

        // and the strict CSP refused nothing the page needed
        Assert.Empty(demo.Errors);
    }

    private static async Task<JsonElement> CredentialsAsync(ICDPSession cdp, string authenticatorId) =>
        (await cdp.SendAsync("WebAuthn.getCredentials", new Dictionary<string, object> { ["authenticatorId"] = authenticatorId }))!.Value.GetProperty("credentials");

    private async Task<KeyRow> KeyRowAsync(string user)
    {
        await using var connection = await browser.Server.OpenDatabaseAsync();
        var rows = (await connection.QueryAsync<KeyRow>(
            "SELECT credential_id AS CredentialId, sign_count AS SignCount, last_used_at AS LastUsedAt FROM security_keys WHERE user_key IN (SELECT identity_id FROM identity_contacts WHERE value = @user)",
            new { user })).ToList();
        return Assert.Single(rows);
    }

    private sealed class KeyRow
    {
        public byte[] CredentialId { get; set; } = [];

        public long SignCount { get; set; }

        public long? LastUsedAt { get; set; }
    }
}
