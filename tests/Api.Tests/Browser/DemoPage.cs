using System.Globalization;
using Microsoft.Playwright;

namespace DevRift.Hsm.Api.Tests.Browser;

/// <summary>What the demo page's result area showed for one click.</summary>
public sealed record PageOutcome(string Action, string Status, string? Code, string Text)
{
    public void AssertStatus(int status) =>
        Assert.True(Status == status.ToString(CultureInfo.InvariantCulture), $"{Action}: expected HTTP {status} on the page, it showed: {Text}");
}

/// <summary>The /demo page driven like a person would: fill the labelled fields, click, read the result area.</summary>
public sealed class DemoPage : IAsyncDisposable
{
    private readonly PageErrors _errors;

    private DemoPage(IPage page)
    {
        Page = page;
        _errors = new PageErrors(page);
    }

    public IPage Page { get; }

    /// <summary>The response that served the page.</summary>
    public IResponse? Response { get; private set; }

    /// <summary>What the browser reported as errors: console errors (a CSP violation is one) and uncaught exceptions.</summary>
    public IReadOnlyList<string> Errors => _errors.All;

    public static async Task<DemoPage> OpenAsync(BrowserFixture browser, string key, string email, string? phone = null)
    {
        var demo = new DemoPage(await browser.NewPageAsync());
        demo.Response = await demo.Page.GotoAsync("/demo") ?? throw new InvalidOperationException("no response for /demo");
        await demo.Page.Locator("body[data-ready='true']").WaitForAsync();
        await demo.Page.GetByLabel("Test secret key").FillAsync(key);
        await demo.Page.GetByLabel("User email").FillAsync(email);
        if (phone is not null)
        {
            await demo.Page.GetByLabel("User phone (E.164)").FillAsync(phone);
        }

        return demo;
    }

    /// <summary>Clicks a button and waits for the result area to show that click's outcome.</summary>
    public async Task<PageOutcome> ClickAsync(string buttonId)
    {
        var result = Page.Locator("#result");
        var before = await result.GetAttributeAsync("data-seq") is { } s ? int.Parse(s, CultureInfo.InvariantCulture) : 0;
        await Page.Locator($"#{buttonId}").ClickAsync();
        var done = Page.Locator($"#result[data-seq='{before + 1}']:not([data-status='pending'])");
        await done.WaitForAsync();
        return new PageOutcome(
            await done.GetAttributeAsync("data-action") ?? "",
            await done.GetAttributeAsync("data-status") ?? "",
            await done.GetAttributeAsync("data-code"),
            await done.InnerTextAsync());
    }

    /// <summary>The bodies of the test-outbox messages the page lists, newest first.</summary>
    public async Task<IReadOnlyList<(string Channel, string Body)>> OutboxAsync()
    {
        var items = Page.Locator("#outbox li.message");
        var list = new List<(string, string)>();
        for (var i = 0; i < await items.CountAsync(); i++)
        {
            var item = items.Nth(i);
            list.Add((await item.GetAttributeAsync("data-channel") ?? "", await item.Locator(".message-body").InnerTextAsync()));
        }

        return list;
    }

    public async ValueTask DisposeAsync() => await Page.Context.CloseAsync();
}
