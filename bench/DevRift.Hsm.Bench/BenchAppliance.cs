using DevRift.Hsm.Appliance;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace DevRift.Hsm.Bench;

/// <summary>
/// The appliance's own service collection (<c>AddAppliance()</c>) on in-memory configuration: a private SoftHSM2
/// token (<see cref="BenchTokenDirectory"/>) and a SQLite file beside it. For the service-layer benchmarks.
/// </summary>
internal sealed class BenchAppliance : IAsyncDisposable
{
    private readonly BenchTokenDirectory _token;

    private BenchAppliance(BenchTokenDirectory token, ServiceProvider services)
    {
        _token = token;
        Services = services;
    }

    public ServiceProvider Services { get; }

    /// <summary>The directory holding the token and the database.</summary>
    public string Root => _token.Root;

    /// <summary>Builds it; <paramref name="clock"/> replaces the system clock when given.</summary>
    public static BenchAppliance Create(TimeProvider? clock = null)
    {
        var token = BenchTokenDirectory.Create();
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Hsm:ModulePath"] = BenchTokenDirectory.ModulePath,
                ["Hsm:TokenLabel"] = BenchTokenDirectory.Label,
                ["Hsm:Pin"] = BenchTokenDirectory.Pin,
                ["Hsm:SoftHsmConfig"] = token.SoftHsmConfig,
                ["Storage:ConnectionString"] = $"Data Source={Path.Combine(token.Root, "devrift.db")}",
            })
            .Build();
        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(configuration);
        services.AddLogging();
        if (clock is not null)
        {
            services.AddSingleton(clock); // before AddAppliance, which only tries to add the system clock
        }

        services.AddAppliance();
        // Not ValidateOnBuild: AddAppliance also registers services whose host-side dependencies (e.g. the listening
        // addresses) only the API host provides; a benchmark resolves just what it uses.
        return new BenchAppliance(token, services.BuildServiceProvider());
    }

    /// <summary>Closes the HSM connection and the database, then deletes the token and the database.</summary>
    public async ValueTask DisposeAsync()
    {
        await Services.DisposeAsync();
        SqliteConnection.ClearAllPools();
        _token.Dispose();
    }
}
