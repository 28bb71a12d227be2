using System.Net;
using System.Net.Http.Headers;
using DevRift.Hsm.Api.Demo;
using Microsoft.Playwright;

namespace DevRift.Hsm.Api.Tests.Browser;

/// <summary>How /elements/rift-elements.js and /demo are served, and what the page refuses before sending.</summary>
[Collection(BrowserCollection.Name)]
public sealed class ElementsAndDemoPageTests(BrowserFixture browser)
{
    [Fact]
    public async Task Rift_elements_is_served_without_a_key_as_cacheable_javascript_with_an_etag()
    {
        // Given a client with no key at all
        using var client = browser.Server.NewClient(null);

        // When it fetches the script
        using var response = await client.GetAsync("/elements/rift-elements.js");

        // Then it is JavaScript in UTF-8, public for an hour, with a strong ETag, loadable from any origin
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/javascript; charset=utf-8", response.Content.Headers.ContentType!.ToString());
        Assert.True(response.Headers.CacheControl!.Public);
        Assert.Equal(TimeSpan.FromHours(1), response.Headers.CacheControl.MaxAge);
        Assert.NotNull(response.Headers.ETag);
        Assert.False(response.Headers.ETag!.IsWeak);
        Assert.Equal("nosniff", response.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.Equal("*", response.Headers.GetValues("Access-Control-Allow-Origin").Single());
        var script = await response.Content.ReadAsStringAsync();
        Assert.Contains("global.RiftElements = Object.freeze(", script, StringComparison.Ordinal);

        // and a revalidation with that ETag is answered 304 without a body
        using var request = new HttpRequestMessage(HttpMethod.Get, "/elements/rift-elements.js");
        request.Headers.IfNoneMatch.Add(response.Headers.ETag);
        using var revalidated = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.NotModified, revalidated.StatusCode);
        Assert.Empty(await revalidated.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Rift_elements_adds_exactly_one_global_and_converts_base64url_both_ways()
    {
        // Given a page of the appliance that has no script of its own
        var page = await browser.NewPageAsync();
        try
        {
            await page.GotoAsync("/healthz");
            var before = await page.EvaluateAsync<string[]>("() => Object.getOwnPropertyNames(window)");

            // When RIFT elements is included
            await page.AddScriptTagAsync(new PageAddScriptTagOptions { Url = "/elements/rift-elements.js" });

            // Then window.RiftElements is the only new global
            var after = await page.EvaluateAsync<string[]>("() => Object.getOwnPropertyNames(window)");
            Assert.Equal(["RiftElements"], after.Except(before).ToArray());

            // and creation options in WebAuthn JSON become ArrayBuffers where WebAuthn wants them, nulls dropped
            var converted = await page.EvaluateAsync<string>("""
                () => {
                  const o = RiftElements.toCreationOptions(JSON.stringify({
                    rp: { id: "localhost", name: "Demo" }, user: { id: "AAEC_w", name: "ada", displayName: "ada" },
                    challenge: "-_8", pubKeyCredParams: [{ type: "public-key", alg: -7 }], timeout: 60000,
                    excludeCredentials: [{ type: "public-key", id: "AQID" }], extensions: { appidExclude: null }, status: "ok", errorMessage: "" }));
                  const hex = b => Array.from(new Uint8Array(b)).map(x => x.toString(16).padStart(2, "0")).join("");
                  return [hex(o.challenge), hex(o.user.id), hex(o.excludeCredentials[0].id), o.challenge instanceof ArrayBuffer,
                          "appidExclude" in o.extensions, "status" in o, RiftElements.base64url.encode(new Uint8Array([251, 255, 0]).buffer)].join(" ");
                }
                """);
            Assert.Equal("fbff 000102ff 010203 true false false -_8A", converted);
        }
        finally
        {
            await page.Context.CloseAsync();
        }
    }

    [Fact]
    public async Task Demo_page_loads_without_a_key_under_a_strict_content_security_policy()
    {
        // Given a client with no key, when it fetches the page and its script
        using var client = browser.Server.NewClient(null);
        using var page = await client.GetAsync("/demo");
        using var script = await client.GetAsync("/demo/demo.js");

        // Then both are served, the page as HTML under a CSP that allows only this origin's scripts (no inline script)
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html; charset=utf-8", page.Content.Headers.ContentType!.ToString());
        var csp = page.Headers.GetValues("Content-Security-Policy").Single();
        Assert.Equal(DemoEndpoints.ContentSecurityPolicy, csp);
        Assert.Contains("script-src 'self';", csp, StringComparison.Ordinal);
        Assert.DoesNotContain("unsafe-inline", csp, StringComparison.Ordinal);
        Assert.Equal("DENY", page.Headers.GetValues("X-Frame-Options").Single());
        var html = await page.Content.ReadAsStringAsync();
        Assert.DoesNotMatch("<script(?![^>]*\\ssrc=)", html);
        Assert.Equal(HttpStatusCode.OK, script.StatusCode);
        Assert.Equal("application/javascript; charset=utf-8", script.Content.Headers.ContentType!.ToString());
    }

    [Fact]
    public async Task Demo_page_refuses_a_live_looking_key_before_sending_anything()
    {
        // Given the demo page with a key that looks live, and a record of every request the page makes from now on
        await using var demo = await DemoPage.OpenAsync(browser, "sk_live_" + new string('a', 40), "ada@example.com");
        var requests = new System.Collections.Concurrent.ConcurrentQueue<string>();
        demo.Page.Request += (_, r) => requests.Enqueue(r.Method + " " + r.Url);

        // Then the field already warns
        Assert.Contains("not a test key", await demo.Page.Locator("#key-hint").InnerTextAsync(), StringComparison.Ordinal);

        // When the user tries to send a code, enrol an app or register a security key
        foreach (var button in (string[])["send-code", "enrol-app", "register-key", "generate-backup"])
        {
            var outcome = await demo.ClickAsync(button);

            // Then each is refused on the page and nothing reaches the network
            Assert.Equal("refused", outcome.Status);
            Assert.Contains("only test keys (sk_test_", outcome.Text, StringComparison.Ordinal);
        }

        Assert.Empty(requests);

        // and a test key is let through (the same page, the same click)
        await demo.Page.GetByLabel("Test secret key").FillAsync(browser.Server.TestKey);
        (await demo.ClickAsync("send-code")).AssertStatus(202);
        Assert.Contains(requests, r => r.StartsWith("POST ", StringComparison.Ordinal) && r.EndsWith("/v1/mfa", StringComparison.Ordinal));
    }
}
