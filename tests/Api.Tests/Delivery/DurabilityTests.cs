using Dapper;

namespace DevRift.Hsm.Api.Tests.Delivery;

/// <summary>
/// What a 202 promises across crashes and nodes, with the appliance as a real process: killed (SIGKILL) while a mail
/// waits for its server or while a delivery is in flight, restarted, and two nodes on one PostgreSQL database.
/// </summary>
public sealed class DurabilityTests
{
    private static Dictionary<string, string?> ProcessSettings() => new()
    {
        ["Delivery:PollInterval"] = "00:00:00.200",
        ["Delivery:RetryInitialDelay"] = "00:00:00.300",
        ["Delivery:RetryMaxDelay"] = "00:00:01",
        ["Delivery:SendTimeout"] = "00:00:03",
        ["Delivery:LeaseDuration"] = "00:00:04",
    };

    [Fact]
    public async Task A_mail_sent_while_the_smtp_server_is_down_arrives_after_the_appliance_is_killed_and_restarted_and_the_server_returns()
    {
        // Given an appliance whose SMTP server is down (nothing listens on its port)
        await using var site = await ChildAppliance.Site.CreateAsync(postgres: false);
        await using var smtp = new SmtpStandIn();
        var settings = ProcessSettings();
        Live.AddSmtp(settings, smtp.Port);
        await using var node = ChildAppliance.For(site, settings, "node-a");
        await node.InitAsync();
        await node.StartAsync();
        var key = await Live.CreateLiveKeyAsync(node.BaseAddress, node.OperatorToken, node.ApplicationId);

        // When an EMAIL send is accepted and fails to go out a few times
        var user = Live.NewEmail("outage");
        var id = await Live.SendAsync(node.BaseAddress, key, user, "EMAIL");
        await Live.WaitForAsync(() => Live.OutboxRowAsync(site.ConnectionString, id, "EMAIL"), r => r.Attempts >= 2, "failed attempts");
        // (read until the channel shows a reason: while a retry is claimed the channel is 'sending', with no reason)
        var (status, reason) = await Live.WaitForAsync(() => Live.ChannelAsync(node.BaseAddress, key, id), c => c.Reason is not null, "a failure reason");
        Assert.Equal("queued", status);
        Assert.Contains("the mail server could not be reached", reason ?? "", StringComparison.Ordinal);

        // And the appliance is killed, restarted, and the SMTP server comes back
        await node.KillAsync();
        await node.StartAsync();
        await smtp.StartAsync();

        // Then the mail arrives once, the channel is 'sent', and its code verifies
        var mail = await smtp.WaitForAsync(user);
        var code = Live.CodeIn(mail.TextBody ?? "");
        await Live.WaitForChannelAsync(node.BaseAddress, key, id, s => s == "sent");
        await Live.AssertVerifiesAsync(node.BaseAddress, key, user, "EMAIL", code);
        Assert.Equal(1, smtp.CountTo(user));
        Assert.Null((await Live.OutboxRowAsync(site.ConnectionString, id, "EMAIL")).SealedBody);
        Assert.DoesNotContain(node.Output, l => l.Contains(code, StringComparison.Ordinal));
        Assert.Contains(node.Output, l => l.Contains("sent via smtp", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_message_in_flight_when_the_appliance_is_killed_is_delivered_after_restart()
    {
        // Given a provider that stalls on its first request (the appliance is mid-delivery)
        await using var site = await ChildAppliance.Site.CreateAsync(postgres: false);
        await using var twilio = await HttpStandIn.StartAsync();
        var calls = 0;
        twilio.Answer = _ => Interlocked.Increment(ref calls) == 1 ? new StandInAnswer(0, Hang: true) : new StandInAnswer(201, """{"sid":"SM2"}""");
        var settings = ProcessSettings();
        Live.AddTwilio(settings, twilio.BaseUrl);
        await using var node = ChildAppliance.For(site, settings, "node-a");
        await node.InitAsync();
        await node.StartAsync();
        var key = await Live.CreateLiveKeyAsync(node.BaseAddress, node.OperatorToken, node.ApplicationId);
        var phone = Live.NewPhone();
        var id = await Live.SendAsync(node.BaseAddress, key, phone, "SMS");
        await twilio.WaitForAsync(r => r.Form.GetValueOrDefault("To") == phone);
        var claimed = await Live.OutboxRowAsync(site.ConnectionString, id, "SMS");
        Assert.Equal(("sending", "node-a"), (claimed.Status, claimed.ClaimedBy));

        // When the process is killed mid-delivery and started again
        await node.KillAsync();
        await node.StartAsync();

        // Then, once the dead node's lease has passed, the message is delivered and its code verifies
        await Live.WaitForChannelAsync(node.BaseAddress, key, id, s => s == "sent", TimeSpan.FromSeconds(30));
        var requests = twilio.Requests.Where(r => r.Form.GetValueOrDefault("To") == phone).ToList();
        Assert.Equal(2, requests.Count);
        var code = Live.CodeIn(requests[1].Form["Body"]);
        Assert.Equal(code, Live.CodeIn(requests[0].Form["Body"]));
        Assert.True(requests[1].At - requests[0].At >= TimeSpan.FromSeconds(3), "redelivered before the lease ended");
        await Live.AssertVerifiesAsync(node.BaseAddress, key, phone, "PHONE", code);
        var row = await Live.OutboxRowAsync(site.ConnectionString, id, "SMS");
        Assert.Equal(("sent", 2L), (row.Status, row.Attempts));
        Assert.Null(row.SealedBody);
        Assert.DoesNotContain(node.Output, l => l.Contains(code, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Two_nodes_on_one_postgres_database_never_send_the_same_message_twice()
    {
        // Given two appliance processes sharing one PostgreSQL database and one token, small batches, and a slow gateway
        await using var site = await ChildAppliance.Site.CreateAsync(postgres: true);
        await using var gateway = await HttpStandIn.StartAsync();
        gateway.Answer = _ => new StandInAnswer(200);
        gateway.Delay = TimeSpan.FromMilliseconds(60);
        var settings = ProcessSettings();
        settings["Delivery:PollInterval"] = "00:00:00.050";
        settings["Delivery:BatchSize"] = "3";
        settings["Delivery:LeaseDuration"] = "00:00:30";
        settings["Delivery:SendTimeout"] = "00:00:10";
        Live.AddWebhook(settings, gateway.BaseUrl);
        settings["Delivery:Routes:SMS"] = "webhook";
        await using var a = ChildAppliance.For(site, settings, "node-a");
        await using var b = ChildAppliance.For(site, settings, "node-b");
        await a.InitAsync();
        b.ShareSecretsOf(a);
        await Task.WhenAll(a.StartAsync(), b.StartAsync());
        var key = await Live.CreateLiveKeyAsync(a.BaseAddress, a.OperatorToken, a.ApplicationId);

        // When forty codes are sent through both nodes at once
        var phones = Enumerable.Range(0, 40).Select(_ => Live.NewPhone()).ToList();
        var ids = await Task.WhenAll(phones.Select((p, i) => Live.SendAsync(i % 2 == 0 ? a.BaseAddress : b.BaseAddress, key, p, "SMS")));

        // Then every message reaches the gateway exactly once
        await Live.WaitForAsync(async () =>
        {
            await using var c = await Live.OpenAsync(site.ConnectionString);
            return await c.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM outbox WHERE status = 'sent'");
        }, n => n == 40, "forty sent messages", TimeSpan.FromSeconds(60));
        var received = gateway.Requests.Select(r => System.Text.Json.JsonDocument.Parse(r.Body).RootElement.GetProperty("id").GetString()).ToList();
        Assert.Equal(40, received.Count);
        Assert.Equal(40, received.Distinct().Count());

        // And both nodes delivered some, each row once (one attempt), in parallel
        await using var connection = await Live.OpenAsync(site.ConnectionString);
        var rows = (await connection.QueryAsync<OutboxRow>("SELECT id, status, attempts, claimed_by AS ClaimedBy FROM outbox")).ToList();
        Assert.All(rows, r => Assert.Equal(1, r.Attempts));
        Assert.Equal(["node-a", "node-b"], rows.Select(r => r.ClaimedBy ?? "").Distinct().Order().ToArray());
        Assert.True(gateway.MaxInFlight > 1);

        // And every code verifies, and none is in either node's log
        var bodies = gateway.Requests.Select(r => System.Text.Json.JsonDocument.Parse(r.Body).RootElement).ToList();
        var codes = new List<string>();
        foreach (var phone in phones.Take(6))
        {
            var body = bodies.Single(j => j.GetProperty("to").GetString() == phone).GetProperty("body").GetString()!;
            var code = Live.CodeIn(body);
            codes.Add(code);
            await Live.AssertVerifiesAsync(b.BaseAddress, key, phone, "PHONE", code);
        }

        Assert.Equal(40, ids.Distinct().Count());
        foreach (var body in bodies)
        {
            var code = Live.CodeIn(body.GetProperty("body").GetString()!);
            Assert.DoesNotContain(a.Output.Concat(b.Output), l => l.Contains(code, StringComparison.Ordinal));
        }
    }
}
