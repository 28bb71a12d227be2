using System.Net;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests;

/// <summary>The demo page can be switched off for production; the elements script stays.</summary>
public sealed class DemoSwitchTests
{
    [Fact]
    public async Task Demo_Enabled_false_removes_the_demo_page_but_not_the_elements_script()
    {
        // Given an appliance started with Demo:Enabled=false
        await using var server = await ApplianceServer.StartAsync(settings: new Dictionary<string, string?> { ["Demo:Enabled"] = "false" });
        using var anonymous = server.NewClient(null);

        // When the demo page, its script and the elements script are fetched
        using var page = await anonymous.GetAsync("/demo");
        using var script = await anonymous.GetAsync("/demo/demo.js");
        using var elements = await anonymous.GetAsync("/elements/rift-elements.js");

        // Then the demo is 404 and the elements script is still served
        Assert.Equal(HttpStatusCode.NotFound, page.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, script.StatusCode);
        Assert.Equal(HttpStatusCode.OK, elements.StatusCode);
    }

    [Fact]
    public async Task The_demo_page_is_served_by_default()
    {
        await using var server = await ApplianceServer.StartAsync();
        using var page = await server.NewClient(null).GetAsync("/demo");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
    }
}
