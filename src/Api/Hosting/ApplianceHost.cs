using System.Text.Json;
using DevRift.Hsm.Api.Admin;
using DevRift.Hsm.Api.Dashboard;
using DevRift.Hsm.Api.Demo;
using DevRift.Hsm.Api.Elements;
using DevRift.Hsm.Api.Health;
using DevRift.Hsm.Api.Metrics;
using DevRift.Hsm.Api.OpenApi;
using DevRift.Hsm.Api.Problems;
using DevRift.Hsm.Api.Tls;
using DevRift.Hsm.Api.V1;
using DevRift.Hsm.Appliance;
using DevRift.Hsm.Appliance.Hsm;

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
        ConfigurationCheck.Check(builder.Configuration);
        var dataDirectory = DataDirectory(builder.Configuration);
        builder.Configuration.AddEmbeddedHsmDefaults(dataDirectory);
        if (string.IsNullOrEmpty(builder.Configuration["Storage:ConnectionString"]))
        {
            builder.Configuration["Storage:ConnectionString"] = $"Data Source={Path.Combine(dataDirectory, "devrift.db")}";
        }

        if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["ASPNETCORE_URLS"]))
        {
            builder.WebHost.UseUrls(DefaultUrls);
        }

        builder.AddTls();

        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = 1024 * 1024;
            k.RequestHeaderEncodingSelector = HeaderEncoding.Selector;
        });
        builder.Services.AddAppliance();
        builder.Services.AddSingleton<Audit.RefusalAuditBudget>();
        builder.Services.AddDelivery();
        builder.Services.AddPrometheusMetrics();
        builder.Services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
            o.SerializerOptions.Converters.Add(new DevRift.Hsm.Api.V1.UtcTimeJsonConverter());
            o.SerializerOptions.DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull;
            // Served as application/json only, so HTML-sensitive characters need no escaping ('+' stays '+').
            o.SerializerOptions.Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping;
        });
        builder.Services.AddSingleton<DevRift.Hsm.Appliance.SecurityKeys.ILocalOrigins, ServerLocalOrigins>();
        builder.Services.AddExceptionHandler<ProblemExceptionHandler>();
        builder.Services.AddProblemDetails();
        builder.Services.AddApiDocument();
        builder.Services.AddDashboard(dataDirectory);
        configure?.Invoke(builder);

        var app = builder.Build();
        app.UseMiddleware<HttpMetricsMiddleware>();
        app.UseExceptionHandler();
        app.Use(HeaderEncoding.Middleware);
        app.UseStatusCodePages(async context =>
        {
            // Routing misses (404/405) get a problem body too.
            var status = context.HttpContext.Response.StatusCode;
            var code = status == StatusCodes.Status405MethodNotAllowed ? Appliance.Errors.ErrorCode.InvalidRequest : Appliance.Errors.ErrorCode.NotFound;
            await ProblemResponses.WriteAsync(context.HttpContext, new Appliance.Errors.MfaException(code,
                status == StatusCodes.Status405MethodNotAllowed ? "method not allowed on this path" : "no such endpoint"), status);
        });
        app.MapHealth();
        app.MapMetrics();
        app.MapApiDocument();
        app.MapV1();
        app.MapProviderReceipts();
        app.MapAdmin();
        app.MapElements();
        app.MapDashboard();
        if (app.Configuration.GetValue("Demo:Enabled", true))
        {
            app.MapDemo();
        }
        return app;
    }

    /// <summary>Reads the TLS files and opens the HSM and storage now, so that a bad configuration stops start-up with one line.</summary>
    public static void CheckDependencies(IServiceProvider services)
    {
        _ = services.GetRequiredService<TlsMaterial>();
        // Validated here, before the host starts, so a bad delivery setting is one line and not a hosting stack trace.
        _ = services.GetRequiredService<Microsoft.Extensions.Options.IOptions<DevRift.Hsm.Appliance.Outbox.DeliveryOptions>>().Value;
        _ = services.GetRequiredService<Microsoft.Extensions.Options.IOptions<DevRift.Hsm.Appliance.Events.EventOptions>>().Value;
        CheckStorage(services);
        services.GetRequiredService<ApplianceInitializer>().CheckReady();
    }

    /// <summary>Creates the database access, whose constructor reads the connection string: a malformed one is one line.</summary>
    public static void CheckStorage(IServiceProvider services)
    {
        ArgumentNullException.ThrowIfNull(services);
        try
        {
            _ = services.GetRequiredService<DevRift.Hsm.Appliance.Storage.Database>();
        }
        catch (ArgumentException e)
        {
            throw new DevRift.Hsm.Appliance.Storage.StorageConfigurationException($"Storage:ConnectionString cannot be read: {e.Message.ReplaceLineEndings(" ")}", e);
        }
    }

    public static string DataDirectory(IConfiguration configuration) =>
        Path.GetFullPath(configuration["Data:Directory"] is { Length: > 0 } d ? d : "data");
}
