using DevRift.Hsm.Api.Elements;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.DataProtection;

namespace DevRift.Hsm.Api.Dashboard;

/// <summary>
/// The operator dashboard at <c>/dashboard</c> (and <c>/</c> leading to it): server-rendered Razor Pages on the
/// appliance's own services, signed in with an operator token or an operator client certificate. The session is a
/// Data Protection cookie (HttpOnly, SameSite=Strict, Secure under TLS, path <c>/dashboard</c>) naming the operator,
/// re-checked on every request (a revoked token ends its sessions at once). Every form carries an antiforgery token;
/// every page is served with a Content-Security-Policy that allows this origin only, so it works offline. No secret is
/// ever put in a URL: sign-in and every change are POSTs, and a new secret is shown once in the answer to its POST.
/// </summary>
public static class DashboardSetup
{
    public const string Scheme = "devrift-dashboard";

    public const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; " +
        "frame-ancestors 'none'; base-uri 'none'";

    private static readonly EmbeddedAsset s_style = EmbeddedAsset.Load("DevRift.Hsm.Api.Demo.demo.css", "text/css; charset=utf-8");
    private static readonly EmbeddedAsset s_dashboardStyle = EmbeddedAsset.Load("DevRift.Hsm.Api.Dashboard.dashboard.css", "text/css; charset=utf-8");
    private static readonly EmbeddedAsset s_script = EmbeddedAsset.Load("DevRift.Hsm.Api.Dashboard.dashboard.js", "application/javascript; charset=utf-8");

    public static IServiceCollection AddDashboard(this IServiceCollection services, string dataDirectory)
    {
        // The pages live in this assembly, whatever the entry assembly is (a test host, a deployment's own host).
        services.AddRazorPages(o =>
        {
            o.RootDirectory = "/Dashboard/Pages";
            o.Conventions.ConfigureFilter(new DashboardFilter());
        }).AddApplicationPart(typeof(DashboardSetup).Assembly);
        // Sessions and antiforgery tokens survive a restart (keys beside the database; whoever reads the data
        // directory holds the HSM PIN already). Nodes behind one load balancer need this directory shared, or sticky sessions.
        services.AddDataProtection()
            .SetApplicationName("devrift-dashboard")
            .PersistKeysToFileSystem(new DirectoryInfo(Path.Combine(dataDirectory, "dashboard-keys")));
        services.AddAuthentication().AddCookie(Scheme, o =>
        {
            o.Cookie.Name = "devrift_dashboard";
            o.Cookie.HttpOnly = true;
            o.Cookie.SameSite = SameSiteMode.Strict;
            o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            o.Cookie.Path = "/dashboard";
            o.ExpireTimeSpan = TimeSpan.FromHours(8);
            o.SlidingExpiration = true;
            o.LoginPath = "/dashboard/sign-in";
        });
        services.AddAntiforgery(o =>
        {
            o.Cookie.Name = "devrift_antiforgery";
            o.Cookie.SameSite = SameSiteMode.Strict;
            o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            o.Cookie.Path = "/dashboard";
            o.FormFieldName = "__antiforgery";
        });
        return services;
    }

    public static WebApplication MapDashboard(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        // The session's principal is known before the pages' filters run, antiforgery's included (its tokens are bound
        // to the signed-in operator). The host has several schemes under mutual TLS and so no default one: name it here.
        app.Use(async (http, next) =>
        {
            if (http.Request.Path.StartsWithSegments("/dashboard", StringComparison.Ordinal))
            {
                var session = await http.AuthenticateAsync(Scheme);
                if (session.Succeeded)
                {
                    http.User = session.Principal;
                }
            }

            await next(http);
        });
        app.MapGet("/", () => Results.Redirect("/dashboard")).ExcludeFromDescription();
        app.MapGet("/dashboard/assets/demo.css", (HttpContext http) => s_style.Serve(http, "no-cache")).ExcludeFromDescription();
        app.MapGet("/dashboard/assets/dashboard.css", (HttpContext http) => s_dashboardStyle.Serve(http, "no-cache")).ExcludeFromDescription();
        app.MapGet("/dashboard/assets/dashboard.js", (HttpContext http) => s_script.Serve(http, "no-cache")).ExcludeFromDescription();
        app.MapRazorPages();
        return app;
    }
}
