using DevRift.Hsm.Api.Elements;

namespace DevRift.Hsm.Api.Demo;

/// <summary>
/// <c>GET /demo</c>: a page on which someone holding a test key tries every method end to end in a browser. The page
/// needs no key to load; its script refuses anything but <c>sk_test_…</c> before sending and calls <c>/v1</c> on this
/// origin with that key. A strict Content-Security-Policy allows only this origin's scripts, styles and API, and
/// data: images for the enrolment QR code.
/// </summary>
public static class DemoEndpoints
{
    public const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

    private static readonly EmbeddedAsset s_page = EmbeddedAsset.Load("DevRift.Hsm.Api.Demo.demo.html", "text/html; charset=utf-8");
    private static readonly EmbeddedAsset s_script = EmbeddedAsset.Load("DevRift.Hsm.Api.Demo.demo.js", "application/javascript; charset=utf-8");
    private static readonly EmbeddedAsset s_style = EmbeddedAsset.Load("DevRift.Hsm.Api.Demo.demo.css", "text/css; charset=utf-8");

    public static IEndpointRouteBuilder MapDemo(this IEndpointRouteBuilder app)
    {
        var demo = app.MapGroup("/demo").ExcludeFromDescription();
        demo.MapGet("", (HttpContext http) =>
        {
            var headers = http.Response.Headers;
            headers.ContentSecurityPolicy = ContentSecurityPolicy;
            headers.XFrameOptions = "DENY";
            headers["Referrer-Policy"] = "no-referrer";
            headers["Cross-Origin-Opener-Policy"] = "same-origin";
            return s_page.Serve(http, "no-cache");
        });
        demo.MapGet("/demo.js", (HttpContext http) => s_script.Serve(http, "no-cache"));
        demo.MapGet("/demo.css", (HttpContext http) => s_style.Serve(http, "no-cache"));
        return app;
    }
}
