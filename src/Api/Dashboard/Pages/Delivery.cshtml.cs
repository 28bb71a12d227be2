using DevRift.Hsm.Appliance.Outbox;

namespace DevRift.Hsm.Api.Dashboard.Pages;

/// <summary>Delivery status: each channel's provider (configured or not), the live outbox by status, recent failures with their reason.</summary>
public sealed class DeliveryModel(DeliveryOverview overview, DeliveryRouting routing) : DashboardPage
{
    public static readonly string[] Statuses = [OutboxStore.StatusQueued, OutboxStore.StatusSending, OutboxStore.StatusSent, OutboxStore.StatusDelivered, OutboxStore.StatusUndelivered, OutboxStore.StatusFailed];

    public IReadOnlyList<(string Channel, string? Provider)> Providers { get; private set; } = [];

    public IReadOnlyDictionary<string, long> Counts { get; private set; } = new Dictionary<string, long>();

    public long TestMessages { get; private set; }

    public IReadOnlyList<DeliveryFailure> Failures { get; private set; } = [];

    public async Task OnGetAsync()
    {
        Providers = DeliveryRouting.Defaults.Select(d => (d.Channel, routing.ProviderFor(d.Channel))).ToList();
        Counts = await overview.LiveCountsAsync(HttpContext.RequestAborted);
        TestMessages = await overview.TestCountAsync(HttpContext.RequestAborted);
        Failures = await overview.RecentFailuresAsync(20, HttpContext.RequestAborted);
    }
}
