namespace DevRift.Hsm.Api.Elements;

/// <summary>
/// RIFT elements: the browser script integrators include (<c>GET /elements/rift-elements.js</c>). Public, no key:
/// it holds no secret and talks only to the integrator's own backend.
/// </summary>
public static class ElementsEndpoints
{
    public const string ScriptPath = "/elements/rift-elements.js";

    private static readonly EmbeddedAsset s_script = EmbeddedAsset.Load("DevRift.Hsm.Api.Elements.rift-elements.js", "application/javascript; charset=utf-8");

    public static IEndpointRouteBuilder MapElements(this IEndpointRouteBuilder app)
    {
        // Cached for an hour, then revalidated by ETag: an upgrade reaches browsers within the hour without a versioned URL.
        app.MapGet(ScriptPath, (HttpContext http) =>
            {
                // Public and secret-free: any integrator's origin may load it, with Subresource Integrity (CORS) or COEP.
                http.Response.Headers.AccessControlAllowOrigin = "*";
                http.Response.Headers["Cross-Origin-Resource-Policy"] = "cross-origin";
                return s_script.Serve(http, "public, max-age=3600");
            })
            .ExcludeFromDescription();
        return app;
    }
}
