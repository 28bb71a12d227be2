using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Delivery;

/// <summary>
/// One appliance on PostgreSQL with CALL routed to a signed webhook (<c>Delivery:Routes:CALL=webhook</c>) and SMS to
/// the Twilio-shaped API: a local receiver checks the signature as a deployment's gateway would.
/// </summary>
public sealed class WebhookDeliveryFixture : IAsyncLifetime
{
    private ApplianceServer? _server;

    public ApplianceServer Server => _server ?? throw new InvalidOperationException("not started");

    public HttpStandIn Gateway { get; private set; } = null!;

    public HttpStandIn Twilio { get; private set; } = null!;

    public string LiveKey { get; private set; } = "";

    public async Task InitializeAsync()
    {
        Gateway = await HttpStandIn.StartAsync();
        Gateway.Answer = _ => new StandInAnswer(202);
        Twilio = await HttpStandIn.StartAsync();
        var settings = Live.BaseSettings();
        Live.AddTwilio(settings, Twilio.BaseUrl);
        Live.AddWebhook(settings, Gateway.BaseUrl);
        settings["Delivery:Routes:CALL"] = "webhook";
        _server = await Live.StartServerAsync(Db.Postgres, settings);
        LiveKey = await Live.CreateLiveKeyAsync(Server.BaseAddress, Server.OperatorToken, Server.ApplicationId);
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        await Gateway.DisposeAsync();
        await Twilio.DisposeAsync();
    }
}

public sealed class WebhookDeliveryTests(WebhookDeliveryFixture fixture) : IClassFixture<WebhookDeliveryFixture>
{
    private Uri Host => fixture.Server.BaseAddress;

    [Fact]
    public async Task A_call_routed_to_the_webhook_arrives_correctly_signed_and_its_code_verifies()
    {
        // Given CALL routed to the webhook
        var phone = Live.NewPhone();
        var before = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        // When the integrator sends a CALL code with a live key
        var id = await Live.SendAsync(Host, fixture.LiveKey, phone, "CALL");

        // Then the gateway receives one signed JSON POST with the documented fields
        var request = await fixture.Gateway.WaitForAsync(r => r.Text.Contains(phone, StringComparison.Ordinal));
        Assert.Equal("POST", request.Method);
        Assert.Equal("/hooks/devrift", request.Path);
        Assert.StartsWith("application/json", request.Header("Content-Type"), StringComparison.Ordinal);
        var signature = request.Header("DevRift-Signature");
        var match = System.Text.RegularExpressions.Regex.Match(signature, "^t=(\\d+),v1=([0-9a-f]{64})$");
        Assert.True(match.Success, $"signature header '{signature}'");
        var t = long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.InRange(t, before - 5, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 5);
        var expected = HMACSHA256.HashData(Encoding.UTF8.GetBytes(Live.WebhookSecret), (byte[])[.. Encoding.ASCII.GetBytes($"{t}."), .. request.Body]);
        Assert.True(CryptographicOperations.FixedTimeEquals(expected, Convert.FromHexString(match.Groups[2].Value)), "the signature does not verify");

        using var doc = JsonDocument.Parse(request.Body);
        var json = doc.RootElement;
        Assert.Equal(["id", "channel", "to", "body", "locale", "created_at"], json.EnumerateObject().Select(p => p.Name).ToArray());
        Assert.StartsWith("msg_", json.GetProperty("id").GetString(), StringComparison.Ordinal);
        Assert.Equal("CALL", json.GetProperty("channel").GetString());
        Assert.Equal(phone, json.GetProperty("to").GetString());
        Assert.Equal("en", json.GetProperty("locale").GetString());
        Assert.True(DateTimeOffset.TryParse(json.GetProperty("created_at").GetString(), CultureInfo.InvariantCulture, out _));
        var code = Live.CodeIn(json.GetProperty("body").GetString()!);

        // And a tampered body or another secret would not verify
        var other = HMACSHA256.HashData(Encoding.UTF8.GetBytes("another-secret-0123456789"), (byte[])[.. Encoding.ASCII.GetBytes($"{t}."), .. request.Body]);
        Assert.False(CryptographicOperations.FixedTimeEquals(other, expected));

        // And the Twilio API saw nothing for it; the channel is 'sent' and the code verifies
        Assert.DoesNotContain(fixture.Twilio.Requests, r => r.Text.Contains(Uri.EscapeDataString(phone), StringComparison.Ordinal));
        await Live.WaitForChannelAsync(Host, fixture.LiveKey, id, s => s == "sent");
        await Live.AssertVerifiesAsync(Host, fixture.LiveKey, phone, "PHONE", code);
        LogCapture.Suite.AssertNoneContain([code]);
    }

    [Fact]
    public async Task Sms_still_goes_to_the_twilio_api_on_postgres_and_verifies()
    {
        var phone = Live.NewPhone();
        var id = await Live.SendAsync(Host, fixture.LiveKey, phone, "SMS");
        var request = await fixture.Twilio.WaitForAsync(r => r.Form.GetValueOrDefault("To") == phone);
        var code = Live.CodeIn(request.Form["Body"]);
        await Live.WaitForChannelAsync(Host, fixture.LiveKey, id, s => s == "sent");
        await Live.AssertVerifiesAsync(Host, fixture.LiveKey, phone, "PHONE", code);
        LogCapture.Suite.AssertNoneContain([code]);
    }

    [Fact]
    public async Task An_email_with_no_provider_is_refused_503_channel_not_configured()
    {
        using var response = await Live.PostSendAsync(Host, fixture.LiveKey, Live.NewEmail("nosmtp"), "EMAIL");
        var problem = await Live.ReadAsync(response, HttpStatusCode.ServiceUnavailable);
        Assert.Equal("channel_not_configured", problem.GetProperty("code").GetString());
    }

    [Fact]
    public async Task The_per_application_limit_holds_under_concurrent_sends_on_postgres()
    {
        // Given an application allowed five sends per hour
        var app = await Live.CreateApplicationAsync(Host, fixture.Server.OperatorToken, "Race Shop", new { sends_per_application_per_hour = 5 });
        var testKey = await Live.CreateKeyAsync(Host, fixture.Server.OperatorToken, app, "test");

        // When twelve sends to different users race
        var responses = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ => Live.PostSendAsync(Host, testKey, Live.NewEmail("race"), "EMAIL")));

        // Then exactly five are accepted and the rest are 429 rate_limited
        Assert.Equal(5, responses.Count(r => r.StatusCode == HttpStatusCode.Accepted));
        Assert.Equal(7, responses.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests));
        foreach (var r in responses)
        {
            r.Dispose();
        }
    }
}
