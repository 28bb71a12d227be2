using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Api.Tests.Rotation;
using DevRift.Hsm.Api.Tests.Tls;
using Microsoft.Playwright;

namespace DevRift.Hsm.Api.Tests.Browser;

/// <summary>The dashboard's own appliance and browser (its HSM keys are rotated and retired here, so it is not shared with the demo page's tests).</summary>
[CollectionDefinition(Name)]
public sealed class DashboardCollection : ICollectionFixture<BrowserFixture>
{
    public const string Name = "Dashboard";
}

/// <summary>Every dashboard page driven in Debian's Chromium as an operator would, each checked against /admin/v1 and the database.</summary>
[Collection(DashboardCollection.Name)]
public sealed class DashboardBrowserTests(BrowserFixture browser)
{
    private ApplianceServer Server => browser.Server;

    private async Task<Dashboard> SignedInAsync()
    {
        var dashboard = await Dashboard.OpenAsync(browser);
        await dashboard.SignInAsync(Server.OperatorToken);
        return dashboard;
    }

    private async Task<JsonElement> AdminGetAsync(string path)
    {
        using var admin = Server.AdminClient();
        using var response = await admin.GetAsync(path);
        return await response.AssertJsonAsync(HttpStatusCode.OK);
    }

    [Fact]
    public async Task The_root_leads_to_sign_in_a_wrong_token_is_refused_the_right_one_signs_in_and_sign_out_ends_the_session()
    {
        await using var dashboard = await Dashboard.OpenAsync(browser);

        // Given a browser without a session, / leads to the sign-in page
        await dashboard.Page.GotoAsync("/");
        Assert.EndsWith("/dashboard/sign-in", dashboard.Page.Url, StringComparison.Ordinal);
        await dashboard.ScreenshotAsync("sign-in");

        // When a wrong token is typed, it is refused on the page (401) and no session exists
        await dashboard.Page.GetByLabel("Operator token").FillAsync("adm_" + new string('Z', 42));
        var refused = await dashboard.Page.RunAndWaitForResponseAsync(() => dashboard.Page.Locator("#sign-in").ClickAsync(), r => r.Request.Method == "POST");
        Assert.Equal(401, refused.Status);
        Assert.Contains("not a valid operator token", await dashboard.Page.Locator("#token-error").InnerTextAsync(), StringComparison.Ordinal);
        Assert.DoesNotContain(await dashboard.Page.Context.CookiesAsync(), c => c.Name == "devrift_dashboard");
        await dashboard.ScreenshotAsync("sign-in-refused");

        // When the operator token is typed, the applications page opens with the demo application
        await dashboard.SignInAsync(Server.OperatorToken);
        Assert.Contains("Demo", await dashboard.Page.Locator("#applications").InnerTextAsync(), StringComparison.Ordinal);
        await dashboard.ScreenshotAsync("applications");

        // And the session cookie is HttpOnly, SameSite=Strict, scoped to /dashboard (Secure only under TLS: see the TLS test)
        var session = Assert.Single(await dashboard.Page.Context.CookiesAsync(), c => c.Name == "devrift_dashboard");
        Assert.True(session.HttpOnly);
        Assert.Equal(SameSiteAttribute.Strict, session.SameSite);
        Assert.Equal("/dashboard", session.Path);
        Assert.False(session.Secure);

        // And no URL ever held the token, and nothing was loaded from elsewhere
        Assert.DoesNotContain(dashboard.Requests, u => u.Contains(Server.OperatorToken[4..], StringComparison.Ordinal));
        dashboard.AssertCleanAndOffline();

        // When the operator signs out, the pages lead back to sign-in
        await dashboard.ClickAsync("#sign-out");
        Assert.EndsWith("/dashboard/sign-in", dashboard.Page.Url, StringComparison.Ordinal);
        await dashboard.Page.GotoAsync("/dashboard/hsm");
        Assert.EndsWith("/dashboard/sign-in", dashboard.Page.Url, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Every_page_is_served_with_a_strict_content_security_policy_and_loads_nothing_from_elsewhere()
    {
        await using var dashboard = await SignedInAsync();
        var applicationId = Server.ApplicationId;
        foreach (var (path, name) in new[]
        {
            ("/dashboard", "applications"), ($"/dashboard/applications/{applicationId}", "settings"), ($"/dashboard/applications/{applicationId}/keys", "api-keys"),
            ($"/dashboard/applications/{applicationId}/certificates", "client-certificates"), ("/dashboard/delivery", "delivery"), ("/dashboard/audit", "audit"),
            ("/dashboard/hsm", "hsm"), ("/dashboard/operators", "operator-tokens"),
        })
        {
            var response = await dashboard.Page.GotoAsync(path);
            Assert.Equal(200, response!.Status);
            var headers = await response.AllHeadersAsync();
            Assert.Equal(Api.Dashboard.DashboardSetup.ContentSecurityPolicy, headers["content-security-policy"]);
            Assert.Equal("DENY", headers["x-frame-options"]);
            Assert.Contains("no-store", headers["cache-control"], StringComparison.Ordinal);
            await dashboard.ScreenshotAsync(name);
        }

        dashboard.AssertCleanAndOffline();
    }

    [Fact]
    public async Task A_form_posted_without_its_antiforgery_token_is_refused_and_changes_nothing()
    {
        // Given a signed-in browser (its session cookie goes with the request)
        await using var dashboard = await SignedInAsync();
        var before = (await AdminGetAsync("/admin/v1/applications")).GetProperty("data").GetArrayLength();

        // When a form is posted with the session but without the antiforgery token
        var response = await dashboard.Page.Context.APIRequest.PostAsync("/dashboard", new APIRequestContextOptions
        {
            Form = dashboard.Page.Context.APIRequest.CreateFormData().Set("name", "Forged").Set("plan", "standard"),
            MaxRedirects = 0,
        });

        // Then 400, and no application was created
        Assert.Equal(400, response.Status);
        Assert.Equal(before, (await AdminGetAsync("/admin/v1/applications")).GetProperty("data").GetArrayLength());
    }

    [Fact]
    public async Task An_application_is_created_renamed_and_every_setting_changed_through_the_form_reads_back_through_the_api()
    {
        await using var dashboard = await SignedInAsync();

        // When an application is created on the applications page
        await dashboard.Page.GetByLabel("Name").FillAsync("Form Shop");
        await dashboard.Page.GetByLabel("Plan").SelectOptionAsync("enterprise");
        await dashboard.ClickAsync("#create-application");
        var id = (await AdminGetAsync("/admin/v1/applications")).GetProperty("data").EnumerateArray()
            .Single(a => a.GetProperty("name").GetString() == "Form Shop").GetProperty("id").GetString()!;

        // And renamed on its page
        await dashboard.GoAsync($"/dashboard/applications/{id}");
        await dashboard.Page.Locator("#app-name").FillAsync("Form Shop EU");
        await dashboard.ClickAsync("#save-application");
        Assert.Equal("Form Shop EU", (await AdminGetAsync($"/admin/v1/applications/{id}")).GetProperty("name").GetString());

        // And every setting is given a value other than its default and saved
        var values = new Dictionary<string, string>
        {
            ["code_length"] = "8", ["code_lifetime_seconds"] = "300", ["attempts_per_challenge"] = "3", ["sends_per_destination"] = "7",
            ["send_window_seconds"] = "900", ["resend_cooldown_seconds"] = "45", ["sends_per_application_per_hour"] = "5000",
            ["totp_digits"] = "8", ["totp_period_seconds"] = "60", ["totp_window_back"] = "2", ["totp_window_forward"] = "0",
            ["totp_issuer"] = "Form Shop", ["lockout_threshold"] = "4", ["lockout_seconds"] = "120", ["hard_lock_threshold"] = "40",
            ["backup_code_count"] = "12", ["backup_code_length"] = "16", ["webauthn_rp_id"] = "shop.example.com", ["webauthn_timeout_seconds"] = "120",
            ["velocity_per_prefix_per_hour"] = "500", ["velocity_per_range_per_hour"] = "20",
            ["source_failure_threshold"] = "4", ["source_delay_seconds"] = "30", ["source_delay_max_seconds"] = "600", ["user_lockout_sources"] = "5",
            ["user_lockout_window_seconds"] = "600", ["user_lockout_threshold"] = "30",
        };
        foreach (var (name, value) in values)
        {
            await dashboard.Page.Locator($"#{name}").FillAsync(value);
        }

        await dashboard.Page.Locator("#totp_algorithm").SelectOptionAsync("SHA256");
        await dashboard.Page.Locator("#webauthn_user_verification").SelectOptionAsync("required");
        await dashboard.Page.Locator("#lockout_profile").SelectOptionAsync("strict");
        await dashboard.Page.Locator("#webauthn_origins").FillAsync("https://shop.example.com\nhttps://login.shop.example.com");
        await dashboard.Page.Locator("#fraud_guard_mode").SelectOptionAsync("shadow");
        await dashboard.Page.Locator("#allowed_countries").FillAsync("gb\nIE");
        await dashboard.Page.Locator("#blocked_ranges").FillAsync("+4470, +37517");
        await dashboard.Page.Locator("#m-WHATSAPP").UncheckAsync();
        await dashboard.Page.Locator("#m-CALL").UncheckAsync();
        await dashboard.ClickAsync("#save-settings");
        Assert.Contains("Saved", await dashboard.Page.Locator("#message").InnerTextAsync(), StringComparison.Ordinal);
        await dashboard.ScreenshotAsync("settings-saved");

        // Then /admin/v1 reads back every value
        var settings = await AdminGetAsync($"/admin/v1/applications/{id}/settings");
        foreach (var (name, value) in values)
        {
            Assert.Equal(value, settings.GetProperty(name).ValueKind == JsonValueKind.Number ? settings.GetProperty(name).GetRawText() : settings.GetProperty(name).GetString());
        }

        Assert.Equal("SHA256", settings.GetProperty("totp_algorithm").GetString());
        Assert.Equal("required", settings.GetProperty("webauthn_user_verification").GetString());
        Assert.Equal("strict", settings.GetProperty("lockout_profile").GetString());
        Assert.Equal(["https://shop.example.com", "https://login.shop.example.com"], settings.GetProperty("webauthn_origins").EnumerateArray().Select(o => o.GetString()));
        Assert.Equal(["EMAIL", "SMS", "DUAL", "APP", "KEY", "BACKUP"], settings.GetProperty("enabled_methods").EnumerateArray().Select(o => o.GetString()));
        Assert.Equal("shadow", settings.GetProperty("fraud_guard_mode").GetString());
        Assert.Equal(["GB", "IE"], settings.GetProperty("allowed_countries").EnumerateArray().Select(o => o.GetString()));
        Assert.Equal(["+4470", "+37517"], settings.GetProperty("blocked_ranges").EnumerateArray().Select(o => o.GetString()));
        dashboard.AssertCleanAndOffline();
    }

    [Fact]
    public async Task The_application_page_shows_the_fraud_guard_mode_and_its_counts()
    {
        // Given an application whose guard refused two sends to premium-rate numbers and one outside its countries
        var (id, key) = await Server.CreateApplicationWithKeyAsync("Guarded", "standard", new { allowed_countries = new[] { "GB" } });
        foreach (var (to, code) in new[] { ("+449098790000", "destination_blocked"), ("+449098790001", "destination_blocked"), ("+14155550199", "country_not_allowed") })
        {
            using var refused = await Server.SendCodeAsync(to, "SMS", key);
            await refused.AssertProblemAsync(System.Net.HttpStatusCode.Forbidden, code, "user");
        }

        // When its page is opened
        await using var dashboard = await SignedInAsync();
        await dashboard.GoAsync($"/dashboard/applications/{id}");

        // Then the fraud-guard section shows the mode, the countries and the exact counts
        Assert.Equal("enforce", await dashboard.Page.Locator("#fraud-guard-mode").InnerTextAsync());
        Assert.Equal("GB", await dashboard.Page.Locator("#fraud-guard-countries").InnerTextAsync());
        var blocked = dashboard.Page.Locator("#fraud-guard tr[data-mode=test][data-decision=blocked]");
        Assert.Equal("2", await blocked.Locator("td[data-reason=range]").InnerTextAsync());
        Assert.Equal("1", await blocked.Locator("td[data-reason=country]").InnerTextAsync());
        Assert.Equal("0", await blocked.Locator("td[data-reason=velocity]").InnerTextAsync());
        Assert.Equal("0", await dashboard.Page.Locator("#fraud-guard tr[data-mode=test][data-decision=would_block] td[data-reason=range]").InnerTextAsync());
        await dashboard.ScreenshotAsync("fraud-guard");
        dashboard.AssertCleanAndOffline();
    }

    [Fact]
    public async Task Settings_out_of_range_or_incoherent_are_shown_beside_their_field_and_change_nothing()
    {
        var id = await Server.CreateApplicationAsync("Validated", "standard");
        await using var dashboard = await SignedInAsync();
        await dashboard.GoAsync($"/dashboard/applications/{id}");

        // When code_length is set to 11, the error is beside it and the typed value is kept
        await dashboard.Page.Locator("#code_length").FillAsync("11");
        await dashboard.ClickAsync("#save-settings");
        Assert.Contains("between 4 and 10", await dashboard.Page.Locator("#error-code_length").InnerTextAsync(), StringComparison.Ordinal);
        Assert.Equal("11", await dashboard.Page.Locator("#code_length").InputValueAsync());
        await dashboard.ScreenshotAsync("settings-error");

        // When DUAL is enabled on this standard plan, the error is beside the methods
        await dashboard.GoAsync($"/dashboard/applications/{id}");
        await dashboard.Page.Locator("#m-DUAL").CheckAsync();
        await dashboard.ClickAsync("#save-settings");
        Assert.Contains("enterprise", await dashboard.Page.Locator("#error-enabled_methods").InnerTextAsync(), StringComparison.Ordinal);

        // And a number that is not one is named too
        await dashboard.GoAsync($"/dashboard/applications/{id}");
        await dashboard.Page.Locator("#lockout_seconds").FillAsync("soon");
        await dashboard.ClickAsync("#save-settings");
        Assert.Contains("whole number", await dashboard.Page.Locator("#error-lockout_seconds").InnerTextAsync(), StringComparison.Ordinal);

        // Then nothing changed
        var settings = await AdminGetAsync($"/admin/v1/applications/{id}/settings");
        Assert.Equal(6, settings.GetProperty("code_length").GetInt32());
        Assert.Equal(300, settings.GetProperty("lockout_seconds").GetInt32());
        Assert.DoesNotContain("DUAL", settings.GetProperty("enabled_methods").EnumerateArray().Select(m => m.GetString()));
        dashboard.AssertCleanAndOffline();
    }

    private async Task<HttpStatusCode> FactorsStatusAsync(string key)
    {
        using var client = Server.NewClient(key);
        using var response = await client.GetAsync($"/v1/mfa/factors?user={Uri.EscapeDataString(TestUsers.NewEmail("dash"))}");
        return response.StatusCode;
    }

    [Fact]
    public async Task An_api_key_is_created_with_its_secret_shown_once_rolled_with_an_overlap_and_revoked()
    {
        var id = await Server.CreateApplicationAsync("Keyed", "standard");
        await using var dashboard = await SignedInAsync();
        await dashboard.GoAsync($"/dashboard/applications/{id}/keys");

        // When a labelled test key is created, its secret is shown once with a copy button
        await dashboard.Page.Locator("#new-label").FillAsync("checkout");
        await dashboard.ClickAsync("#create-key");
        var first = (await dashboard.Page.Locator("#new-secret").InnerTextAsync()).Trim();
        Assert.StartsWith("sk_test_", first, StringComparison.Ordinal);
        Assert.True(await dashboard.Page.Locator("#copy-secret").IsVisibleAsync());
        await dashboard.ScreenshotAsync("api-key-created");
        Assert.Equal(HttpStatusCode.OK, await FactorsStatusAsync(first));
        var key = (await AdminGetAsync($"/admin/v1/applications/{id}/api-keys")).GetProperty("data")[0];
        Assert.Equal("checkout", key.GetProperty("label").GetString());
        var keyId = key.GetProperty("id").GetString()!;

        // And a reload shows it no more
        await dashboard.GoAsync($"/dashboard/applications/{id}/keys");
        Assert.Equal(0, await dashboard.Page.Locator("#new-secret").CountAsync());
        Assert.DoesNotContain(first[8..], await dashboard.Page.ContentAsync(), StringComparison.Ordinal);

        // When it is rolled with a 3-second overlap, the new secret is shown and both work for now
        var row = dashboard.Page.Locator($"tr[data-id='{keyId}']");
        await row.Locator("input[name='overlap']").FillAsync("3");
        await dashboard.ClickAsync($"tr[data-id='{keyId}'] form[action*='Roll'] button");
        var second = (await dashboard.Page.Locator("#new-secret").InnerTextAsync()).Trim();
        Assert.StartsWith("sk_test_", second, StringComparison.Ordinal);
        Assert.NotEqual(first, second);
        Assert.Contains("works until", await dashboard.Page.Locator($"tr[data-id='{keyId}'] .status").InnerTextAsync(), StringComparison.Ordinal);
        await dashboard.ScreenshotAsync("api-key-rolled");
        Assert.Equal(HttpStatusCode.OK, await FactorsStatusAsync(second));

        // Then after the overlap the old key is refused and the new one goes on
        await Task.Delay(TimeSpan.FromSeconds(3.2));
        Assert.Equal(HttpStatusCode.Unauthorized, await FactorsStatusAsync(first));
        Assert.Equal(HttpStatusCode.OK, await FactorsStatusAsync(second));

        // When the new key is revoked, it is refused at once
        var newId = (await AdminGetAsync($"/admin/v1/applications/{id}/api-keys")).GetProperty("data").EnumerateArray()
            .Single(k => k.GetProperty("id").GetString() != keyId).GetProperty("id").GetString()!;
        await dashboard.GoAsync($"/dashboard/applications/{id}/keys");
        await dashboard.ClickAsync($"tr[data-id='{newId}'] form[action*='Revoke'] button");
        Assert.Contains("revoked", await dashboard.Page.Locator("#message").InnerTextAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Unauthorized, await FactorsStatusAsync(second));
        dashboard.AssertCleanAndOffline();
    }

    [Fact]
    public async Task A_client_certificate_is_registered_by_PEM_upload_listed_and_removed_and_a_CA_certificate_is_refused_beside_the_field()
    {
        var id = await Server.CreateApplicationAsync("Certified", "standard");
        using var ca = TestPki.CreateCa("Dashboard CA");
        using var client = TestPki.IssueClient(ca, "dashboard client");
        await using var dashboard = await SignedInAsync();
        await dashboard.GoAsync($"/dashboard/applications/{id}/certificates");

        // When the CA's own certificate is uploaded, it is refused beside the file field
        await dashboard.Page.Locator("#pem").SetInputFilesAsync(new FilePayload { Name = "ca.pem", MimeType = "application/x-pem-file", Buffer = System.Text.Encoding.ASCII.GetBytes(TestPki.Pem(ca)) });
        await dashboard.ClickAsync("#register-certificate");
        Assert.Contains("CA:TRUE", await dashboard.Page.Locator("#pem-error").InnerTextAsync(), StringComparison.Ordinal);

        // When the client's certificate is uploaded, it is listed with its thumbprint
        await dashboard.Page.Locator("#pem").SetInputFilesAsync(new FilePayload { Name = "client.pem", MimeType = "application/x-pem-file", Buffer = System.Text.Encoding.ASCII.GetBytes(TestPki.Pem(client)) });
        await dashboard.ClickAsync("#register-certificate");
        Assert.Contains(TestPki.Thumbprint(client), await dashboard.Page.Locator("#certificates").InnerTextAsync(), StringComparison.Ordinal);
        await dashboard.ScreenshotAsync("client-certificate-registered");
        var registered = Assert.Single((await AdminGetAsync($"/admin/v1/applications/{id}/client-certificates")).GetProperty("data").EnumerateArray());
        Assert.Equal(TestPki.Thumbprint(client), registered.GetProperty("thumbprint").GetString());

        // When it is removed, the list is empty
        await dashboard.ClickAsync($"tr[data-id='{registered.GetProperty("id").GetString()}'] button");
        Assert.Equal(0, (await AdminGetAsync($"/admin/v1/applications/{id}/client-certificates")).GetProperty("data").GetArrayLength());
        dashboard.AssertCleanAndOffline();
    }

    [Fact]
    public async Task The_delivery_page_shows_each_channels_provider_the_outbox_by_status_and_recent_failures_with_their_reason()
    {
        // Given a live message a provider refused for good (as the dispatcher records it)
        await using (var db = await Server.OpenDatabaseAsync())
        {
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            await Dapper.SqlMapper.ExecuteAsync(db,
                """
                INSERT INTO outbox (id, application_id, mode, kind, channel, destination, locale, status, attempts, next_attempt_at, created_at, expires_at, last_error)
                VALUES ('msg_dashfailure', @app, 'live', 'code', 'EMAIL', 'bounced@example.com', 'en', 'failed', 1, @now, @now, @now, '550 5.1.1 recipient rejected')
                """, new { app = Server.ApplicationId, now });
        }

        await using var dashboard = await SignedInAsync();
        await dashboard.GoAsync("/dashboard/delivery");
        var failures = await dashboard.Page.Locator("#failures").InnerTextAsync();
        Assert.Contains("550 5.1.1 recipient rejected", failures, StringComparison.Ordinal);
        Assert.DoesNotContain("bounced@example.com", failures, StringComparison.Ordinal);
        Assert.Equal("1", (await dashboard.Page.Locator("#depth tr[data-status='failed'] td").Nth(1).InnerTextAsync()).Trim());
        foreach (var channel in new[] { "EMAIL", "SMS", "WHATSAPP", "CALL" })
        {
            Assert.Contains("not configured", await dashboard.Page.Locator($"#providers tr[data-channel='{channel}']").InnerTextAsync(), StringComparison.Ordinal);
        }

        foreach (var status in new[] { "queued", "sending", "sent", "failed" })
        {
            Assert.Equal(1, await dashboard.Page.Locator($"#depth tr[data-status='{status}']").CountAsync());
        }

        await dashboard.ScreenshotAsync("delivery");
        dashboard.AssertCleanAndOffline();
    }

    [Fact]
    public async Task The_audit_log_filters_by_event_and_application_pages_and_verifies_the_chain()
    {
        var id = await Server.CreateApplicationAsync("Audited Here", "standard");
        using (var patched = await Server.PatchSettingsAsync(id, new { code_length = 7 }))
        {
            await patched.AssertJsonAsync(HttpStatusCode.OK, "settings");
        }

        await using var dashboard = await SignedInAsync();
        await dashboard.GoAsync("/dashboard/audit");

        // When filtered by event and application
        await dashboard.Page.Locator("#event").SelectOptionAsync("settings.update");
        await dashboard.Page.Locator("#application_id").FillAsync(id);
        await dashboard.ClickAsync("#filter");

        // Then only that record is shown, with what changed
        var rows = dashboard.Page.Locator("#records tbody tr");
        Assert.Equal(1, await rows.CountAsync());
        var text = await rows.First.InnerTextAsync();
        Assert.Contains("settings.update", text, StringComparison.Ordinal);
        Assert.Contains("\"from\":6,\"to\":7", text, StringComparison.Ordinal);
        await dashboard.ScreenshotAsync("audit-filtered");

        // And an unfiltered log pages by 50
        await dashboard.GoAsync("/dashboard/audit");
        for (var i = 0; i < 50; i++)
        {
            await Server.CreateApplicationAsync($"Paged {i}", "standard");
        }

        await dashboard.GoAsync("/dashboard/audit");
        Assert.Equal(50, await rows.CountAsync());
        var firstSeq = await rows.First.GetAttributeAsync("data-seq");
        await dashboard.ClickAsync("#next-page");
        Assert.True(long.Parse((await rows.First.GetAttributeAsync("data-seq"))!, System.Globalization.CultureInfo.InvariantCulture)
            > long.Parse(firstSeq!, System.Globalization.CultureInfo.InvariantCulture) + 49);

        // When the chain is verified, the page says it is valid
        await dashboard.ClickAsync("#verify-chain");
        Assert.StartsWith("Valid:", (await dashboard.Page.Locator("#verification").InnerTextAsync()).Trim(), StringComparison.Ordinal);
        await dashboard.ScreenshotAsync("audit-verified");
        dashboard.AssertCleanAndOffline();
    }

    [Fact]
    public async Task A_key_is_rotated_its_retirement_refused_with_the_reason_while_test_data_holds_it_and_retired_once_purged()
    {
        // Given a test message sealed under seal v1
        await Server.SendEmailCodeAsync("sealed-dash");
        await using var dashboard = await SignedInAsync();
        await dashboard.GoAsync("/dashboard/hsm");

        // When seal is rotated, v2 is current
        await dashboard.ClickAsync("tr[data-label='devrift.seal.v1'] button");
        Assert.Contains("devrift.seal.v2 created", await dashboard.Page.Locator("#message").InnerTextAsync(), StringComparison.Ordinal);
        Assert.Contains("current", await dashboard.Page.Locator("tr[data-label='devrift.seal.v2']").InnerTextAsync(), StringComparison.Ordinal);

        // When v1 is retired while test messages hold it, the 409 reason is shown
        await dashboard.ClickAsync("tr[data-label='devrift.seal.v1'] button");
        var error = await dashboard.Page.Locator("#error").InnerTextAsync();
        Assert.Contains("key_in_use", error, StringComparison.Ordinal);
        Assert.Contains("test_messages", error, StringComparison.Ordinal);
        await dashboard.ScreenshotAsync("hsm-retire-refused");

        // When the demo application's test outbox is purged on its page, v1 can be retired
        await dashboard.GoAsync($"/dashboard/applications/{Server.ApplicationId}");
        await dashboard.ClickAsync("#purge-test-messages");
        Assert.Contains("test messages deleted", await dashboard.Page.Locator("#message").InnerTextAsync(), StringComparison.Ordinal);
        foreach (var app in (await AdminGetAsync("/admin/v1/applications")).GetProperty("data").EnumerateArray())
        {
            using var admin = Server.AdminClient();
            (await admin.DeleteAsync($"/admin/v1/applications/{app.GetProperty("id").GetString()}/test-messages")).EnsureSuccessStatusCode();
        }

        await dashboard.GoAsync("/dashboard/hsm");
        await dashboard.ClickAsync("tr[data-label='devrift.seal.v1'] button");
        Assert.Contains("devrift.seal.v1 retired", await dashboard.Page.Locator("#message").InnerTextAsync(), StringComparison.Ordinal);
        Assert.Equal(new[] { 2 }, (await Server.HsmStatusAsync()).Versions("seal"));
        await dashboard.ScreenshotAsync("hsm");
        dashboard.AssertCleanAndOffline();
    }

    [Fact]
    public async Task An_operator_token_created_on_the_dashboard_is_shown_once_and_its_revocation_ends_its_sessions_at_once()
    {
        await using var dashboard = await SignedInAsync();
        await dashboard.GoAsync("/dashboard/operators");

        // When a token is created, its secret is shown once
        await dashboard.Page.GetByLabel("Label (who or what holds it)").FillAsync("night shift");
        await dashboard.ClickAsync("#create-token");
        var secret = (await dashboard.Page.Locator("#new-secret").InnerTextAsync()).Trim();
        Assert.StartsWith("adm_", secret, StringComparison.Ordinal);
        await dashboard.ScreenshotAsync("operator-token-created");
        var tokenId = (await AdminGetAsync("/admin/v1/operator-tokens")).GetProperty("data").EnumerateArray()
            .Single(t => t.GetProperty("label").GetString() == "night shift").GetProperty("id").GetString()!;

        // And another browser signs in with it
        await using var other = await Dashboard.OpenAsync(browser);
        await other.SignInAsync(secret);
        Assert.Equal(200, await other.GoAsync("/dashboard/hsm"));

        // When the first revokes it
        await dashboard.GoAsync("/dashboard/operators");
        await dashboard.ClickAsync($"tr[data-id='{tokenId}'] button");
        Assert.Contains("revoked", await dashboard.Page.Locator($"tr[data-id='{tokenId}']").InnerTextAsync(), StringComparison.Ordinal);

        // Then the other browser's very next page leads to sign-in, and the token is refused on /admin/v1
        await other.Page.GotoAsync("/dashboard/hsm");
        Assert.EndsWith("/dashboard/sign-in", other.Page.Url, StringComparison.Ordinal);
        using var admin = Server.AdminClient(secret);
        await (await admin.GetAsync("/admin/v1/hsm")).AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
        var revocation = (await AdminGetAsync("/admin/v1/audit?event=operator_token.revoke")).GetProperty("data").EnumerateArray().Last();
        Assert.Equal(("dashboard", tokenId), (revocation.GetProperty("detail").GetProperty("via").GetString(), revocation.GetProperty("detail").GetProperty("token_id").GetString()));
        dashboard.AssertCleanAndOffline();
        other.AssertCleanAndOffline();
    }

    [Fact]
    public async Task Under_mutual_tls_the_operator_certificate_signs_in_and_the_session_cookie_is_secure()
    {
        // Given an appliance on https with a client CA and an operator certificate
        using var serverCa = TestPki.CreateCa("Dashboard Server CA");
        using var clientCa = TestPki.CreateCa("Dashboard Client CA");
        using var operatorCertificate = TestPki.IssueClient(clientCa, "dashboard operator");
        using var serverCertificate = TestPki.IssueServer(serverCa);
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite, dataDirectorySettings: directory =>
        {
            File.WriteAllText(Path.Combine(directory, "server.pem"), TestPki.Pem(serverCertificate));
            File.WriteAllText(Path.Combine(directory, "server.key"), TestPki.KeyPem(serverCertificate));
            File.WriteAllText(Path.Combine(directory, "client-ca.pem"), TestPki.Pem(clientCa));
            return new Dictionary<string, string?>
            {
                ["Tls:Certificate"] = Path.Combine(directory, "server.pem"),
                ["Tls:Key"] = Path.Combine(directory, "server.key"),
                ["Tls:ClientCa"] = Path.Combine(directory, "client-ca.pem"),
                ["Tls:OperatorCertificateThumbprints:0"] = TestPki.Thumbprint(operatorCertificate),
            };
        }, clientHandler: () => TestPki.Handler(serverCa, operatorCertificate));
        var origin = new UriBuilder(server.BaseAddress) { Host = "localhost" }.Uri.ToString().TrimEnd('/');

        // When Chromium presents the operator certificate
        await using var dashboard = await Dashboard.OpenAsync(browser.Browser, new BrowserNewContextOptions
        {
            BaseURL = origin,
            IgnoreHTTPSErrors = true, // the test server CA is not in Chromium's store
            ClientCertificates = [new ClientCertificate { Origin = origin, Cert = System.Text.Encoding.ASCII.GetBytes(TestPki.Pem(operatorCertificate)), Key = System.Text.Encoding.ASCII.GetBytes(TestPki.KeyPem(operatorCertificate)) }],
        });
        await dashboard.Page.GotoAsync("/dashboard/sign-in");
        Assert.Contains("cert_" + TestPki.Thumbprint(operatorCertificate), await dashboard.Page.Locator("main").InnerTextAsync(), StringComparison.Ordinal);
        await dashboard.ScreenshotAsync("sign-in-certificate");
        await dashboard.ClickAsync("#sign-in-certificate");

        // Then the dashboard opens without a token, its cookie Secure, and it works over TLS
        Assert.EndsWith("/dashboard", dashboard.Page.Url, StringComparison.Ordinal);
        var session = Assert.Single(await dashboard.Page.Context.CookiesAsync(), c => c.Name == "devrift_dashboard");
        Assert.True(session.Secure);
        Assert.True(session.HttpOnly);
        Assert.Equal(SameSiteAttribute.Strict, session.SameSite);
        Assert.Equal(200, await dashboard.GoAsync("/dashboard/hsm"));
        await dashboard.ScreenshotAsync("hsm-over-mtls");

        // And its forms work (antiforgery tokens bound to the certificate's session): a token is created
        await dashboard.GoAsync("/dashboard/operators");
        await dashboard.Page.GetByLabel("Label (who or what holds it)").FillAsync("made over mtls");
        Assert.Equal(200, await dashboard.ClickAsync("#create-token"));
        Assert.StartsWith("adm_", (await dashboard.Page.Locator("#new-secret").InnerTextAsync()).Trim(), StringComparison.Ordinal);
        dashboard.AssertCleanAndOffline();

        // And a token sign-in works over TLS too, in a context without the certificate
        await using var withToken = await Dashboard.OpenAsync(browser.Browser, new BrowserNewContextOptions { BaseURL = origin, IgnoreHTTPSErrors = true });
        await withToken.SignInAsync(server.OperatorToken);
        Assert.True(Assert.Single(await withToken.Page.Context.CookiesAsync(), c => c.Name == "devrift_dashboard").Secure);
        await withToken.GoAsync("/dashboard/operators");
        await withToken.Page.GetByLabel("Label (who or what holds it)").FillAsync("made with a token over tls");
        Assert.Equal(200, await withToken.ClickAsync("#create-token"));
        withToken.AssertCleanAndOffline();
    }
}
