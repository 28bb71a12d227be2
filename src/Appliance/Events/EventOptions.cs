using System.ComponentModel.DataAnnotations;

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
    [Range(typeof(TimeSpan), "00:00:01", "30.00:00:00")]
    public TimeSpan RetryHorizon { get; set; } = TimeSpan.FromDays(3);

    /// <summary>Delay before the second attempt; doubled each time up to <see cref="RetryMaxDelay"/> [2 s].</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "01:00:00")]
    public TimeSpan RetryInitialDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Longest delay between two attempts [10 min].</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "1.00:00:00")]
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How long one attempt may take before it counts as failed [10 s].</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "00:05:00")]
    public TimeSpan SendTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Pause between rounds when nothing is due [1 s].</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a node's claim on an event lasts; a node that dies releases its events when it ends [60 s].</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Events claimed per round [16].</summary>
    [Range(1, 1000)]
    public int BatchSize { get; set; } = 16;
}
