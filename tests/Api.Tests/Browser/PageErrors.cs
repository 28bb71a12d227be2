using Microsoft.Playwright;

namespace DevRift.Hsm.Api.Tests.Browser;

/// <summary>What a page reported as errors: console errors (a CSP violation is one) and uncaught exceptions.</summary>
public sealed class PageErrors
{
    private readonly List<string> _errors = [];

    public PageErrors(IPage page)
    {
        ArgumentNullException.ThrowIfNull(page);
        page.Console += (_, m) =>
        {
            // A 4xx the page asked for is logged by Chromium as a failed load; that is the page working, not an error.
            if (m.Type == "error" && !m.Text.StartsWith("Failed to load resource: the server responded with a status of 4", StringComparison.Ordinal))
            {
                Add(m.Text);
            }
        };
        page.PageError += (_, e) => Add(e);
    }

    public IReadOnlyList<string> All
    {
        get
        {
            lock (_errors)
            {
                return [.. _errors];
            }
        }
    }

    private void Add(string error)
    {
        lock (_errors)
        {
            _errors.Add(error);
        }
    }
}
