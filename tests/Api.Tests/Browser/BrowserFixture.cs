using DevRift.Hsm.Api.Tests.Infrastructure;
using Microsoft.Playwright;

namespace DevRift.Hsm.Api.Tests.Browser;

/// <summary>
/// Debian's Chromium driven by Playwright (its bundled driver, no browser download), headless, and one appliance the
/// browser tests share (each test uses its own users). A missing <c>/usr/bin/chromium</c> fails the tests.
/// </summary>
public sealed class BrowserFixture : IAsyncLifetime
{
    public const string ChromiumPath = "/usr/bin/chromium";

    private IPlaywright? _playwright;
    private IBrowser? _browser;
    private ApplianceServer? _server;

    public IBrowser Browser => _browser ?? throw new InvalidOperationException("the browser did not start");

    public ApplianceServer Server => _server ?? throw new InvalidOperationException("the appliance did not start");

    /// <summary>The appliance as the browser must address it: host <c>localhost</c>, the relying party of the demo application.</summary>
    public Uri Origin => new UriBuilder(Server.BaseAddress) { Host = "localhost" }.Uri;

    public async Task InitializeAsync()
    {
        if (!File.Exists(ChromiumPath))
        {
            throw new InvalidOperationException(
                $"Chromium is required for the browser tests and is missing at {ChromiumPath}: install it with 'apt-get install -y chromium' (test.sh does).");
        }

        // Playwright must never fetch a browser of its own; it drives the system Chromium.
        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        _server = await ApplianceServer.StartAsync(Db.Sqlite);
        _playwright = await Playwright.CreateAsync();
        _browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        });
    }

    /// <summary>A fresh context and page (no shared storage between tests), with generous timeouts for a busy machine.</summary>
    public async Task<IPage> NewPageAsync()
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions { BaseURL = Origin.ToString() });
        context.SetDefaultTimeout(60_000);
        context.SetDefaultNavigationTimeout(60_000);
        return await context.NewPageAsync();
    }

    public async Task DisposeAsync()
    {
        if (_browser is not null)
        {
            await _browser.CloseAsync();
        }

        _playwright?.Dispose();
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class BrowserCollection : ICollectionFixture<BrowserFixture>
{
    public const string Name = "Browser";
}
