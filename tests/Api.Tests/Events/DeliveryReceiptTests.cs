using System.Net;
using DevRift.Hsm.Api.Tests.Delivery;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Events;

/// <summary>
/// Twilio delivery receipts on SQLite and PostgreSQL: the provider is asked for a status callback at the public base
/// URL; a signed callback flips the channel to delivered/undelivered and emits the event; a bad signature changes nothing.
/// </summary>
public sealed class DeliveryReceiptTests(EventServers servers) : IClassFixture<EventServers>
{
    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_signed_delivered_callback_flips_the_channel_to_delivered_and_a_bad_signature_is_403_with_no_change(Db db)
    {
        // Given a live SMS handed to the Twilio stand-in, which was told where to report its status
        var (server, liveKey, path, id, phone) = await SendLiveSmsAsync(db);
        var request = await servers.Twilio.WaitForAsync(r => r.Form.GetValueOrDefault("To") == phone);
        var callback = request.Form["StatusCallback"];
        var messageId = await OutboxIdAsync(server, id);
        Assert.Equal($"{EventServers.PublicBaseUrl}/v1/providers/twilio/status?message_id={messageId}", callback);
        await Live.WaitForChannelAsync(server.BaseAddress, liveKey, id, s => s == "sent");
        var sent = await EventApi.WaitForAsync(servers.Receiver, path, "challenge.sent");
        Assert.Equal(("SMS", id), (sent.Data.GetProperty("channel").GetString(), sent.Data.GetProperty("challenge_id").GetString()));
        Assert.True(sent.Json.GetProperty("livemode").GetBoolean());

        var form = new Dictionary<string, string>
        {
            ["MessageSid"] = "SM0123456789abcdef0123456789abcdef", ["MessageStatus"] = "delivered", ["To"] = phone, ["AccountSid"] = Live.TwilioSid,
        };

        // When a callback arrives signed with another token, or not signed, or for a tampered status
        var forged = EventApi.TwilioSignature("not-the-auth-token", callback, form);
        var tampered = EventApi.TwilioSignature(Live.TwilioToken, callback, new Dictionary<string, string>(form) { ["MessageStatus"] = "undelivered" });
        foreach (var signature in new[] { forged, null, tampered })
        {
            using var refused = await PostCallbackAsync(server, messageId, form, signature);

            // Then each is 403 invalid_signature, and the channel is still 'sent' with no receipt event
            await refused.AssertProblemAsync(HttpStatusCode.Forbidden, "invalid_signature");
        }

        Assert.Equal("sent", (await Live.ChannelAsync(server.BaseAddress, liveKey, id, "SMS")).Status);

        // When Twilio's correctly signed 'delivered' arrives (twice, as callbacks may)
        var valid = EventApi.TwilioSignature(Live.TwilioToken, callback, form);
        for (var i = 0; i < 2; i++)
        {
            using var accepted = await PostCallbackAsync(server, messageId, form, valid);
            Assert.Equal(HttpStatusCode.NoContent, accepted.StatusCode);
        }

        // Then GET /v1/mfa/{id} shows the channel delivered, and one challenge.delivered event went out
        Assert.Equal(("delivered", null), await Live.ChannelAsync(server.BaseAddress, liveKey, id, "SMS"));
        var delivered = await EventApi.WaitForAsync(servers.Receiver, path, "challenge.delivered");
        Assert.Equal((id, "SMS", phone), (delivered.Data.GetProperty("challenge_id").GetString(), delivered.Data.GetProperty("channel").GetString(),
            delivered.Data.GetProperty("user").GetString()));
        Assert.Single(EventApi.At(servers.Receiver, path), e => e.Type == "challenge.delivered");
        Assert.DoesNotContain(EventApi.At(servers.Receiver, path), e => e.Type == "challenge.failed");
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_signed_undelivered_callback_shows_undelivered_with_the_twilio_error_and_emits_challenge_failed(Db db)
    {
        var (server, liveKey, path, id, phone) = await SendLiveSmsAsync(db);
        var request = await servers.Twilio.WaitForAsync(r => r.Form.GetValueOrDefault("To") == phone);
        var callback = request.Form["StatusCallback"];
        await Live.WaitForChannelAsync(server.BaseAddress, liveKey, id, s => s == "sent");
        var form = new Dictionary<string, string>
        {
            ["MessageSid"] = "SM0123456789abcdef0123456789abcdee", ["MessageStatus"] = "undelivered", ["ErrorCode"] = "30003",
            ["ErrorMessage"] = $"Unreachable destination handset {phone}",
        };

        using (var accepted = await PostCallbackAsync(server, await OutboxIdAsync(server, id), form, EventApi.TwilioSignature(Live.TwilioToken, callback, form)))
        {
            Assert.Equal(HttpStatusCode.NoContent, accepted.StatusCode);
        }

        var (status, reason) = await Live.ChannelAsync(server.BaseAddress, liveKey, id, "SMS");
        Assert.Equal(("undelivered", "the provider reported undelivered (Twilio error 30003)"), (status, reason));
        var failed = await EventApi.WaitForAsync(servers.Receiver, path, "challenge.failed");
        Assert.Equal("the provider reported undelivered (Twilio error 30003)", failed.Data.GetProperty("reason").GetString());
        Assert.DoesNotContain("handset", failed.Request.Text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_voice_call_asks_for_a_receipt_and_its_end_status_marks_it_delivered_or_undelivered(Db db)
    {
        foreach (var (callStatus, expected, reason, eventType) in new[]
        {
            ("no-answer", "undelivered", "the provider reported no-answer", "challenge.failed"),
            ("completed", "delivered", null, "challenge.delivered"),
        })
        {
            // Given a live voice call handed to the Twilio stand-in, which was told where to report the call's end
            var (server, liveKey, path, id, phone) = await SendLiveAsync(db, "CALL");
            var request = await servers.Twilio.WaitForAsync(r => r.Form.GetValueOrDefault("To") == phone);
            Assert.True(request.Form.ContainsKey("Twiml"));
            var messageId = await OutboxIdAsync(server, id);
            var callback = request.Form["StatusCallback"];
            Assert.Equal($"{EventServers.PublicBaseUrl}/v1/providers/twilio/status?message_id={messageId}", callback);
            await Live.WaitForChannelAsync(server.BaseAddress, liveKey, id, s => s == "sent");

            // When Twilio reports how the call ended, signed
            var form = new Dictionary<string, string>
            {
                ["CallSid"] = "CA0123456789abcdef0123456789abcdef", ["CallStatus"] = callStatus, ["To"] = phone, ["AccountSid"] = Live.TwilioSid,
            };
            using (var accepted = await PostCallbackAsync(server, messageId, form, EventApi.TwilioSignature(Live.TwilioToken, callback, form)))
            {
                Assert.Equal(HttpStatusCode.NoContent, accepted.StatusCode);
            }

            // Then the CALL channel shows it, and its event went out
            Assert.Equal((expected, reason), await Live.ChannelAsync(server.BaseAddress, liveKey, id, "CALL"));
            var emitted = await EventApi.WaitForAsync(servers.Receiver, path, eventType);
            Assert.Equal(("CALL", id), (emitted.Data.GetProperty("channel").GetString(), emitted.Data.GetProperty("challenge_id").GetString()));
        }
    }

    private Task<(ApplianceServer Server, string LiveKey, string Path, string ChallengeId, string Phone)> SendLiveSmsAsync(Db db) => SendLiveAsync(db, "SMS");

    private async Task<(ApplianceServer Server, string LiveKey, string Path, string ChallengeId, string Phone)> SendLiveAsync(Db db, string type)
    {
        var server = await servers.GetAsync(db);
        var (appId, _) = await server.CreateApplicationWithKeyAsync("receipts", "standard");
        var liveKey = await Live.CreateKeyAsync(server.BaseAddress, server.OperatorToken, appId, "live");
        var path = $"/events/{Guid.NewGuid():N}";
        await EventApi.ConfigureAsync(server.BaseAddress, server.OperatorToken, appId, new Uri(servers.Receiver.BaseUrl, path).ToString());
        var phone = Live.NewPhone();
        var id = await Live.SendAsync(server.BaseAddress, liveKey, phone, type);
        return (server, liveKey, path, id, phone);
    }

    private static async Task<string> OutboxIdAsync(ApplianceServer server, string challengeId)
    {
        await using var c = await server.OpenDatabaseAsync();
        return await Dapper.SqlMapper.QuerySingleAsync<string>(c, "SELECT id FROM outbox WHERE challenge_id = @challengeId", new { challengeId });
    }

    private static async Task<HttpResponseMessage> PostCallbackAsync(ApplianceServer server, string messageId, IDictionary<string, string> form, string? signature)
    {
        using var client = server.NewClient(null);
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/v1/providers/twilio/status?message_id={messageId}") { Content = new FormUrlEncodedContent(form) };
        if (signature is not null)
        {
            request.Headers.TryAddWithoutValidation("X-Twilio-Signature", signature);
        }

        return await client.SendAsync(request);
    }
}
