using Microsoft.Playwright;

namespace DevRift.Hsm.Api.Tests.Browser;

/// <summary>
/// One browser context on the operator dashboard: every request it makes (each must stay on the appliance's origin),
/// every console error (a CSP violation is one), and screenshots kept as test artifacts under the test output folder
/// (<c>artifacts/dashboard/</c>, not committed).
/// </summary>
public sealed class Dashboard : IAsyncDisposable
{
    private readonly PageErrors _errors;
    private readonly List<string> _requests = [];
    private int _lastStatus;

    private Dashboard(IPage page, Uri origin)
    {
        Page = page;
        Origin = origin;
        page.Context.Request += (_, r) =>
        {
            lock (_requests)
            {
                _requests.Add(r.Url);
            }
        };
        _errors = new PageErrors(page);
        page.Response += (_, r) =>
        {
            if (r.Request.IsNavigationRequest && r.Request.Frame == page.MainFrame && r.Status is < 300 or >= 400)
            {
                Volatile.Write(ref _lastStatus, r.Status);
            }
        };
    }

    public IPage Page { get; }

    public Uri Origin { get; }

    public static string ArtifactDirectory { get; } = Path.Combine(AppContext.BaseDirectory, "artifacts", "dashboard");

    public IReadOnlyList<string> Errors => _errors.All;

    public IReadOnlyList<string> Requests
    {
        get
        {
            lock (_requests)
            {
                return [.. _requests];
            }
        }
    }

    public static async Task<Dashboard> OpenAsync(BrowserFixture browser) => new(await browser.NewPageAsync(), browser.Origin);

    public static async Task<Dashboard> OpenAsync(IBrowser browser, BrowserNewContextOptions options)
    {
        ArgumentNullException.ThrowIfNull(browser);
        ArgumentNullException.ThrowIfNull(options);
        var context = await browser.NewContextAsync(options);
        context.SetDefaultTimeout(60_000);
        context.SetDefaultNavigationTimeout(60_000);
        return new Dashboard(await context.NewPageAsync(), new Uri(options.BaseURL!));
    }

    /// <summary>Signs in with a token through the form and waits for the applications page.</summary>
    public async Task SignInAsync(string token)
    {
        await Page.GotoAsync("/dashboard/sign-in");
        await Page.GetByLabel("Operator token").FillAsync(token);
        await Page.Locator("#sign-in").ClickAsync();
        await Page.WaitForURLAsync("**/dashboard");
    }

    /// <summary>Goes to a page and returns the HTTP status that served it.</summary>
    public async Task<int> GoAsync(string path) => (await Page.GotoAsync(path))?.Status ?? 0;

    /// <summary>
    /// Clicks and waits for the document the click loads (after any redirect) to replace this one; returns the status
    /// that served it. The old document is marked first, so a new one is told apart even at the same URL.
    /// </summary>
    public async Task<int> ClickAsync(string selector)
    {
        Volatile.Write(ref _lastStatus, 0);
        await Page.EvaluateAsync("() => document.body.setAttribute('data-stale', '')");
        await Page.Locator(selector).ClickAsync();
        await Page.Locator("body:not([data-stale])").WaitForAsync();
        await Page.WaitForLoadStateAsync(LoadState.DOMContentLoaded);
        return Volatile.Read(ref _lastStatus);
    }

    public async Task ScreenshotAsync(string name)
    {
        Directory.CreateDirectory(ArtifactDirectory);
        await Page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(ArtifactDirectory, name + ".png"), FullPage = true });
    }

    /// <summary>No console error, no page error, and no request to another origin (the dashboard works offline).</summary>
    public void AssertCleanAndOffline()
    {
        Assert.Empty(Errors);
        var foreign = Requests.Where(u => !u.StartsWith(Origin.GetLeftPart(UriPartial.Authority), StringComparison.Ordinal)).ToList();
        Assert.True(foreign.Count == 0, "requests left the appliance: " + string.Join(", ", foreign));
    }

    public async ValueTask DisposeAsync() => await Page.Context.CloseAsync();
}
