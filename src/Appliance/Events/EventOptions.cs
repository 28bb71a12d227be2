using Microsoft.Extensions.Options;

namespace DevRift.Hsm.Appliance.Events;

/// <summary>
/// How the event dispatcher delivers (section <c>Events</c>). An event is retried with exponential backoff and jitter
/// on any answer other than 2xx, a timeout or a refused connection, until <see cref="RetryHorizon"/> after it was
/// created; then it is marked <c>failed</c> and not sent again.
/// </summary>
public sealed class EventOptions
{
    public const string Section = "Events";

    /// <summary>How long an undelivered event is retried before it is given up [3 days].</summary>
    public TimeSpan RetryHorizon { get; set; } = TimeSpan.FromDays(3);

    /// <summary>Delay before the second attempt; doubled each time up to <see cref="RetryMaxDelay"/> [2 s].</summary>
    public TimeSpan RetryInitialDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Longest delay between two attempts [10 min].</summary>
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How long one attempt may take before it counts as failed [10 s]; shorter than the lease.</summary>
    public TimeSpan SendTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Pause between rounds when nothing is due [1 s].</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a node's claim on an event lasts; a node that dies releases its events when it ends [60 s].</summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Events claimed per round [16].</summary>
    public int BatchSize { get; set; } = 16;
}

/// <summary>Start-time checks of <see cref="EventOptions"/>: each failure names the setting.</summary>
internal sealed class EventOptionsValidator : IValidateOptions<EventOptions>
{
    public ValidateOptionsResult Validate(string? name, EventOptions options)
    {
        var failures = new List<string>();
        Check(failures, "RetryHorizon", options.RetryHorizon, TimeSpan.FromSeconds(1), TimeSpan.FromDays(30));
        Check(failures, "RetryInitialDelay", options.RetryInitialDelay, TimeSpan.FromMilliseconds(10), TimeSpan.FromHours(1));
        Check(failures, "RetryMaxDelay", options.RetryMaxDelay, options.RetryInitialDelay, TimeSpan.FromDays(1));
        Check(failures, "SendTimeout", options.SendTimeout, TimeSpan.FromMilliseconds(100), TimeSpan.FromMinutes(5));
        Check(failures, "PollInterval", options.PollInterval, TimeSpan.FromMilliseconds(10), TimeSpan.FromMinutes(10));
        Check(failures, "LeaseDuration", options.LeaseDuration, options.SendTimeout + TimeSpan.FromMilliseconds(1), TimeSpan.FromHours(1));
        if (options.BatchSize is < 1 or > 1000)
        {
            failures.Add("Events:BatchSize must be between 1 and 1000");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void Check(List<string> failures, string name, TimeSpan value, TimeSpan min, TimeSpan max)
    {
        if (value < min || value > max)
        {
            failures.Add(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"Events:{name} must be between {min:c} and {max:c}"));
        }
    }
}
