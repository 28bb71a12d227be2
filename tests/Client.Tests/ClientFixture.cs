using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Client.Tests;

/// <summary>One real appliance (Kestrel, SoftHSM2, SQLite, a frozen clock) shared by a test class.</summary>
public sealed class ApplianceFixture : IAsyncLifetime
{
    private ApplianceServer? _server;

    public ApplianceServer Server => _server ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync() => _server = await ApplianceServer.StartAsync(Db.Sqlite, fakeClock: true);

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    /// <summary>A client of the demo application's test key (or <paramref name="key"/>) on <paramref name="baseAddress"/> (the appliance by default).</summary>
    public DevRiftClient NewClient(string? key = null, Uri? baseAddress = null, Action<DevRiftClientOptions>? configure = null)
    {
        var options = new DevRiftClientOptions { BaseAddress = baseAddress ?? Server.BaseAddress, ApiKey = key ?? Server.TestKey };
        options.Retry.Delay = TimeSpan.FromMilliseconds(50);
        configure?.Invoke(options);
        return new DevRiftClient(options);
    }

    /// <summary>A new live key of the demo application (created through the operator API).</summary>
    public async Task<string> NewLiveKeyAsync()
    {
        using var admin = Server.AdminClient();
        using var response = await admin.PostAsJsonAsync($"/admin/v1/applications/{Server.ApplicationId}/api-keys", new { mode = "live" });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return doc.RootElement.GetProperty("secret").GetString()!;
    }

    /// <summary>A new application with a test key, its settings patched by <paramref name="settings"/>.</summary>
    public async Task<string> NewApplicationKeyAsync(string plan, object? settings = null)
    {
        var (_, key) = await Server.CreateApplicationWithKeyAsync("client-" + Guid.NewGuid().ToString("N")[..8], plan, settings);
        return key;
    }
}
