using System.Net;
using System.Text.Json;
using Dapper;
using DevRift.Hsm.Api.Tests.Delivery;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Events;

/// <summary>An event acknowledged with its verification survives SIGKILL of the appliance (a real process) and arrives after restart.</summary>
public sealed class EventDurabilityTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task An_event_of_a_verify_answered_200_is_delivered_after_the_appliance_is_killed_before_delivery_and_restarted(bool postgres)
    {
        // Given an appliance process whose application's event receiver is down
        await using var site = await ChildAppliance.Site.CreateAsync(postgres);
        var port = FreePort.Next();
        await using var node = ChildAppliance.For(site, EventServers.EventSettings(), "node-a");
        await node.InitAsync();
        await node.StartAsync();
        var secret = await EventApi.ConfigureAsync(node.BaseAddress, node.OperatorToken, node.ApplicationId, $"http://127.0.0.1:{port}/hook",
            ["verification.approved"]);

        // When a verification answers 200
        var user = Live.NewEmail("killed");
        using var client = Live.Client(node.BaseAddress, node.TestKey);
        using (var sent = await client.PostAsync("/v1/mfa", new StringContent($"User={user}, Type=EMAIL", System.Text.Encoding.UTF8, "application/x-www-form-urlencoded")))
        {
            Assert.Equal(HttpStatusCode.Accepted, sent.StatusCode);
        }

        var code = await CodeAsync(client, user);
        using (var verified = await client.PostAsync("/v1/mfa/verify",
            new StringContent($"User={user}, Type=EMAIL, Code={code}", System.Text.Encoding.UTF8, "application/x-www-form-urlencoded")))
        {
            Assert.Equal(HttpStatusCode.OK, verified.StatusCode);
        }

        // And the process is killed before the event could be delivered
        await using (var c = await Live.OpenAsync(site.ConnectionString))
        {
            var pending = await c.QuerySingleAsync<(string Id, string Status)>("SELECT id, status FROM events WHERE type = 'verification.approved'");
            Assert.NotEqual("delivered", pending.Status);
        }

        await node.KillAsync();
        string eventId;
        await using (var c = await Live.OpenAsync(site.ConnectionString))
        {
            eventId = await c.QuerySingleAsync<string>("SELECT id FROM events WHERE type = 'verification.approved'");
        }

        // Then, with the receiver up and the appliance started again, the event arrives, signed, with its stored id
        await using var receiver = await HttpStandIn.StartAsync(port);
        receiver.Answer = _ => new StandInAnswer(204);
        await node.StartAsync();
        var request = await receiver.WaitForAsync(r => r.Path == "/hook", TimeSpan.FromSeconds(60));
        using var doc = JsonDocument.Parse(request.Body);
        Assert.Equal(eventId, doc.RootElement.GetProperty("id").GetString());
        Assert.Equal(eventId, request.Header("DevRift-Event-Id"));
        Assert.Equal(user, doc.RootElement.GetProperty("data").GetProperty("user").GetString());
        Assert.True(EventApi.SignatureVerifies(request, secret));
        Assert.DoesNotContain(code, request.Text, StringComparison.Ordinal);
        await Live.WaitForAsync(async () =>
        {
            await using var c = await Live.OpenAsync(site.ConnectionString);
            return await c.QuerySingleAsync<string>("SELECT status FROM events WHERE id = @eventId", new { eventId });
        }, s => s == "delivered", "the event recorded delivered");
        Assert.DoesNotContain(node.Output, l => l.Contains(code, StringComparison.Ordinal) || l.Contains(secret, StringComparison.Ordinal));
    }

    private static async Task<string> CodeAsync(HttpClient client, string user)
    {
        var text = await client.GetStringAsync($"/v1/test/messages?user={Uri.EscapeDataString(user)}");
        using var doc = JsonDocument.Parse(text);
        return Live.CodeIn(doc.RootElement.GetProperty("data")[0].GetProperty("body").GetString()!);
    }
}
