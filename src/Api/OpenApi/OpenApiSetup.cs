using DevRift.Hsm.Api.Problems;
using Scalar.AspNetCore;

namespace DevRift.Hsm.Api.OpenApi;

/// <summary>The OpenAPI document, its reference page (Scalar, set up for an offline appliance) and the problem pages.</summary>
public static class OpenApiSetup
{
    public static IServiceCollection AddApiDocument(this IServiceCollection services) =>
        services.AddOpenApi("v1", o =>
        {
            o.AddSchemaTransformer<SchemaTypeTransformer>();
            o.AddDocumentTransformer<ApiDocumentTransformer>();
        });

    public static IEndpointRouteBuilder MapApiDocument(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapOpenApi("/openapi/{documentName}.json");
        app.MapScalarApiReference("/docs", o => o
            .WithTitle("DevRift.Hsm API")
            .WithOpenApiRoutePattern("/openapi/{documentName}.json")
            // An appliance is often offline and never wants a hosted service: no AI agent, MCP, telemetry, CDN fonts,
            // or the developer toolbar (with its SDK-generation and deploy links).
            .DisableAgent()
            .DisableMcp()
            .DisableTelemetry()
            .DisableDefaultFonts()
            .HideDeveloperTools()
            .WithDefaultHttpClient(ScalarTarget.Shell, ScalarClient.Curl)
            .AddPreferredSecuritySchemes(ApiDocumentTransformer.ApiKeyScheme));
        app.MapErrorPages();
        return app;
    }
}
