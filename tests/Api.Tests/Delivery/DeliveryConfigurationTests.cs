using DevRift.Hsm.Api.Hosting;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Appliance.Outbox;
using DevRift.Hsm.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace DevRift.Hsm.Api.Tests.Delivery;

/// <summary>Delivery settings are checked at start: a bad one stops the process with one line naming it.</summary>
public sealed class DeliveryConfigurationTests
{
    [Fact]
    public async Task Bad_delivery_settings_stop_start_up_with_one_line_naming_each_problem()
    {
        // Given an initialised appliance
        var hsm = SoftHsmTokens.CreateToken();
        var directory = Path.Combine(Path.GetTempPath(), "devrift-delivery-tests", Guid.NewGuid().ToString("N"));
        string[] common =
        [
            "--urls=http://127.0.0.1:0", $"--Data:Directory={directory}",
            $"--Storage:ConnectionString=Data Source={Path.Combine(directory, "devrift.db")}",
            $"--Hsm:ModulePath={hsm.ModulePath}", $"--Hsm:TokenLabel={hsm.TokenLabel}", $"--Hsm:Pin={hsm.Pin}",
            $"--Hsm:SoftHsmConfig={hsm.SoftHsmConfig}", "--Logging:LogLevel:Default=None",
        ];
        Assert.Equal(0, await ApplianceProgram.RunAsync(["init", .. common, "--Init:Demo=false"], TextWriter.Null, TextWriter.Null));

        // When it is served with wrong delivery settings
        using var stderr = new StringWriter();
        var exit = await ApplianceProgram.RunAsync(
        [
            "serve", .. common,
            "--Delivery:Smtp:Host=127.0.0.1", "--Delivery:Smtp:Security=Sometimes", "--Delivery:Smtp:From=not an address",
            "--Delivery:Smtp:Password=hunter2-secret",
            "--Delivery:Webhook:Url=ftp://gateway.example", "--Delivery:Webhook:Secret=short-secret",
            "--Delivery:Routes:CALL=twilio", "--Delivery:Routes:FAX=smtp", "--Delivery:PollInterval=soon",
        ], TextWriter.Null, stderr).WaitAsync(TimeSpan.FromSeconds(60));

        // Then it exits with code 2 and one line that names every problem and no secret
        var output = stderr.ToString().TrimEnd();
        Assert.Equal(2, exit);
        Assert.DoesNotContain('\n', output);
        Assert.StartsWith("devrift: invalid configuration: ", output, StringComparison.Ordinal);
        Assert.Contains("Delivery:Smtp:Security must be None, StartTls or SslOnConnect", output, StringComparison.Ordinal);
        Assert.Contains("Delivery:Smtp:From", output, StringComparison.Ordinal);
        Assert.Contains("Delivery:Webhook:Url must be an http(s) URL", output, StringComparison.Ordinal);
        Assert.Contains("Delivery:Webhook:Secret is required", output, StringComparison.Ordinal);
        Assert.Contains("Delivery:Routes:CALL is 'twilio' but that provider is not configured", output, StringComparison.Ordinal);
        Assert.Contains("Delivery:Routes:FAX", output, StringComparison.Ordinal);
        Assert.Contains("Delivery:PollInterval", output, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", output, StringComparison.Ordinal);
        Assert.DoesNotContain("short-secret", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Routing_follows_the_configuration_and_only_configured_providers()
    {
        // Given Twilio with a WhatsApp sender but no SMTP, and CALL routed to the webhook
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite, settings: new Dictionary<string, string?>
        {
            ["Delivery:Twilio:AccountSid"] = Live.TwilioSid,
            ["Delivery:Twilio:AuthToken"] = Live.TwilioToken,
            ["Delivery:Twilio:WhatsAppFrom"] = Live.WhatsAppFrom,
            ["Delivery:Webhook:Url"] = "https://gateway.example/hooks",
            ["Delivery:Webhook:Secret"] = Live.WebhookSecret,
            ["Delivery:Routes:CALL"] = "webhook",
        });

        // Then WHATSAPP goes to twilio, CALL to the webhook, and EMAIL and SMS (no sender number) nowhere
        var routing = server.Services.GetRequiredService<DeliveryRouting>();
        Assert.Equal("twilio", routing.ProviderFor("WHATSAPP"));
        Assert.Equal("webhook", routing.ProviderFor("CALL"));
        Assert.Null(routing.ProviderFor("EMAIL"));
        Assert.Null(routing.ProviderFor("SMS"));
    }

    [Fact]
    public void Backoff_doubles_is_capped_and_jittered()
    {
        var initial = TimeSpan.FromSeconds(2);
        var max = TimeSpan.FromSeconds(60);
        for (var attempt = 1; attempt <= 10; attempt++)
        {
            var ceiling = Math.Min(2 * Math.Pow(2, attempt - 1), 60);
            var delays = Enumerable.Range(0, 50).Select(_ => OutboxDispatcher.Backoff(attempt, initial, max).TotalSeconds).ToList();
            Assert.All(delays, d => Assert.InRange(d, ceiling / 2, ceiling));
            Assert.True(delays.Distinct().Count() > 1, "no jitter");
        }
    }

    [Fact]
    public void The_webhook_signature_is_hmac_sha256_of_timestamp_dot_body_in_lower_case_hex()
    {
        var body = "{\"id\":\"msg_1\"}"u8.ToArray();
        var signature = WebhookProvider.Signature("whsec-0123456789abcdef", 1_780_000_000, body);
        var expected = Convert.ToHexStringLower(System.Security.Cryptography.HMACSHA256.HashData(
            "whsec-0123456789abcdef"u8.ToArray(), "1780000000.{\"id\":\"msg_1\"}"u8.ToArray()));
        Assert.Equal($"t=1780000000,v1={expected}", signature);
    }
}
