using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Delivery;

/// <summary>A message that cannot be delivered before its code expires: retried until then, then 'failed', body deleted.</summary>
public sealed class ExpiryTests
{
    [Fact]
    public async Task A_message_still_undelivered_when_its_code_expires_is_failed_as_expired_and_its_body_deleted()
    {
        // Given a provider that is down, and an appliance on a fake clock with 30-second codes
        await using var twilio = await HttpStandIn.StartAsync();
        twilio.Answer = _ => new StandInAnswer(503);
        var settings = Live.BaseSettings();
        settings["Delivery:PollInterval"] = "00:00:01";
        settings["Delivery:RetryInitialDelay"] = "00:00:02";
        settings["Delivery:RetryMaxDelay"] = "00:00:08";
        Live.AddTwilio(settings, twilio.BaseUrl);
        await using var server = await Live.StartServerAsync(Db.Sqlite, settings, fakeClock: true);
        var clock = server.Clock!;
        await Live.PatchSettingsAsync(server.BaseAddress, server.OperatorToken, server.ApplicationId, new { code_lifetime_seconds = 30 });
        var key = await Live.CreateLiveKeyAsync(server.BaseAddress, server.OperatorToken, server.ApplicationId);
        var phone = Live.NewPhone();
        var id = await Live.SendAsync(server.BaseAddress, key, phone, "SMS");

        // When the clock runs past the expiry, a second at a time
        (string Status, string? Reason) channel = default;
        for (var i = 0; i < 120 && channel.Status != "failed"; i++)
        {
            clock.Advance(TimeSpan.FromSeconds(1));
            await Task.Delay(60);
            channel = await Live.ChannelAsync(server.BaseAddress, key, id);
        }

        // Then it was tried several times with growing gaps (not every second), and is now failed as expired
        Assert.Equal(("failed", "expired before delivery"), channel);
        var row = await Live.OutboxRowAsync(server.ConnectionString, id, "SMS");
        Assert.Equal("failed", row.Status);
        Assert.Equal("expired before delivery", row.LastError);
        Assert.Null(row.SealedBody);
        var attempts = twilio.Requests.Count(r => r.Form.GetValueOrDefault("To") == phone);
        Assert.InRange(attempts, 3, 12);
        Assert.Equal(attempts, row.Attempts);
        Assert.Equal("expired", (await Live.GetChallengeAsync(server.BaseAddress, key, id)).GetProperty("status").GetString());

        // And nothing more is attempted afterwards
        clock.Advance(TimeSpan.FromSeconds(30));
        await Task.Delay(300);
        Assert.Equal(attempts, twilio.Requests.Count(r => r.Form.GetValueOrDefault("To") == phone));
    }
}
