using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using DevRift.Hsm.Crypto;

namespace DevRift.Hsm.Api.Metrics;

/// <summary>
/// Collects this host's DevRift.Hsm.* instruments through a <see cref="MeterListener"/> and writes them in the
/// Prometheus text exposition format 0.0.4: counters as <c>_total</c>, histograms as cumulative <c>_bucket</c>
/// series ending in <c>le="+Inf"</c> with <c>_sum</c> and <c>_count</c>. Only meters of this host are taken (those
/// made by its <see cref="IMeterFactory"/> and the meter of its <see cref="HsmConnection"/>), so two hosts in one
/// process never mix their numbers.
/// </summary>
public sealed class PrometheusExposition : IDisposable
{
    private static readonly double[] s_defaultBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    private readonly MeterListener _listener;
    private readonly ConcurrentDictionary<Instrument, Family> _families = new();
    private readonly IMeterFactory _factory;
    private readonly HsmConnection _hsm;

    public PrometheusExposition(IMeterFactory factory, HsmConnection hsm)
    {
        _factory = factory;
        _hsm = hsm;
        _listener = new MeterListener
        {
            InstrumentPublished = (instrument, listener) =>
            {
                if (Owns(instrument.Meter) && Family.Create(instrument) is { } family)
                {
                    _families[instrument] = family;
                    listener.EnableMeasurementEvents(instrument, family);
                }
            },
            MeasurementsCompleted = (instrument, _) => _families.TryRemove(instrument, out Family? _),
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, state) => ((Family)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<int>((_, value, tags, state) => ((Family)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<double>((_, value, tags, state) => ((Family)state!).Record(value, tags));
        _listener.Start();
    }

    public void Dispose() => _listener.Dispose();

    /// <summary>Writes every family, then <paramref name="gauges"/> (values read at scrape time).</summary>
    public string Write(IEnumerable<Gauge> gauges)
    {
        var text = new StringBuilder(4096);
        foreach (var family in _families.Values.OrderBy(f => f.Name, StringComparer.Ordinal))
        {
            family.Write(text);
        }

        foreach (var gauge in gauges)
        {
            gauge.Write(text);
        }

        return text.ToString();
    }

    private bool Owns(Meter meter) =>
        meter.Name.StartsWith("DevRift.Hsm.", StringComparison.Ordinal)
        && (ReferenceEquals(meter.Scope, _factory) || ReferenceEquals(meter.Scope, _hsm));

    /// <summary>A metric name from an instrument name: dots to underscores, the unit and <c>_total</c> as suffixes.</summary>
    internal static string MetricName(string instrumentName, string? unit, bool counter)
    {
        var name = new StringBuilder(instrumentName.Length + 16);
        foreach (var c in instrumentName)
        {
            name.Append(char.IsAsciiLetterOrDigit(c) || c is '_' or ':' ? c : '_');
        }

        if (unit == "s")
        {
            name.Append("_seconds");
        }

        if (counter)
        {
            name.Append("_total");
        }

        return name.ToString();
    }

    /// <summary>A label value with backslash, double quote and line feed escaped, as the format requires.</summary>
    internal static string EscapeLabelValue(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    /// <summary>HELP text with backslash and line feed escaped.</summary>
    internal static string EscapeHelp(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    internal static string FormatNumber(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf"
        : double.IsNegativeInfinity(value) ? "-Inf"
        : double.IsNaN(value) ? "NaN"
        : value.ToString("R", CultureInfo.InvariantCulture);

    /// <summary><c>{a="x",b="y"}</c> with names sorted, or empty; <paramref name="extra"/> (e.g. <c>le</c>) goes last.</summary>
    internal static string Labels(IReadOnlyList<KeyValuePair<string, string>> labels, string? extraName = null, string? extraValue = null)
    {
        if (labels.Count == 0 && extraName is null)
        {
            return "";
        }

        var text = new StringBuilder("{");
        foreach (var (name, value) in labels)
        {
            text.Append(name).Append("=\"").Append(EscapeLabelValue(value)).Append("\",");
        }

        if (extraName is not null)
        {
            text.Append(extraName).Append("=\"").Append(EscapeLabelValue(extraValue!)).Append("\",");
        }

        text.Length--;
        return text.Append('}').ToString();
    }

    /// <summary>One sample of a gauge.</summary>
    public sealed record GaugeSample(IReadOnlyList<KeyValuePair<string, string>> Labels, double Value);

    /// <summary>A gauge whose values are read at scrape time.</summary>
    public sealed record Gauge(string Name, string Help, IReadOnlyList<GaugeSample> Samples)
    {
        internal void Write(StringBuilder text)
        {
            text.Append("# HELP ").Append(Name).Append(' ').Append(EscapeHelp(Help)).Append('\n');
            text.Append("# TYPE ").Append(Name).Append(" gauge\n");
            foreach (var sample in Samples)
            {
                text.Append(Name).Append(Labels(sample.Labels)).Append(' ').Append(FormatNumber(sample.Value)).Append('\n');
            }
        }
    }

    /// <summary>One instrument's series, keyed by their sorted label set.</summary>
    private abstract class Family(string name, string help)
    {
        public string Name { get; } = name;

        protected string Help { get; } = help;

        public static Family? Create(Instrument instrument) => instrument switch
        {
            Counter<long> or Counter<int> or Counter<double> => new CounterFamily(MetricName(instrument.Name, instrument.Unit, counter: true), instrument.Description ?? instrument.Name),
            Histogram<double> h => new HistogramFamily(MetricName(instrument.Name, instrument.Unit, counter: false), instrument.Description ?? instrument.Name,
                h.Advice?.HistogramBucketBoundaries?.ToArray() ?? s_defaultBuckets),
            _ => null,
        };

        public abstract void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags);

        public abstract void Write(StringBuilder text);

        protected static string Key(ReadOnlySpan<KeyValuePair<string, object?>> tags, out KeyValuePair<string, string>[] labels)
        {
            labels = new KeyValuePair<string, string>[tags.Length];
            for (var i = 0; i < tags.Length; i++)
            {
                labels[i] = new(tags[i].Key, Convert.ToString(tags[i].Value, CultureInfo.InvariantCulture) ?? "");
            }

            Array.Sort(labels, static (a, b) => string.CompareOrdinal(a.Key, b.Key));
            var key = new StringBuilder();
            foreach (var (n, v) in labels)
            {
                key.Append(n).Append('\u0000').Append(v).Append('\u0001');
            }

            return key.ToString();
        }
    }

    private sealed class CounterFamily(string name, string help) : Family(name, help)
    {
        private readonly ConcurrentDictionary<string, Series> _series = new(StringComparer.Ordinal);

        public override void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var key = Key(tags, out var labels);
            var series = _series.GetOrAdd(key, static (_, l) => new Series(l), labels);
            lock (series)
            {
                series.Value += value;
            }
        }

        public override void Write(StringBuilder text)
        {
            text.Append("# HELP ").Append(Name).Append(' ').Append(EscapeHelp(Help)).Append('\n');
            text.Append("# TYPE ").Append(Name).Append(" counter\n");
            foreach (var (_, series) in _series.OrderBy(s => s.Key, StringComparer.Ordinal))
            {
                double value;
                lock (series)
                {
                    value = series.Value;
                }

                text.Append(Name).Append(Labels(series.Labels)).Append(' ').Append(FormatNumber(value)).Append('\n');
            }
        }

        private sealed class Series(KeyValuePair<string, string>[] labels)
        {
            public KeyValuePair<string, string>[] Labels { get; } = labels;

            public double Value { get; set; }
        }
    }

    private sealed class HistogramFamily(string name, string help, double[] bounds) : Family(name, help)
    {
        private readonly ConcurrentDictionary<string, Series> _series = new(StringComparer.Ordinal);

        public override void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var key = Key(tags, out var labels);
            var series = _series.GetOrAdd(key, static (_, l) => new Series(l.Labels, l.Count), (Labels: labels, Count: bounds.Length + 1));

            // The first bound that holds the value (le is inclusive); the last slot is +Inf.
            var slot = Array.BinarySearch(bounds, value);
            slot = slot >= 0 ? slot : ~slot;
            lock (series)
            {
                series.Buckets[slot]++;
                series.Sum += value;
                series.Count++;
            }
        }

        public override void Write(StringBuilder text)
        {
            text.Append("# HELP ").Append(Name).Append(' ').Append(EscapeHelp(Help)).Append('\n');
            text.Append("# TYPE ").Append(Name).Append(" histogram\n");
            foreach (var (_, series) in _series.OrderBy(s => s.Key, StringComparer.Ordinal))
            {
                long[] buckets;
                double sum;
                long count;
                lock (series)
                {
                    buckets = (long[])series.Buckets.Clone();
                    sum = series.Sum;
                    count = series.Count;
                }

                long cumulative = 0;
                for (var i = 0; i < buckets.Length; i++)
                {
                    cumulative += buckets[i];
                    var le = i < bounds.Length ? FormatNumber(bounds[i]) : "+Inf";
                    text.Append(Name).Append("_bucket").Append(Labels(series.Labels, "le", le)).Append(' ')
                        .Append(cumulative.ToString(CultureInfo.InvariantCulture)).Append('\n');
                }

                text.Append(Name).Append("_sum").Append(Labels(series.Labels)).Append(' ').Append(FormatNumber(sum)).Append('\n');
                text.Append(Name).Append("_count").Append(Labels(series.Labels)).Append(' ').Append(count.ToString(CultureInfo.InvariantCulture)).Append('\n');
            }
        }

        private sealed class Series(KeyValuePair<string, string>[] labels, int slots)
        {
            public KeyValuePair<string, string>[] Labels { get; } = labels;

            public long[] Buckets { get; } = new long[slots];

            public double Sum { get; set; }

            public long Count { get; set; }
        }
    }
}
