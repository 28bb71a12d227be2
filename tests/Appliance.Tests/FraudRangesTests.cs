using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Fraud;

namespace DevRift.Hsm.Appliance.Tests;

/// <summary>The shipped high-cost ranges, the country codes allowed_countries takes, and the guard's defaults.</summary>
public sealed class FraudRangesTests
{
    [Fact]
    public void The_shipped_list_holds_the_itu_international_codes_and_only_valid_distinct_prefixes()
    {
        var shipped = PremiumRanges.Shipped;
        Assert.Superset(new HashSet<string>(["+808", "+870", "+881", "+882", "+883", "+979", "+449", "+4487", "+1900", "+3389", "+49900", "+49137"], StringComparer.Ordinal), new HashSet<string>(shipped, StringComparer.Ordinal));
        Assert.All(shipped, p => Assert.Matches(@"^\+[1-9][0-9]{0,14}$", p));
        Assert.Equal(shipped.Count, shipped.Distinct(StringComparer.Ordinal).Count());
    }

    [Fact]
    public void Every_shipped_prefix_has_a_comment_saying_what_it_is()
    {
        // The list as shipped: the resource compiled into the appliance
        var assembly = typeof(PremiumRanges).Assembly;
        using var stream = assembly.GetManifestResourceStream(assembly.GetManifestResourceNames().Single(n => n.EndsWith("premium-ranges.txt", StringComparison.Ordinal)))!;
        using var reader = new StreamReader(stream);
        var entries = reader.ReadToEnd().Split('\n').Where(l => l.StartsWith('+')).Select(l => l.TrimEnd('\r')).ToList();
        Assert.Equal(PremiumRanges.Shipped.Count, entries.Count);
        Assert.All(entries, l => Assert.Matches(@"^\+\d+\s+# \S.{8,}$", l));
    }

    [Theory]
    [InlineData("+449098790000", "+449")]
    [InlineData("+4487012345678", "+4487")]
    [InlineData("+447400123456", null)]
    [InlineData("+881612345678", "+881")]
    public void The_longest_matching_prefix_is_found(string number, string? expected) =>
        Assert.Equal(expected, PremiumRanges.LongestMatch(number, PremiumRanges.Shipped));

    [Fact]
    public void Allowed_countries_take_the_249_iso_codes_and_libphonenumbers_three_reserved_ones_only()
    {
        Assert.Equal(249, Countries.Count);
        Assert.All(["GB", "US", "DE", "GG", "AQ", "AC", "TA", "XK"], c => Assert.True(Countries.IsIso3166Alpha2(c), c));
        Assert.All(["UK", "EU", "ZZ", "gb", "GBR", "001", ""], c => Assert.False(Countries.IsIso3166Alpha2(c), c));
    }

    [Fact]
    public void The_guard_enforces_by_default_with_no_country_list_and_no_velocity_limit()
    {
        var s = ApplicationSettings.DefaultsFor(Plans.Standard);
        Assert.Equal(("enforce", 0, 0, 0, 0), (s.FraudGuardMode, s.AllowedCountries.Count, s.BlockedRanges.Count, s.VelocityPerPrefixPerHour, s.VelocityPerRangePerHour));
        var old = ApplicationSettings.Deserialize("""{"code_length":7}""");
        Assert.Equal("enforce", old.FraudGuardMode);
    }
}
