using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using DevRift.Hsm.Testing;

namespace DevRift.Hsm.Api.Tests.Hardening;

/// <summary>An initialised site (fresh token, SQLite file) that the executable is run against.</summary>
public sealed class InitialisedSite : IAsyncLifetime
{
    public DevRift.Hsm.Crypto.HsmOptions Hsm { get; } = SoftHsmTokens.CreateToken();

    public string Directory { get; } = Path.Combine(Path.GetTempPath(), "devrift-cli-tests", Guid.NewGuid().ToString("N"));

    public string Database => Path.Combine(Directory, "devrift.db");

    /// <summary>The token's settings, without a database (each test adds its own storage).</summary>
    public string[] HsmSettings =>
    [
        $"--Hsm:ModulePath={Hsm.ModulePath}", $"--Hsm:TokenLabel={Hsm.TokenLabel}", $"--Hsm:Pin={Hsm.Pin}", $"--Hsm:SoftHsmConfig={Hsm.SoftHsmConfig}",
        "--Logging:LogLevel:Default=Warning",
    ];

    public string[] Settings => [$"--Data:Directory={Directory}", $"--Storage:ConnectionString=Data Source={Database}", .. HsmSettings];

    public async Task InitializeAsync()
    {
        System.IO.Directory.CreateDirectory(Directory);
        var init = await Executable.RunAsync(["init", .. Settings, "--Init:Demo=false"]);
        Assert.True(init.Exit == 0, init.Stderr);
    }

    public Task DisposeAsync()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }

        return Task.CompletedTask;
    }
}

/// <summary>Runs the built executable (<c>dotnet DevRift.Hsm.Api.dll …</c>) as run.sh does, with a deadline.</summary>
public static class Executable
{
    public sealed record Result(int Exit, string Stdout, string Stderr)
    {
        public string[] StderrLines => Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    public static async Task<Result> RunAsync(IEnumerable<string> args, IDictionary<string, string>? environment = null, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "DevRift.Hsm.Api.dll"));
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["SOFTHSM2_CONF"] = SoftHsmTokens.ConfigPath;
        psi.Environment["DOTNET_ENVIRONMENT"] = "Production";
        psi.Environment.Remove("ASPNETCORE_URLS");
        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }

        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(timeout ?? TimeSpan.FromSeconds(60));
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"still running (it started instead of exiting?): {await stdout}");
        }

        return new Result(process.ExitCode, await stdout, (await stderr).Trim());
    }
}

