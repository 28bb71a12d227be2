using System.Diagnostics;
using DevRift.Hsm.Crypto;

namespace DevRift.Hsm.Bench;

/// <summary>
/// A real SoftHSM2 token made by the benchmark process itself: a temporary directory with its own
/// <c>softhsm2.conf</c> and <c>tokens/</c>, one token initialised with <c>softhsm2-util</c>, a logged-in
/// <see cref="HsmConnection"/> with the five keys of the hierarchy. Dispose closes the connection and deletes
/// the directory.
/// </summary>
/// <remarks>
/// SoftHSM2 reads <c>SOFTHSM2_CONF</c> and scans its token directory once, at <c>C_Initialize</c>, and the
/// module is initialised once per process. So one process gets one token: BenchmarkDotNet's default
/// (out-of-process) toolchain runs every benchmark case in a fresh process, where <c>[GlobalSetup]</c> makes the
/// token and <c>[GlobalCleanup]</c> removes it. The in-process toolchains are refused with a clear message.
/// </remarks>
public sealed class BenchToken : IDisposable
{
    /// <summary>Debian's SoftHSM2 module.</summary>
    public const string ModulePath = BenchTokenDirectory.ModulePath;

    private readonly BenchTokenDirectory _directory;
    private bool _disposed;

    private BenchToken(BenchTokenDirectory directory, HsmConnection connection)
    {
        _directory = directory;
        Connection = connection;
        Vault = new SeedVault(connection);
    }

    /// <summary>The logged-in connection.</summary>
    public HsmConnection Connection { get; }

    /// <summary>Seed operations on <see cref="Connection"/>.</summary>
    public SeedVault Vault { get; }

    /// <summary>Makes the directory and the token, connects, creates the keys.</summary>
    /// <param name="configure">Adjusts the options (e.g. <see cref="HsmOptions.SeedHandleCacheSize"/>) before connecting.</param>
    public static BenchToken Create(Action<HsmOptions>? configure = null)
    {
        var directory = BenchTokenDirectory.Create();
        try
        {
            var options = directory.Options();
            configure?.Invoke(options);

            var connection = HsmConnection.Open(options);
            try
            {
                connection.InitializeKeys();
                return new BenchToken(directory, connection);
            }
            catch
            {
                connection.Dispose();
                throw;
            }
        }
        catch
        {
            directory.Dispose();
            throw;
        }
    }

    /// <summary>Closes the connection and deletes the token directory.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Connection.Dispose();
        _directory.Dispose();
    }
}

/// <summary>
/// The token part of <see cref="BenchToken"/> without a connection: a temporary directory with its own
/// <c>softhsm2.conf</c> and <c>tokens/</c> and one token initialised with <c>softhsm2-util</c>, for benchmarks that
/// let the code under test open the connection itself (e.g. the appliance's service collection). Other files the
/// benchmark needs (a SQLite database) can go in <see cref="Root"/>; Dispose deletes it all.
/// </summary>
public sealed class BenchTokenDirectory : IDisposable
{
    /// <summary>Debian's SoftHSM2 module.</summary>
    public const string ModulePath = "/usr/lib/softhsm/libsofthsm2.so";

    /// <summary>The token's label.</summary>
    public const string Label = "devrift-bench";

    /// <summary>The token's user PIN.</summary>
    public const string Pin = "1234";

    private const string SoPin = "5678";

    private static int s_created;

    private bool _disposed;

    private BenchTokenDirectory(string root, string softHsmConfig)
    {
        Root = root;
        SoftHsmConfig = softHsmConfig;
    }

    /// <summary>The temporary directory (deleted by Dispose).</summary>
    public string Root { get; }

    /// <summary>Path of the <c>softhsm2.conf</c> naming this token directory.</summary>
    public string SoftHsmConfig { get; }

    /// <summary>Makes the directory and initialises the token; once per process (see <see cref="BenchToken"/>).</summary>
    public static BenchTokenDirectory Create()
    {
        if (Interlocked.Exchange(ref s_created, 1) != 0)
        {
            throw new InvalidOperationException(
                "SoftHSM2 sees only the tokens present when it is initialised, once per process: run the HSM benchmarks "
                + "with an out-of-process toolchain (the default), not --inProcess.");
        }

        var root = Directory.CreateTempSubdirectory($"devrift-bench-{Environment.ProcessId}-").FullName;
        try
        {
            var tokens = Path.Combine(root, "tokens");
            Directory.CreateDirectory(tokens);
            var conf = Path.Combine(root, "softhsm2.conf");
            File.WriteAllText(conf,
                $"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n");

            Run(conf, "softhsm2-util", "--init-token", "--free", "--label", Label, "--pin", Pin, "--so-pin", SoPin);
            return new BenchTokenDirectory(root, conf);
        }
        catch
        {
            TryDelete(root);
            throw;
        }
    }

    /// <summary>Options that reach this token (a new instance per call).</summary>
    public HsmOptions Options() => new()
    {
        ModulePath = ModulePath,
        SoftHsmConfig = SoftHsmConfig,
        TokenLabel = Label,
        Pin = Pin,
    };

    /// <summary>Deletes the directory (close every connection to the token first).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        TryDelete(Root);
    }

    private static void Run(string conf, string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["SOFTHSM2_CONF"] = conf;
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        _ = stdout.GetAwaiter().GetResult();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {args[0]} failed ({p.ExitCode}): {stderr.Trim()}");
        }
    }

    private static void TryDelete(string root)
    {
        try
        {
            Directory.Delete(root, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: a temp directory left behind is harmless.
        }
        catch (UnauthorizedAccessException)
        {
            // Same.
        }
    }
}
