using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using DevRift.Hsm.Api.Hosting;
using DevRift.Hsm.Appliance;
using DevRift.Hsm.Crypto;
using DevRift.Hsm.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace DevRift.Hsm.Api.Tests.Infrastructure;

public enum Db
{
    Sqlite,
    Postgres,
}

/// <summary>
/// The real appliance host on Kestrel (127.0.0.1, a free port) against a fresh SoftHSM2 token and a fresh
/// SQLite file or PostgreSQL database, initialised like <c>init</c> does (demo application, test key,
/// operator token). Optionally on a <see cref="FakeTimeProvider"/>.
/// </summary>
public sealed class ApplianceServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string _directory;
    private readonly string? _postgresDatabase;

    private readonly Func<HttpMessageHandler>? _clientHandler;

    private ApplianceServer(WebApplication app, string directory, string? postgresDatabase, InitResult init, FakeTimeProvider? clock, string connectionString,
        Func<HttpMessageHandler>? clientHandler, HsmOptions hsm)
    {
        Hsm = hsm;
        _app = app;
        _clientHandler = clientHandler;
        _directory = directory;
        _postgresDatabase = postgresDatabase;
        Init = init;
        Clock = clock;
        ConnectionString = connectionString;
        BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        Client = NewClient(init.DemoTestKey!);
    }

    public InitResult Init { get; }

    /// <summary>How this node reaches its token (another node of the same site gets the same).</summary>
    public HsmOptions Hsm { get; }

    public FakeTimeProvider? Clock { get; }

    public string ConnectionString { get; }

    public Uri BaseAddress { get; }

    /// <summary>A client carrying the demo application's test key.</summary>
    public HttpClient Client { get; }

    public string TestKey => Init.DemoTestKey!;

    public string OperatorToken => Init.OperatorToken!;

    public string ApplicationId => Init.DemoApplication!.Id;

    public IServiceProvider Services => _app.Services;

    public string DataDirectory => _directory;

    /// <summary>
    /// Starts a server. <paramref name="fakeClock"/> freezes time at 2026-06-01T12:00:00Z until moved.
    /// <paramref name="dataDirectorySettings"/> may write files (TLS certificates) into the fresh data directory and
    /// returns further settings; with <c>Tls:Certificate</c> among them the server listens on https and
    /// <see cref="BaseAddress"/> is the https URL. <paramref name="clientHandler"/> makes the handler of every client
    /// that <see cref="NewClient"/> creates (for https: server trust and a client certificate). With
    /// <paramref name="sameSiteAs"/> it is a second node of that server's site: the same token, database and clock
    /// (and its demo application, keys and operator token).
    /// </summary>
    public static async Task<ApplianceServer> StartAsync(Db db = Db.Sqlite, bool fakeClock = false, IDictionary<string, string?>? settings = null,
        Action<WebApplicationBuilder>? configure = null, Func<string, IDictionary<string, string?>>? dataDirectorySettings = null,
        Func<HttpMessageHandler>? clientHandler = null, ApplianceServer? sameSiteAs = null, HsmOptions? hsmOptions = null)
    {
        var hsm = sameSiteAs?.Hsm ?? hsmOptions ?? SoftHsmTokens.CreateToken();
        var directory = Path.Combine(Path.GetTempPath(), "devrift-api-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(directory);
        string? pgDatabase = null;
        string connectionString;
        if (sameSiteAs is not null)
        {
            connectionString = sameSiteAs.ConnectionString;
        }
        else if (db == Db.Postgres)
        {
            pgDatabase = "devrift_t_" + Guid.NewGuid().ToString("N")[..16];
            await using (var admin = new NpgsqlConnection(PostgresAdmin))
            {
                await admin.OpenAsync();
                await using var create = new NpgsqlCommand($"CREATE DATABASE {pgDatabase}", admin);
                await create.ExecuteNonQueryAsync();
            }

            connectionString = new NpgsqlConnectionStringBuilder(PostgresAdmin) { Database = pgDatabase, MaxPoolSize = 40 }.ToString();
        }
        else
        {
            connectionString = $"Data Source={Path.Combine(directory, "devrift.db")}";
        }

        var args = new List<string>
        {
            "--urls=http://127.0.0.1:0",
            $"--Data:Directory={directory}",
            $"--Storage:ConnectionString={connectionString}",
            $"--Hsm:ModulePath={hsm.ModulePath}",
            $"--Hsm:TokenLabel={hsm.TokenLabel}",
            $"--Hsm:Pin={hsm.Pin}",
            $"--Hsm:SoftHsmConfig={hsm.SoftHsmConfig}",
            $"--Hsm:WrapMechanism={hsm.WrapMechanism}",
            $"--Hsm:SealMechanism={hsm.SealMechanism}",
            "--Hsm:ReconnectInterval=00:00:00.200",
            "--Logging:LogLevel:Default=Warning",
            "--Logging:Console:FormatterName=simple",
        };
        foreach (var (k, v) in (settings ?? new Dictionary<string, string?>()).Concat(dataDirectorySettings?.Invoke(directory) ?? new Dictionary<string, string?>()))
        {
            args.Add($"--{k}={v}");
        }

        var clock = sameSiteAs is not null ? sameSiteAs.Clock : fakeClock ? new FakeTimeProvider(new DateTimeOffset(2026, 6, 1, 12, 0, 0, TimeSpan.Zero)) : null;
        var app = ApplianceHost.Build([.. args], builder =>
        {
            if (clock is not null)
            {
                builder.Services.Replace(ServiceDescriptor.Singleton<TimeProvider>(clock));
            }

            configure?.Invoke(builder);
        });
        // A token given by the caller (another module's shared test token) may hold keys of an earlier run: a new database on it is meant.
        var init = await app.Services.GetRequiredService<ApplianceInitializer>().InitializeAsync(createDemo: sameSiteAs is null, newDatabase: hsmOptions is not null);
        await app.StartAsync();
        return new ApplianceServer(app, directory, pgDatabase, sameSiteAs?.Init ?? init, clock, connectionString, clientHandler, hsm);
    }

    public static string PostgresAdmin =>
        Environment.GetEnvironmentVariable("DEVRIFT_TEST_POSTGRES") is { Length: > 0 } cs
            ? cs
            : "Host=127.0.0.1;Port=5432;Username=devrift_test;Password=devrift_test;Database=postgres";

    public HttpClient NewClient(string? bearer)
    {
        var client = new HttpClient(_clientHandler?.Invoke() ?? new HttpClientHandler()) { BaseAddress = BaseAddress };
        if (bearer is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        return client;
    }

    /// <summary>POSTs a body exactly as <c>curl -d "…"</c> sends it: form content type, no encoding.</summary>
    public Task<HttpResponseMessage> PostCurlAsync(string path, string body, string? bearer = null) =>
        NewClient(bearer ?? TestKey).PostAsync(path, new StringContent(body, Encoding.UTF8, "application/x-www-form-urlencoded") { Headers = { ContentType = new MediaTypeHeaderValue("application/x-www-form-urlencoded") } });

    public Task<HttpResponseMessage> PostJsonAsync(string path, object body, string? bearer = null) =>
        NewClient(bearer ?? TestKey).PostAsync(path, new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"));

    /// <summary>The newest code sent to <paramref name="user"/> on <paramref name="channel"/>, read from the test outbox.</summary>
    public async Task<string> LatestCodeAsync(string user, string channel, string? bearer = null)
    {
        var response = await NewClient(bearer ?? TestKey).GetAsync($"/v1/test/messages?user={Uri.EscapeDataString(user)}");
        response.EnsureSuccessStatusCode();
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        foreach (var message in doc.RootElement.GetProperty("data").EnumerateArray())
        {
            if (message.GetProperty("channel").GetString() == channel)
            {
                var digits = new StringBuilder();
                var body = message.GetProperty("body").GetString()!;
                // The code is the first run of 4+ digits (voice spells it "1, 2, 3…").
                var m = System.Text.RegularExpressions.Regex.Match(channel == "CALL" ? body.Replace(", ", "", StringComparison.Ordinal) : body, @"\d{4,10}");
                return m.Value;
            }
        }

        throw new InvalidOperationException($"no {channel} message for {user}");
    }

    /// <summary>
    /// Drops a test database, ending its sessions. A backend that cannot be ended yet (an autovacuum worker, when the
    /// role lacks pg_signal_backend) or one still closing makes PostgreSQL refuse; that is retried for a few seconds.
    /// </summary>
    public static async Task DropDatabaseAsync(string database)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var admin = new NpgsqlConnection(PostgresAdmin);
                await admin.OpenAsync();
                await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {database} WITH (FORCE)", admin);
                await drop.ExecuteNonQueryAsync();
                return;
            }
            catch (PostgresException e) when (attempt < 20 && e.SqlState is "42501" or "55006" or "53300")
            {
                await Task.Delay(250);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        if (_postgresDatabase is not null)
        {
            NpgsqlConnection.ClearAllPools();
            await DropDatabaseAsync(_postgresDatabase);
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // A file still open by a pooled connection; the temp folder is cleaned by the OS.
        }
    }
}
