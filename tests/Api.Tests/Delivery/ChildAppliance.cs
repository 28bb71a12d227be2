using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.RegularExpressions;
using DevRift.Hsm.Testing;
using Npgsql;

namespace DevRift.Hsm.Api.Tests.Delivery;

/// <summary>
/// The appliance as a separate process (<c>dotnet DevRift.Hsm.Api.dll init|serve …</c>, as run.sh starts it), so that a
/// test can kill it outright (SIGKILL: no shutdown hook runs, claims are not given back) and start it again on the same
/// token, database and port. Its console output is kept for the no-code-in-logs checks.
/// </summary>
public sealed partial class ChildAppliance : IAsyncDisposable
{
    private readonly List<string> _configuration;
    private Process? _process;

    private ChildAppliance(List<string> configuration, int port)
    {
        _configuration = configuration;
        Port = port;
        BaseAddress = new Uri($"http://127.0.0.1:{port}");
    }

    public int Port { get; }

    public Uri BaseAddress { get; }

    /// <summary>Every line the processes printed (stdout and stderr, all runs).</summary>
    public ConcurrentQueue<string> Output { get; } = new();

    public string TestKey { get; private set; } = "";

    public string OperatorToken { get; private set; } = "";

    public string ApplicationId { get; private set; } = "";

    /// <summary>Configuration shared by nodes: a fresh token and either a SQLite file or a fresh PostgreSQL database.</summary>
    public sealed record Site(string TokenLabel, string DataDirectory, string ConnectionString, string? PostgresDatabase) : IAsyncDisposable
    {
        public static async Task<Site> CreateAsync(bool postgres)
        {
            var hsm = SoftHsmTokens.CreateToken();
            var directory = Path.Combine(Path.GetTempPath(), "devrift-delivery-tests", Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(directory);
            if (!postgres)
            {
                return new Site(hsm.TokenLabel, directory, $"Data Source={Path.Combine(directory, "devrift.db")}", null);
            }

            var database = "devrift_d_" + Guid.NewGuid().ToString("N")[..16];
            await using (var admin = new NpgsqlConnection(Infrastructure.ApplianceServer.PostgresAdmin))
            {
                await admin.OpenAsync();
                await using var create = new NpgsqlCommand($"CREATE DATABASE {database}", admin);
                await create.ExecuteNonQueryAsync();
            }

            // A bounded pool per node, as a deployment sizes it (nodes × pool below the server's max_connections): a
            // burst of requests queues for a connection instead of exhausting the server that other tests share.
            var cs = new NpgsqlConnectionStringBuilder(Infrastructure.ApplianceServer.PostgresAdmin) { Database = database, MaxPoolSize = 15 }.ToString();
            return new Site(hsm.TokenLabel, directory, cs, database);
        }

        public async ValueTask DisposeAsync()
        {
            if (PostgresDatabase is not null)
            {
                NpgsqlConnection.ClearAllPools();
                await Infrastructure.ApplianceServer.DropDatabaseAsync(PostgresDatabase);
            }

            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try
            {
                Directory.Delete(DataDirectory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>A node of <paramref name="site"/> with these settings (not started).</summary>
    public static ChildAppliance For(Site site, IDictionary<string, string?> settings, string name)
    {
        var port = FreePort.Next();
        var configuration = new List<string>
        {
            $"--urls=http://127.0.0.1:{port}",
            $"--Data:Directory={Path.Combine(site.DataDirectory, name)}",
            $"--Storage:ConnectionString={site.ConnectionString}",
            $"--Hsm:ModulePath={SoftHsmTokens.ModulePath}",
            $"--Hsm:TokenLabel={site.TokenLabel}",
            $"--Hsm:Pin={SoftHsmTokens.Pin}",
            $"--Hsm:SoftHsmConfig={SoftHsmTokens.ConfigPath}",
            $"--Delivery:NodeId={name}",
            "--Logging:Console:FormatterName=simple",
            "--Logging:LogLevel:Default=Debug",
            "--Logging:LogLevel:Microsoft.AspNetCore=Debug",
        };
        configuration.AddRange(settings.Select(kv => $"--{kv.Key}={kv.Value}"));
        return new ChildAppliance(configuration, port);
    }

    /// <summary>Runs <c>init</c> (keys, schema, demo application with a test key, operator token) and keeps its secrets.</summary>
    public async Task InitAsync()
    {
        using var init = Start("init");
        var stdout = new List<string>();
        init.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (stdout)
                {
                    stdout.Add(e.Data);
                }
            }
        };
        init.BeginOutputReadLine();
        init.BeginErrorReadLine();
        await init.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(init.ExitCode == 0, $"init failed: {string.Join('\n', Output)}");
        string all;
        lock (stdout)
        {
            all = string.Join('\n', stdout);
        }

        TestKey = KeyLine().Match(all).Groups[1].Value;
        OperatorToken = TokenLine().Match(all).Groups[1].Value;
        ApplicationId = AppLine().Match(all).Groups[1].Value;
        Assert.False(string.IsNullOrEmpty(OperatorToken), "init printed no operator token");
    }

    /// <summary>Copies the secrets of the node that ran <c>init</c> (another node of the same site).</summary>
    public void ShareSecretsOf(ChildAppliance other)
    {
        TestKey = other.TestKey;
        OperatorToken = other.OperatorToken;
        ApplicationId = other.ApplicationId;
    }

    /// <summary>Starts <c>serve</c> and waits until <c>/healthz</c> answers.</summary>
    public async Task StartAsync()
    {
        _process = Start("serve");
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        using var http = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(2) };
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTime.UtcNow < until)
        {
            Assert.False(_process.HasExited, $"the appliance exited: {string.Join('\n', Output.TakeLast(20))}");
            try
            {
                using var response = await http.GetAsync("/healthz");
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }

            await Task.Delay(100);
        }

        throw new TimeoutException("the appliance did not become healthy");
    }

    /// <summary>SIGKILL: the process ends at once, whatever it was doing.</summary>
    public async Task KillAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process?.Dispose();
        _process = null;
    }

    public async ValueTask DisposeAsync() => await KillAsync();

    private Process Start(string command)
    {
        var psi = new ProcessStartInfo(DotnetHost())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "DevRift.Hsm.Api.dll"));
        psi.ArgumentList.Add(command);
        foreach (var a in _configuration)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["SOFTHSM2_CONF"] = SoftHsmTokens.ConfigPath;
        psi.Environment["DOTNET_ENVIRONMENT"] = "Production";
        psi.Environment.Remove("ASPNETCORE_URLS");
        var process = new Process { StartInfo = psi };
        process.OutputDataReceived += (_, e) => Keep(e.Data);
        process.ErrorDataReceived += (_, e) => Keep(e.Data);
        process.Start();
        return process;
    }

    private void Keep(string? line)
    {
        if (line is not null)
        {
            Output.Enqueue(line);
            LogCapture.Suite.Add("child: " + line);
        }
    }

    private static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host)
            ? host
            : Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "dotnet";

    [GeneratedRegex(@"test API key:\s+(\S+)")]
    private static partial Regex KeyLine();

    [GeneratedRegex(@"operator token:\s+(\S+)")]
    private static partial Regex TokenLine();

    [GeneratedRegex(@"Demo application (\S+)")]
    private static partial Regex AppLine();
}
