using System.Diagnostics;
using DevRift.Hsm.Crypto;

namespace DevRift.Hsm.Testing;

/// <summary>
/// Real SoftHSM2 tokens for tests: one token directory per test process (SOFTHSM2_CONF is process-wide),
/// one freshly initialised token per caller, found by its label.
/// </summary>
public static class SoftHsmTokens
{
    public const string ModulePath = "/usr/lib/softhsm/libsofthsm2.so";
    public const string Pin = "1234";
    public const string SoPin = "5678";

    private static readonly Lock s_lock = new();
    private static string? s_root;

    /// <summary>The process's SoftHSM2 root: <c>softhsm2.conf</c> and <c>tokens/</c>.</summary>
    public static string Root
    {
        get
        {
            lock (s_lock)
            {
                if (s_root is null)
                {
                    var root = Path.Combine(Path.GetTempPath(), $"devrift-tests-{Environment.ProcessId}-{Guid.NewGuid():N}"[..40]);
                    Directory.CreateDirectory(Path.Combine(root, "tokens"));
                    File.WriteAllText(Path.Combine(root, "softhsm2.conf"),
                        $"directories.tokendir = {Path.Combine(root, "tokens")}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n");
                    s_root = root;
                }

                return s_root;
            }
        }
    }

    public static string ConfigPath => Path.Combine(Root, "softhsm2.conf");

    // SoftHSM2 sees only the tokens that exist at C_Initialize, and the module is initialised once per process:
    // so a batch of fresh tokens is made before the first connection, and handed out one per caller.
    private const int PoolSize = 256;
    private static int s_next = -1;
    private static bool s_poolMade;

    /// <summary>A fresh, never-used token; returns options that reach it.</summary>
    public static HsmOptions CreateToken()
    {
        lock (s_lock)
        {
            if (!s_poolMade)
            {
                _ = Root;
                for (var i = 0; i < PoolSize; i++)
                {
                    Run("softhsm2-util", "--init-token", "--free", "--label", PoolLabel(i), "--pin", Pin, "--so-pin", SoPin);
                }

                s_poolMade = true;
            }
        }

        var n = Interlocked.Increment(ref s_next);
        return n < PoolSize
            ? Options(PoolLabel(n))
            : throw new InvalidOperationException($"more than {PoolSize} test tokens requested in one process; raise PoolSize");
    }

    private static string PoolLabel(int i) => $"{Environment.ProcessId % 100000}-pool-{i:D3}";

    public static HsmOptions Options(string label) => new()
    {
        ModulePath = ModulePath,
        TokenLabel = label,
        Pin = Pin,
        SoftHsmConfig = ConfigPath,
        ReconnectInterval = TimeSpan.FromMilliseconds(200),
    };

    /// <summary>A connected token with the five keys of the hierarchy.</summary>
    public static HsmConnection CreateInitialisedToken()
    {
        var hsm = HsmConnection.Open(CreateToken());
        hsm.InitializeKeys();
        return hsm;
    }

    /// <summary>The directory holding one token's files (SoftHSM2 keeps one folder per token).</summary>
    public static string TokenDirectory(string label)
    {
        foreach (var dir in Directory.GetDirectories(Path.Combine(Root, "tokens")))
        {
            var tokenObject = Path.Combine(dir, "token.object");
            if (File.Exists(tokenObject) && File.ReadAllBytes(tokenObject).AsSpan().IndexOf(System.Text.Encoding.ASCII.GetBytes(label.PadRight(32))) >= 0)
            {
                return dir;
            }
        }

        throw new InvalidOperationException($"no token directory for label {label}");
    }

    /// <summary>
    /// A replica of a token under another label: a copy of its directory (the same key objects, so the same keys) with
    /// the label and serial number rewritten in place. SoftHSM2 sees it after its next <c>C_Initialize</c>.
    /// </summary>
    public static void CloneToken(string label, string replicaLabel)
    {
        if (replicaLabel.Length > 32)
        {
            throw new ArgumentException("a token label has at most 32 characters", nameof(replicaLabel));
        }

        var source = TokenDirectory(label);
        var name = Path.GetFileName(source);
        var serial = name.Replace("-", "", StringComparison.Ordinal)[^16..];
        var replicaSerial = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));
        // SoftHSM2 names a token's directory by a UUID ending in its serial number
        var target = Path.Combine(Path.GetDirectoryName(source)!, name[..^17] + replicaSerial[..4] + "-" + replicaSerial[4..]);
        Directory.CreateDirectory(target);
        foreach (var file in Directory.GetFiles(source))
        {
            File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        }

        var tokenObject = Path.Combine(target, "token.object");
        var bytes = File.ReadAllBytes(tokenObject);
        Replace(bytes, label.PadRight(32), replicaLabel.PadRight(32));
        Replace(bytes, serial, replicaSerial);
        File.WriteAllBytes(tokenObject, bytes);
    }

    private static void Replace(byte[] bytes, string from, string to)
    {
        var at = bytes.AsSpan().IndexOf(System.Text.Encoding.ASCII.GetBytes(from));
        if (at < 0)
        {
            throw new InvalidOperationException($"'{from.Trim()}' not found in the token object");
        }

        System.Text.Encoding.ASCII.GetBytes(to).CopyTo(bytes, at);
    }

    public static string Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["SOFTHSM2_CONF"] = ConfigPath;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({p.ExitCode}): {stderr}");
        }

        return stdout.Result;
    }
}
