using DevRift.Hsm.Appliance.Outbox;
using DevRift.Hsm.Appliance.Storage;

namespace DevRift.Hsm.Api.Metrics;

/// <summary><c>GET /metrics</c>: Prometheus text exposition of this node's counters, latencies and outbox depth.</summary>
public static class MetricsEndpoints
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>The instruments and the exposition, started with the host so that nothing before the first scrape is lost.</summary>
    public static IServiceCollection AddPrometheusMetrics(this IServiceCollection services)
    {
        services.AddMetrics();
        services.AddSingleton<ApiMetrics>();
        services.AddSingleton<PrometheusExposition>();
        services.AddSingleton<VerificationMetricsFilter>();
        services.AddHostedService<ExpositionStarter>();
        return services;
    }

    public static void MapMetrics(this IEndpointRouteBuilder app)
    {
        app.MapGet("/metrics", async (HttpContext http, PrometheusExposition exposition, OutboxDepth outbox) =>
        {
            var gauges = new List<PrometheusExposition.Gauge>();

            // Read at scrape, bounded: while the database cannot answer the depth is left out rather than the scrape failing.
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
            timeout.CancelAfter(TimeSpan.FromSeconds(2));
            try
            {
                var depth = await outbox.ReadAsync(timeout.Token);
                gauges.Add(new PrometheusExposition.Gauge("devrift_outbox_depth", "Outbox messages waiting for delivery, by status.",
                    depth.Select(d => new PrometheusExposition.GaugeSample([new("status", d.Key)], d.Value)).ToList()));
            }
            catch (Exception e) when (e is StorageUnavailableException || (e is OperationCanceledException && timeout.IsCancellationRequested && !http.RequestAborted.IsCancellationRequested))
            {
                // Readiness reports the outage; the scrape still carries everything else.
            }

            http.Response.Headers.CacheControl = "no-store";
            return Results.Text(exposition.Write(gauges), ContentType);
        }).ExcludeFromDescription();
    }

    private sealed class ExpositionStarter(PrometheusExposition exposition) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            GC.KeepAlive(exposition);
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
