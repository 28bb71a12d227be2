using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Text;

namespace DevRift.Hsm.Crypto;

/// <summary>
/// Names of the HSM layer's instruments (System.Diagnostics.Metrics). Each <see cref="HsmConnection"/> owns its own
/// meter, whose <see cref="Meter.Scope"/> is that connection, so that an exporter can take exactly one connection's
/// measurements even when several live in one process.
/// </summary>
public static class HsmMetrics
{
    /// <summary>The meter of the PKCS#11 layer.</summary>
    public const string MeterName = "DevRift.Hsm.Crypto";

    /// <summary>Histogram, seconds, tag <c>operation</c>: how long each completed HSM operation took, session lease included.</summary>
    public const string OperationDuration = "devrift.hsm.operation.duration";

    /// <summary>Bucket boundaries (seconds) suited to PKCS#11 calls, from tens of microseconds to seconds.</summary>
    public static IReadOnlyList<double> DurationBuckets { get; } =
        [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
}

/// <summary>Records operation latencies for one connection. Operation names are code identifiers, never data.</summary>
internal sealed class HsmOperationMetrics : IDisposable
{
    private static readonly ConcurrentDictionary<string, string> s_names = new(StringComparer.Ordinal);
    private readonly Meter _meter;
    private readonly Histogram<double> _duration;

    public HsmOperationMetrics(object scope)
    {
        _meter = new Meter(new MeterOptions(HsmMetrics.MeterName) { Scope = scope });
        _duration = _meter.CreateHistogram(HsmMetrics.OperationDuration, unit: "s",
            description: "Duration of completed HSM operations, by operation.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = HsmMetrics.DurationBuckets });
    }

    public void Completed(string operation, TimeSpan elapsed)
    {
        if (_duration.Enabled)
        {
            _duration.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("operation", s_names.GetOrAdd(operation, SnakeCase)));
        }
    }

    public void Dispose() => _meter.Dispose();

    /// <summary><c>ComputeHmac</c> becomes <c>compute_hmac</c>.</summary>
    private static string SnakeCase(string name)
    {
        var builder = new StringBuilder(name.Length + 4);
        for (var i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0)
            {
                builder.Append('_');
            }

            builder.Append(char.ToLowerInvariant(name[i]));
        }

        return builder.Length == 0 ? "unknown" : builder.ToString();
    }
}
