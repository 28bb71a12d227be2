using System.Globalization;
using System.Text;

namespace DevRift.Hsm.Api.Tests.Metrics;

/// <summary>One sample line of the exposition.</summary>
public sealed record PromSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

/// <summary>
/// A strict reader of the Prometheus text format 0.0.4, independent of the writer: every family must be announced by
/// HELP and TYPE before its samples, every sample line must parse (label values unescaped), names must be valid.
/// </summary>
public sealed class PrometheusText
{
    private PrometheusText(IReadOnlyList<PromSample> samples, IReadOnlyDictionary<string, string> types)
    {
        Samples = samples;
        Types = types;
    }

    public IReadOnlyList<PromSample> Samples { get; }

    /// <summary>Family name to TYPE.</summary>
    public IReadOnlyDictionary<string, string> Types { get; }

    public static PrometheusText Parse(string text)
    {
        var samples = new List<PromSample>();
        var types = new Dictionary<string, string>(StringComparer.Ordinal);
        var helps = new HashSet<string>(StringComparer.Ordinal);
        Assert.EndsWith("\n", text, StringComparison.Ordinal);
        foreach (var line in text.Split('\n').SkipLast(1))
        {
            Assert.False(string.IsNullOrWhiteSpace(line), "blank line in the exposition");
            if (line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                Assert.True(helps.Add(line.Split(' ')[2]), $"second HELP: {line}");
                continue;
            }

            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var parts = line.Split(' ');
                Assert.Equal(4, parts.Length);
                Assert.Contains(parts[3], (string[])["counter", "gauge", "histogram", "summary", "untyped"]);
                Assert.Contains(parts[2], helps);
                types.Add(parts[2], parts[3]);
                continue;
            }

            Assert.False(line.StartsWith('#'), $"unexpected comment: {line}");
            var sample = ParseSample(line);
            var family = types.Keys.FirstOrDefault(f => sample.Name == f
                || (types[f] == "histogram" && sample.Name is var n && (n == f + "_bucket" || n == f + "_sum" || n == f + "_count")));
            Assert.True(family is not null, $"sample before its TYPE: {line}");
            samples.Add(sample);
        }

        return new PrometheusText(samples, types);
    }

    /// <summary>The value of the series with exactly these labels, or 0 when it does not exist (yet).</summary>
    public double Value(string name, params (string Name, string Value)[] labels) =>
        Samples.SingleOrDefault(s => s.Name == name && s.Labels.Count == labels.Length && labels.All(l => s.Labels.TryGetValue(l.Name, out var v) && v == l.Value))?.Value ?? 0;

    private static PromSample ParseSample(string line)
    {
        var i = 0;
        while (i < line.Length && (char.IsAsciiLetterOrDigit(line[i]) || line[i] is '_' or ':'))
        {
            i++;
        }

        var name = line[..i];
        Assert.True(name.Length > 0 && !char.IsAsciiDigit(name[0]), $"bad metric name: {line}");
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (i < line.Length && line[i] == '{')
        {
            i++;
            while (line[i] != '}')
            {
                var start = i;
                while (char.IsAsciiLetterOrDigit(line[i]) || line[i] == '_')
                {
                    i++;
                }

                var label = line[start..i];
                Assert.True(label.Length > 0 && line[i] == '=' && line[i + 1] == '"', $"bad label at {start}: {line}");
                i += 2;
                var value = new StringBuilder();
                while (line[i] != '"')
                {
                    if (line[i] == '\\')
                    {
                        i++;
                        value.Append(line[i] switch
                        {
                            '\\' => '\\',
                            '"' => '"',
                            'n' => '\n',
                            _ => throw new FormatException($"bad escape \\{line[i]}: {line}"),
                        });
                    }
                    else
                    {
                        value.Append(line[i]);
                    }

                    i++;
                }

                i++;
                Assert.True(labels.TryAdd(label, value.ToString()), $"label {label} twice: {line}");
                if (line[i] == ',')
                {
                    i++;
                }
            }

            i++;
        }

        Assert.Equal(' ', line[i]);
        var text = line[(i + 1)..];
        var number = text switch
        {
            "+Inf" => double.PositiveInfinity,
            "-Inf" => double.NegativeInfinity,
            "NaN" => double.NaN,
            _ => double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture),
        };
        return new PromSample(name, labels, number);
    }
}
