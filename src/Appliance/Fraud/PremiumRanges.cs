namespace DevRift.Hsm.Appliance.Fraud;

/// <summary>
/// The high-cost number ranges shipped with the appliance (<c>premium-ranges.txt</c>, embedded in this assembly): E.164
/// prefixes of international premium-rate, shared-cost, satellite and "international networks" services and of national
/// premium-rate ranges. An application's <c>blocked_ranges</c> extend it.
/// </summary>
public static class PremiumRanges
{
    private static readonly Lazy<IReadOnlyList<string>> s_shipped = new(Load);

    /// <summary>The shipped prefixes, in file order.</summary>
    public static IReadOnlyList<string> Shipped => s_shipped.Value;

    /// <summary>The longest of <paramref name="prefixes"/> that <paramref name="e164"/> starts with, or null.</summary>
    public static string? LongestMatch(string e164, IEnumerable<string> prefixes)
    {
        ArgumentNullException.ThrowIfNull(prefixes);
        string? best = null;
        foreach (var prefix in prefixes)
        {
            if (e164.StartsWith(prefix, StringComparison.Ordinal) && prefix.Length > (best?.Length ?? 0))
            {
                best = prefix;
            }
        }

        return best;
    }

    private static List<string> Load()
    {
        var assembly = typeof(PremiumRanges).Assembly;
        var name = assembly.GetManifestResourceNames().Single(n => n.EndsWith(".Fraud.premium-ranges.txt", StringComparison.Ordinal));
        using var stream = assembly.GetManifestResourceStream(name) ?? throw new InvalidOperationException($"resource {name} is missing");
        using var reader = new StreamReader(stream);
        var prefixes = new List<string>();
        while (reader.ReadLine() is { } line)
        {
            var entry = line.Split('#', 2)[0].Trim();
            if (entry.Length > 0)
            {
                prefixes.Add(entry);
            }
        }

        return prefixes;
    }
}
