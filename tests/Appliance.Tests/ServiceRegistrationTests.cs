using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace DevRift.Hsm.Appliance.Tests;

/// <summary><c>AddAppliance()</c> brings what its own services need, outside the API host too (benchmarks, tools).</summary>
public sealed class ServiceRegistrationTests
{
    [Fact]
    public void The_appliance_metrics_resolve_without_the_host()
    {
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().Build());
        services.AddLogging();
        services.AddAppliance();
        using var provider = services.BuildServiceProvider();

        var metrics = provider.GetRequiredService<ApplianceMetrics>();
        Assert.NotNull(metrics);
    }
}
