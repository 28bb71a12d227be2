using System.Net;
using System.Text.RegularExpressions;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests;

/// <summary>Times on the wire share one shape: ISO 8601 UTC to the millisecond.</summary>
public sealed partial class WireFormatTests(SystemClockServers servers) : IClassFixture<SystemClockServers>
{
    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")]
    private static partial Regex UtcMillis();

    [Fact]
    public async Task Challenge_and_verification_times_are_iso_8601_utc_to_the_millisecond()
    {
        // Given a challenge sent and verified
        var server = await servers.GetAsync(Db.Sqlite);
        var user = TestUsers.NewEmail("wire");
        var challenge = await server.SendAcceptedAsync(user, "EMAIL");
        using var verify = await server.VerifyCodeAsync(user, "EMAIL", await server.LatestCodeAsync(user, "EMAIL"));
        var verification = await verify.AssertJsonAsync(HttpStatusCode.OK, "verification");

        // Then every time field has exactly three fractional digits and a Z
        foreach (var time in new[]
                 {
                     challenge.GetProperty("created_at").GetString(), challenge.GetProperty("expires_at").GetString(),
                     challenge.GetProperty("channels")[0].GetProperty("updated_at").GetString(), verification.GetProperty("verified_at").GetString(),
                 })
        {
            Assert.Matches(UtcMillis(), time);
        }
    }
}
