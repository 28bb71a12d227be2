using System.Diagnostics;
using System.Runtime.InteropServices;
using DevRift.Hsm.Crypto;

namespace DevRift.Hsm.Testing;

/// <summary>
/// The PKCS#11 implementations other than SoftHSM2 that the tests run on, found by configuration (the environment
/// <c>test.sh</c> sets up), never by a hard-coded path:
/// <list type="bullet">
/// <item>openCryptoki's soft token behind pkcsslotd: <c>DEVRIFT_TEST_OPENCRYPTOKI_A</c> / <c>_B</c> (one token per test
/// assembly, as <c>module=…;token=…;pin=…</c>), made by <c>tests/hsm/opencryptoki-tokens.sh</c>;</item>
/// <item>a SoftHSM2 token forwarded by <c>p11-kit server</c> (the network-HSM stand-in): the client module is
/// <c>DEVRIFT_TEST_P11KIT_CLIENT</c>; the server is started by <see cref="P11KitServer"/>.</item>
/// </list>
/// </summary>
public static partial class HsmModules
{
    /// <summary>Options for one of the openCryptoki test tokens, with the schemes that module supports.</summary>
    public static HsmOptions OpenCryptoki(char token)
    {
        var name = $"DEVRIFT_TEST_OPENCRYPTOKI_{token}";
        var settings = Settings(name);
        return new HsmOptions
        {
            ModulePath = settings["module"],
            TokenLabel = settings["token"],
            Pin = settings["pin"],
            WrapMechanism = "CKM_AES_CBC_PAD",
            SealMechanism = "CKM_AES_CBC_PAD",
            ReconnectInterval = TimeSpan.FromMilliseconds(200),
        };
    }

    /// <summary>The p11-kit RPC client module (<c>p11-kit-client.so</c>).</summary>
    public static string P11KitClient => Environment.GetEnvironmentVariable("DEVRIFT_TEST_P11KIT_CLIENT") is { Length: > 0 } path
        ? path
        : throw new InvalidOperationException("DEVRIFT_TEST_P11KIT_CLIENT is not set: run the tests with ./test.sh, which installs p11-kit and sets it");

    private static Dictionary<string, string> Settings(string variable)
    {
        var value = Environment.GetEnvironmentVariable(variable);
        if (string.IsNullOrEmpty(value))
        {
            throw new InvalidOperationException($"{variable} is not set: run the tests with ./test.sh, which starts pkcsslotd and makes the token");
        }

        return value.Split(';', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('=', 2))
            .ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);
    }

    /// <summary>Sets a variable in the C environment (what a module reads with getenv), not only .NET's view of it.</summary>
    public static void SetNativeEnvironment(string name, string value) => _ = setenv(name, value, 1);

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int setenv(string name, string value, int overwrite);
}

/// <summary>
/// A <c>p11-kit server</c> forwarding a fresh SoftHSM2 test token over a Unix socket of this process, and the options
/// that reach it through the client module (OAEP seed wrap and AES-CTR sealing: what the forwarding carries). The
/// client module reads <c>P11_KIT_SERVER_ADDRESS</c> at <c>C_Initialize</c>; it is set here, once per process. The
/// server can be stopped, paused and started again to play a network HSM that fails.
/// </summary>
public sealed class P11KitServer : IDisposable
{
    private static readonly string s_socket = Path.Combine(Path.GetTempPath(), $"devrift-p11kit-{Environment.ProcessId}.sock");
    private static readonly Lock s_lock = new();
    private static P11KitServer? s_current;
    private readonly string _token;
    private Process? _process;

    private P11KitServer(string token)
    {
        _token = token;
        Start();
    }

    /// <summary>The process's server (one socket per process); started on first use.</summary>
    public static P11KitServer Shared
    {
        get
        {
            lock (s_lock)
            {
                if (s_current is null)
                {
                    HsmModules.SetNativeEnvironment("P11_KIT_SERVER_ADDRESS", "unix:path=" + s_socket);
                    s_current = new P11KitServer(SoftHsmTokens.CreateToken().TokenLabel);
                }

                return s_current;
            }
        }
    }

    public string SocketPath => s_socket;

    /// <summary>Options for the forwarded token.</summary>
    public HsmOptions Options(TimeSpan? operationTimeout = null) => new()
    {
        ModulePath = HsmModules.P11KitClient,
        TokenLabel = _token,
        Pin = SoftHsmTokens.Pin,
        WrapMechanism = "CKM_RSA_PKCS_OAEP",
        SealMechanism = "CKM_AES_ECB",
        ReconnectInterval = TimeSpan.FromMilliseconds(200),
        OperationTimeout = operationTimeout ?? TimeSpan.FromSeconds(5),
    };

    /// <summary>Process ids of the server and of the children it serves connections with.</summary>
    public IReadOnlyList<int> ProcessIds()
    {
        var ids = new List<int>();
        if (_process is { HasExited: false } p)
        {
            ids.Add(p.Id);
            foreach (var dir in Directory.GetDirectories("/proc"))
            {
                if (int.TryParse(Path.GetFileName(dir), out var pid)
                    && File.Exists(Path.Combine(dir, "stat"))
                    && Safe(() => File.ReadAllText(Path.Combine(dir, "stat")).Split(' ')[3]) == p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture))
                {
                    ids.Add(pid);
                }
            }
        }

        return ids;
    }

    public void Start()
    {
        File.Delete(s_socket);
        var psi = new ProcessStartInfo("p11-kit") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "server", "-f", "-n", s_socket, "--provider", SoftHsmTokens.ModulePath, $"pkcs11:token={_token}" })
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["SOFTHSM2_CONF"] = SoftHsmTokens.ConfigPath;
        _process = Process.Start(psi)!;
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var until = DateTime.UtcNow.AddSeconds(10);
        while (!File.Exists(s_socket))
        {
            if (DateTime.UtcNow > until || _process.HasExited)
            {
                throw new InvalidOperationException("p11-kit server did not create its socket");
            }

            Thread.Sleep(20);
        }
    }

    /// <summary>Kills the server and its connection children (a network HSM that went away).</summary>
    public void Kill()
    {
        foreach (var pid in ProcessIds().Reverse())
        {
            Signal(pid, "KILL");
        }

        _process?.WaitForExit(5000);
        _process?.Dispose();
        _process = null;
        File.Delete(s_socket);
    }

    /// <summary>SIGSTOP or SIGCONT to the server and its children (an HSM that stops answering, then resumes).</summary>
    public void Pause(bool paused)
    {
        foreach (var pid in ProcessIds())
        {
            Signal(pid, paused ? "STOP" : "CONT");
        }
    }

    public void Dispose() => Kill();

    private static void Signal(int pid, string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    private static string? Safe(Func<string> read)
    {
        try
        {
            return read();
        }
        catch (IOException)
        {
            return null;
        }
    }
}
