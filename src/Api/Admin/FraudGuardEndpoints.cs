using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Fraud;

namespace DevRift.Hsm.Api.Admin;

/// <summary>
/// An application's fraud guard: its mode and rules, the shipped high-cost ranges, and how many phone sends it refused
/// (<c>blocked</c>) or in shadow mode would have refused (<c>would_block</c>), per API mode and reason, every reason
/// present (zero when none).
/// </summary>
public sealed record FraudGuardResponse(
    string Object, string ApplicationId, string FraudGuardMode, IReadOnlyList<string> AllowedCountries, IReadOnlyList<string> BlockedRanges,
    int VelocityPerPrefixPerHour, int VelocityPerRangePerHour, int RangeTrailingDigits, IReadOnlyList<string> ShippedRanges,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>>> Counts)
{
    public static FraudGuardResponse From(Application app, IReadOnlyList<FraudGuardCount> counts)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(counts);
        var s = app.Settings;
        var byMode = new[] { Modes.Test, Modes.Live }.ToDictionary(
            mode => mode,
            mode => (IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>>)FraudDecisions.All.ToDictionary(
                decision => decision,
                decision => (IReadOnlyDictionary<string, long>)FraudReasons.All.ToDictionary(
                    reason => reason,
                    reason => counts.Where(c => c.Mode == mode && c.Decision == decision && c.Reason == reason).Sum(c => c.Total),
                    StringComparer.Ordinal),
                StringComparer.Ordinal),
            StringComparer.Ordinal);
        return new("fraud_guard", app.Id, s.FraudGuardMode, s.AllowedCountries, s.BlockedRanges, s.VelocityPerPrefixPerHour, s.VelocityPerRangePerHour,
            FraudGuard.RangeTrailingDigits, PremiumRanges.Shipped, byMode);
    }
}

public static class FraudGuardEndpoints
{
    public static RouteGroupBuilder MapFraudGuard(this RouteGroupBuilder admin)
    {
        ArgumentNullException.ThrowIfNull(admin);
        admin.MapGet("/applications/{id}/fraud-guard", async (string id, ApplicationStore apps, FraudGuard guard, CancellationToken ct) =>
            TypedResults.Ok(FraudGuardResponse.From(await apps.GetAsync(id, ct), await guard.CountsAsync(id, ct))))
            .WithSummary("An application's fraud guard: mode, rules, shipped ranges, and the sends it blocked or would have blocked");
        return admin;
    }
}
