using System.Globalization;

namespace DevRift.Hsm.Bench.Driver;

/// <summary>A failure the driver reports in one line and exits 2.</summary>
internal sealed class DriverException(string message) : Exception(message);

/// <summary><c>command --name value --flag …</c>, nothing more.</summary>
internal sealed class Options
{
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);

    public static (string Command, Options Options) Parse(string[] args)
    {
        var options = new Options();
        for (var i = 1; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal))
            {
                throw new DriverException($"unexpected argument '{args[i]}'");
            }

            var name = args[i][2..];
            var hasValue = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal);
            options._values[name] = hasValue ? args[++i] : "true";
        }

        return (args.Length > 0 ? args[0] : "", options);
    }

    public string Required(string name) =>
        _values.TryGetValue(name, out var v) ? v : throw new DriverException($"--{name} is required");

    public string Get(string name, string fallback) => _values.GetValueOrDefault(name, fallback);

    public bool Flag(string name) => _values.ContainsKey(name);

    public long Long(string name, long? fallback = null)
    {
        var text = _values.GetValueOrDefault(name) ?? fallback?.ToString(CultureInfo.InvariantCulture)
            ?? throw new DriverException($"--{name} is required");
        return long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)
            ? v
            : throw new DriverException($"--{name} must be an integer, got '{text}'");
    }

    public int Int(string name, int? fallback = null) => checked((int)Long(name, fallback));

    /// <summary>The API key, read from a file so that it never appears in a process listing.</summary>
    public string Key() => File.ReadAllText(Required("key-file")).Trim();
}
