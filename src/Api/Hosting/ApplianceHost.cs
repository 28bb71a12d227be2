using DevRift.Hsm.Api.Health;
using DevRift.Hsm.Appliance.Hsm;
using DevRift.Hsm.Crypto;

namespace DevRift.Hsm.Api.Hosting;

/// <summary>Builds the appliance's web host from configuration (appsettings, environment, <c>--Section:Key=value</c>).</summary>
public static class ApplianceHost
{
    public const string DefaultUrls = "http://127.0.0.1:8080";

    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,
            ContentRootPath = AppContext.BaseDirectory,
        });
        var dataDirectory = DataDirectory(builder.Configuration);
        builder.Configuration.AddEmbeddedHsmDefaults(dataDirectory);
        if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["ASPNETCORE_URLS"]))
        {
            builder.WebHost.UseUrls(DefaultUrls);
        }

        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddHsm();
        configure?.Invoke(builder);

        var app = builder.Build();
        app.MapHealth();
        return app;
    }

    /// <summary>Opens the HSM (and, later, storage) now, so that a bad configuration stops start-up with one line.</summary>
    public static void CheckDependencies(IServiceProvider services)
    {
        var hsm = services.GetRequiredService<HsmConnection>();
        var versions = hsm.KeyVersions();
        var missing = versions.Where(v => v.Value.Count == 0).Select(v => KeyLabels.Label(v.Key, 1)).ToList();
        if (missing.Count > 0)
        {
            throw new HsmConfigurationException($"token '{hsm.TokenLabel}' lacks {string.Join(", ", missing)}; run 'init' first");
        }
    }

    public static string DataDirectory(IConfiguration configuration) =>
        Path.GetFullPath(configuration["Data:Directory"] is { Length: > 0 } d ? d : "data");
}