/// <summary>
/// The command line as a newcomer meets it: help and version print and exit 0 without starting anything, usage errors
/// name what is missing, unknown or mistyped settings and every start-up failure are one line on standard error with
/// exit code 2, and serve refuses a database that init never set up.
/// </summary>
public sealed class CommandLineTests(InitialisedSite site) : IClassFixture<InitialisedSite>
{
    [Theory]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("help")]
    [InlineData("serve --help")]
    public async Task Help_prints_the_commands_and_exits_0_without_starting(string words)
    {
        // Port 1 is never bindable here: a server that started would fail instead of exiting 0
        var result = await Executable.RunAsync([.. words.Split(' '), "--urls=http://127.0.0.1:1"], timeout: TimeSpan.FromSeconds(30));
        Assert.True(result.Exit == 0, result.Stderr);
        Assert.Contains("Usage:", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("serve", result.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("listening", result.Stdout, StringComparison.OrdinalIgnoreCase);
        Assert.Equal("", result.Stderr);
    }

    [Fact]
    public async Task Version_prints_the_version_and_exits_0()
    {
        var result = await Executable.RunAsync(["--version"]);
        Assert.Equal(0, result.Exit);
        Assert.Matches(@"^\d+\.\d+\.\d+", result.Stdout.Trim());
    }

    [Fact]
    public async Task Help_for_one_command_shows_its_arguments()
    {
        var result = await Executable.RunAsync(["help", "api-keys", "create"]);
        Assert.Equal(0, result.Exit);
        Assert.Contains("api-keys create <APP> <MODE>", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("test or live", result.Stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("api-keys create", "usage: api-keys create APP MODE [LABEL]; APP is missing; MODE is missing")]
    [InlineData("applications create", "usage: applications create NAME [PLAN]; NAME is missing")]
    [InlineData("settings set app_x", "usage: settings set APP NAME=VALUE …; NAME=VALUE is missing")]
    [InlineData("hsm retire seal", "usage: hsm retire PURPOSE VERSION; VERSION is missing")]
    [InlineData("hsm", "usage: hsm status | hsm rotate PURPOSE | hsm retire PURPOSE VERSION; name one of: status, rotate, retire")]
    [InlineData("frobnicate", "Unrecognized command or argument 'frobnicate'")]
    public async Task A_usage_error_is_one_line_naming_what_is_missing(string words, string expected)
    {
        var result = await Executable.RunAsync([.. words.Split(' '), .. site.Settings]);
        Assert.Equal(1, result.Exit);
        var line = Assert.Single(result.StderrLines);
        Assert.StartsWith("devrift: invalid_request: ", line, StringComparison.Ordinal);
        Assert.Contains(expected, line, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--Demo:Enable=false", "unknown setting 'Demo:Enable' (from the command line); the closest known setting is 'Demo:Enabled'")]
    [InlineData("--Hsm:SesionPoolSize=16", "unknown setting 'Hsm:SesionPoolSize' (from the command line); the closest known setting is 'Hsm:SessionPoolSize'")]
    [InlineData("--Delivery:Smtp:Hots=smtp.example.com", "the closest known setting is 'Delivery:Smtp:Host'")]
    [InlineData("--port=9000", "unknown setting 'port'")]
    [InlineData("--Demo:Enabled=flase", "Demo:Enabled is not a valid Boolean")]
    [InlineData("--Hsm:SessionPoolSize=lots", "Hsm:SessionPoolSize is not a valid whole number")]
    [InlineData("--Init:Demo=maybe", "Init:Demo is not a valid Boolean")]
    public async Task An_unknown_or_mistyped_setting_stops_serve_and_init_with_one_line(string setting, string expected)
    {
        foreach (var command in (string[])["serve", "init"])
        {
            var result = await Executable.RunAsync([command, .. site.Settings, "--urls=http://127.0.0.1:0", setting]);
            Assert.True(result.Exit == 2, $"{command}: exit {result.Exit}: {result.Stdout}{result.Stderr}");
            var line = Assert.Single(result.StderrLines);
            Assert.StartsWith("devrift: invalid configuration: ", line, StringComparison.Ordinal);
            Assert.Contains(expected, line, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_misspelled_setting_in_the_environment_stops_start_up_and_host_variables_do_not()
    {
        var result = await Executable.RunAsync(["serve", .. site.Settings, "--urls=http://127.0.0.1:0"], new Dictionary<string, string>
        {
            ["Delivery__Smtp__Hots"] = "smtp.example.com",
            ["ASPNETCORE_SHUTDOWNTIMEOUTSECONDS"] = "5",
            ["DOTNET_gcServer"] = "0",
            ["SOME_OTHER__TOOL"] = "x",
        });
        Assert.Equal(2, result.Exit);
        var line = Assert.Single(result.StderrLines);
        Assert.Equal("devrift: invalid configuration: unknown setting 'Delivery:Smtp:Hots' (from the environment); the closest known setting is 'Delivery:Smtp:Host'", line);
    }

    [Fact]
    public async Task Serve_refuses_a_database_that_was_never_initialised_and_creates_nothing()
    {
        var typo = Path.Combine(site.Directory, "typo", "devrift.db");
        var result = await Executable.RunAsync(["serve", .. site.HsmSettings, $"--Data:Directory={site.Directory}", $"--Storage:ConnectionString=Data Source={typo}", "--urls=http://127.0.0.1:0"]);
        Assert.Equal(2, result.Exit);
        var line = Assert.Single(result.StderrLines);
        Assert.Equal($"devrift: the database '{typo}' does not exist: run 'init' first, or correct Data:Directory or Storage:ConnectionString", line);
        Assert.False(File.Exists(typo));
    }

    [Fact]
    public async Task Init_on_a_token_that_has_its_keys_refuses_a_new_database_unless_asked()
    {
        // Given the site's token, initialised with its own database, and a mistyped path to another
        var typo = Path.Combine(site.Directory, "tpyo", "devrift.db");
        string[] settings = ["init", .. site.HsmSettings, $"--Data:Directory={site.Directory}", $"--Storage:ConnectionString=Data Source={typo}"];

        // When init runs against the new path, then it refuses in one line, and no appliance appears there
        var refused = await Executable.RunAsync(settings);
        Assert.Equal(2, refused.Exit);
        Assert.Equal($"devrift: token '{site.Hsm.TokenLabel}' already holds this appliance's keys but the database '{typo}' was never initialised: correct Data:Directory or Storage:ConnectionString, or pass --Init:NewDatabase=true to start an empty appliance on these keys",
            Assert.Single(refused.StderrLines));
        Assert.DoesNotContain("operator token", refused.Stdout, StringComparison.Ordinal);
        Assert.False(File.Exists(typo) && new FileInfo(typo).Length > 0, "a database was set up at the mistyped path");

        // And with --Init:NewDatabase=true it sets up the new database on the same keys
        var asked = await Executable.RunAsync([.. settings, "--Init:NewDatabase=true", "--Init:Demo=false"]);
        Assert.True(asked.Exit == 0, asked.Stderr);
        Assert.Contains("hsm: the token already has its keys", asked.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_refuses_an_empty_database_file()
    {
        var empty = Path.Combine(site.Directory, "empty.db");
        await File.WriteAllBytesAsync(empty, []);
        var result = await Executable.RunAsync(["serve", .. site.HsmSettings, $"--Storage:ConnectionString=Data Source={empty}", "--urls=http://127.0.0.1:0"]);
        Assert.Equal(2, result.Exit);
        Assert.Equal("devrift: the database has never been initialised: run 'init' first, or correct Storage:ConnectionString", Assert.Single(result.StderrLines));
    }

    [Fact]
    public async Task A_port_in_use_is_one_line_and_exit_2()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var result = await Executable.RunAsync(["serve", .. site.Settings, $"--urls=http://127.0.0.1:{port}"]);
        Assert.Equal(2, result.Exit);
        Assert.Equal($"devrift: cannot listen on http://127.0.0.1:{port}: the port is already in use by another process", Assert.Single(result.StderrLines));
        Assert.DoesNotContain("   at ", result.Stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Data Source={db};Foo=1", "devrift: Storage:ConnectionString cannot be read: Connection string keyword 'foo' is not supported")]
    [InlineData("Host=127.0.0.1;Usernme=devrift", "devrift: Storage:ConnectionString cannot be read: Couldn't set usernme")]
    [InlineData("Host=127.0.0.1;Port=1;Username=x;Password=never-shown;Database=x;Timeout=2", "the database cannot be reached")]
    [InlineData("Data Source={db};Mode=ReadOnly", "attempt to write a readonly database")]
    public async Task A_bad_or_unusable_database_is_one_line_and_exit_2(string connectionString, string expected)
    {
        var cs = connectionString.Replace("{db}", site.Database, StringComparison.Ordinal);
        // init too, except on a read-only file, which it only reads when the schema is current
        string[] commands = cs.Contains("ReadOnly", StringComparison.Ordinal) ? ["serve", "applications list"] : ["serve", "init", "applications list"];
        foreach (var command in commands)
        {
            var result = await Executable.RunAsync([.. command.Split(' '), .. site.HsmSettings, $"--Storage:ConnectionString={cs}", "--urls=http://127.0.0.1:0"]);
            Assert.True(result.Exit == 2, $"{command}: exit {result.Exit}: {result.Stdout}{result.Stderr}");
            var line = Assert.Single(result.StderrLines);
            Assert.Contains(expected, line, StringComparison.Ordinal);
            Assert.DoesNotContain("never-shown", line, StringComparison.Ordinal);
        }
    }
}
