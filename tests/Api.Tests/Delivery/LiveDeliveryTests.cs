using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Dapper;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Delivery;

/// <summary>
/// One appliance (SQLite) with real delivery configured: a real SMTP server in the test process (with AUTH) for EMAIL,
/// and a local HTTP server standing in for the Twilio API for SMS, WhatsApp and voice. The Twilio stand-in answers per
/// destination number, so that tests can make one number "down" or "invalid" without disturbing the others.
/// </summary>
public sealed class LiveDeliveryFixture : IAsyncLifetime
{
    public const string SmtpUser = "appliance";
    public const string SmtpPassword = "smtp-password-for-tests";

    private ApplianceServer? _server;

    public ApplianceServer Server => _server ?? throw new InvalidOperationException("not started");

    public SmtpStandIn Smtp { get; private set; } = null!;

    public HttpStandIn Twilio { get; private set; } = null!;

    public string LiveKey { get; private set; } = "";

    /// <summary>Answers of the Twilio stand-in by destination number (without the whatsapp: prefix); 201 otherwise.</summary>
    public ConcurrentDictionary<string, Func<RecordedRequest, StandInAnswer>> TwilioByNumber { get; } = new();

    public async Task InitializeAsync()
    {
        Smtp = await SmtpStandIn.StartAsync(SmtpUser, SmtpPassword);
        Twilio = await HttpStandIn.StartAsync();
        Twilio.Answer = request =>
        {
            var to = request.Form.GetValueOrDefault("To", "").Replace("whatsapp:", "", StringComparison.Ordinal);
            return TwilioByNumber.TryGetValue(to, out var answer) ? answer(request) : new StandInAnswer(201, """{"sid":"SM0123","status":"queued"}""");
        };
        var settings = Live.BaseSettings();
        Live.AddSmtp(settings, Smtp.Port, SmtpUser, SmtpPassword);
        Live.AddTwilio(settings, Twilio.BaseUrl);
        _server = await Live.StartServerAsync(Db.Sqlite, settings);
        LiveKey = await Live.CreateLiveKeyAsync(Server.BaseAddress, Server.OperatorToken, Server.ApplicationId);
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        await Twilio.DisposeAsync();
        await Smtp.DisposeAsync();
    }
}

public sealed class LiveDeliveryTests(LiveDeliveryFixture fixture) : IClassFixture<LiveDeliveryFixture>
{
    private ApplianceServer Server => fixture.Server;

    private Uri Host => fixture.Server.BaseAddress;

    private string Key => fixture.LiveKey;

    [Fact]
    public async Task An_email_sent_with_a_live_key_reaches_the_smtp_server_and_its_code_verifies()
    {
        // Given a live key and an SMTP server that requires authentication
        var user = Live.NewEmail("ada");

        // When the integrator sends an EMAIL code
        var id = await Live.SendAsync(Host, Key, user, "EMAIL");

        // Then the mail reaches the server, from the configured sender, with the subject and the code
        var mail = await fixture.Smtp.WaitForAsync(user);
        Assert.Equal("codes@devrift.test", mail.From.Mailboxes.Single().Address);
        Assert.Equal("Your Demo verification code", mail.Subject);
        Assert.EndsWith("@devrift.test", mail.MessageId, StringComparison.Ordinal);
        Assert.True(fixture.Smtp.Authentications > 0);
        var code = Live.CodeIn(mail.TextBody ?? "");

        // And the channel is 'sent', the sealed body is gone, and the code verifies
        var (status, _) = await Live.WaitForChannelAsync(Host, Key, id, s => s == "sent");
        Assert.Equal("sent", status);
        var row = await Live.OutboxRowAsync(Server.ConnectionString, id, "EMAIL");
        Assert.Equal("sent", row.Status);
        Assert.Null(row.SealedBody);
        Assert.NotNull(row.SentAt);
        await Live.AssertVerifiesAsync(Host, Key, user, "EMAIL", code);
        LogCapture.Suite.AssertNoneContain([code]);
    }

    [Fact]
    public async Task Sms_whatsapp_and_call_reach_the_twilio_endpoint_with_basic_auth_and_the_right_fields_and_each_code_verifies()
    {
        var basic = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Live.TwilioSid}:{Live.TwilioToken}"));
        var codes = new List<string>();
        foreach (var type in new[] { "SMS", "WHATSAPP", "CALL" })
        {
            // Given a fresh phone number
            var phone = Live.NewPhone();

            // When the integrator sends a code of this type
            var id = await Live.SendAsync(Host, Key, phone, type);

            // Then the Twilio-shaped API receives one request with basic auth and the right form fields
            var request = await fixture.Twilio.WaitForAsync(r => r.Form.GetValueOrDefault("To", "").EndsWith(phone, StringComparison.Ordinal));
            Assert.Equal("POST", request.Method);
            Assert.Equal(basic, request.Header("Authorization"));
            Assert.StartsWith("application/x-www-form-urlencoded", request.Header("Content-Type"), StringComparison.Ordinal);
            var form = request.Form;
            string code;
            switch (type)
            {
                case "SMS":
                    Assert.Equal($"/2010-04-01/Accounts/{Live.TwilioSid}/Messages.json", request.Path);
                    Assert.Equal(phone, form["To"]);
                    Assert.Equal(Live.TwilioFrom, form["From"]);
                    code = Live.CodeIn(form["Body"]);
                    Assert.Contains($"{code} is your Demo verification code", form["Body"], StringComparison.Ordinal);
                    break;
                case "WHATSAPP":
                    Assert.Equal($"/2010-04-01/Accounts/{Live.TwilioSid}/Messages.json", request.Path);
                    Assert.Equal("whatsapp:" + phone, form["To"]);
                    Assert.Equal("whatsapp:" + Live.WhatsAppFrom, form["From"]);
                    code = Live.CodeIn(form["Body"]);
                    break;
                default:
                    Assert.Equal($"/2010-04-01/Accounts/{Live.TwilioSid}/Calls.json", request.Path);
                    Assert.Equal(phone, form["To"]);
                    Assert.Equal(Live.TwilioFrom, form["From"]);
                    var twiml = form["Twiml"];
                    Assert.StartsWith("<Response><Say language=\"en-US\">", twiml, StringComparison.Ordinal);
                    Assert.EndsWith("</Say></Response>", twiml, StringComparison.Ordinal);
                    code = Live.CodeIn(twiml);
                    // The digits are read one by one, twice.
                    var spelled = string.Join(", ", code.ToCharArray());
                    Assert.Equal(2, twiml.Split(spelled).Length - 1);
                    Assert.False(form.ContainsKey("Body"));
                    break;
            }

            // And the channel is 'sent' and the code verifies as PHONE
            await Live.WaitForChannelAsync(Host, Key, id, s => s == "sent");
            await Live.AssertVerifiesAsync(Host, Key, phone, "PHONE", code);
            codes.Add(code);
        }

        LogCapture.Suite.AssertNoneContain(codes);
    }

    [Fact]
    public async Task A_dual_send_reaches_both_the_mail_server_and_the_sms_api_and_either_code_verifies()
    {
        // Given the demo application (enterprise plan) and a user with an email and a phone
        var email = Live.NewEmail("dual");
        var phone = Live.NewPhone();

        // When a DUAL code is sent with a live key
        var id = await Live.SendAsync(Host, Key, $"{email}:{phone}", "DUAL");

        // Then one code goes by mail and one by SMS, both channels are 'sent', and the SMS code verifies
        var mail = await fixture.Smtp.WaitForAsync(email);
        var sms = await fixture.Twilio.WaitForAsync(r => r.Form.GetValueOrDefault("To") == phone);
        var emailCode = Live.CodeIn(mail.TextBody ?? "");
        var smsCode = Live.CodeIn(sms.Form["Body"]);
        await Live.WaitForAsync(() => Live.GetChallengeAsync(Host, Key, id),
            c => c.GetProperty("channels").EnumerateArray().All(ch => ch.GetProperty("status").GetString() == "sent"), "both channels sent");
        await Live.AssertVerifiesAsync(Host, Key, $"{email}:{phone}", "DUAL", smsCode);
        LogCapture.Suite.AssertNoneContain([emailCode, smsCode]);
    }

    [Fact]
    public async Task Backup_codes_sent_with_a_live_key_arrive_by_mail_and_one_verifies()
    {
        // When a live key asks for backup codes for an email user
        var email = Live.NewEmail("backup");
        using (var client = Live.Client(Host, Key))
        using (var response = await client.PostAsync("/v1/mfa/backup", new StringContent($"User={email}, Type=EMAIL", Encoding.UTF8, "application/x-www-form-urlencoded")))
        {
            await Live.ReadAsync(response, HttpStatusCode.Accepted);
        }

        // Then the mail carries the codes (the outbox row has no challenge) and one of them verifies
        var mail = await fixture.Smtp.WaitForAsync(email);
        var codes = (mail.TextBody ?? "").Split('\n').Skip(1).Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
        Assert.Equal(10, codes.Count);
        await Live.WaitForAsync(async () =>
        {
            await using var c = await Live.OpenAsync(Server.ConnectionString);
            return await c.ExecuteScalarAsync<string>("SELECT status FROM outbox WHERE destination = @email AND kind = 'backup_codes'", new { email });
        }, s => s == "sent", "the backup-code message sent");
        using var verify = await Live.VerifyAsync(Host, Key, email, "BACKUP", codes[3]);
        await Live.ReadAsync(verify, HttpStatusCode.OK);
        LogCapture.Suite.AssertNoneContain(codes.Select(c => c.Replace("-", "", StringComparison.Ordinal)).Concat(codes));
    }

    [Fact]
    public async Task A_provider_that_is_down_is_retried_with_backoff_and_the_message_arrives_when_it_returns()
    {
        // Given a provider that answers 503 for this number
        var phone = Live.NewPhone();
        var up = false;
        fixture.TwilioByNumber[phone] = _ => Volatile.Read(ref up)
            ? new StandInAnswer(201, """{"sid":"SM1","status":"queued"}""")
            : new StandInAnswer(503, """{"code":20500,"message":"Service unavailable","status":503}""");
        var id = await Live.SendAsync(Host, Key, phone, "SMS");

        // When it has failed a few times
        await Live.WaitForAsync(() => Task.FromResult(fixture.Twilio.Requests.Count(r => r.Form.GetValueOrDefault("To") == phone)), n => n >= 3, "three attempts");

        // Then the channel shows 'queued' with the reason of the last failure
        var (status, reason) = await Live.WaitForChannelAsync(Host, Key, id, s => s == "queued");
        Assert.Contains("HTTP 503", reason, StringComparison.Ordinal);
        Assert.Contains("retrying", reason, StringComparison.Ordinal);

        // And the attempts were spaced out (backoff), not a tight loop
        var times = fixture.Twilio.Requests.Where(r => r.Form.GetValueOrDefault("To") == phone).Select(r => r.At).Take(3).ToList();
        Assert.True(times[2] - times[1] >= TimeSpan.FromMilliseconds(90), $"attempts {times[1]:O} and {times[2]:O} are too close");

        // When the provider comes back
        Volatile.Write(ref up, true);

        // Then the message is delivered once, the channel is 'sent' and the code verifies
        await Live.WaitForChannelAsync(Host, Key, id, s => s == "sent");
        var delivered = fixture.Twilio.Requests.Where(r => r.Form.GetValueOrDefault("To") == phone).ToList();
        var row = await Live.OutboxRowAsync(Server.ConnectionString, id, "SMS");
        Assert.Equal(delivered.Count, row.Attempts);
        Assert.Null(row.SealedBody);
        var code = Live.CodeIn(delivered[^1].Form["Body"]);
        Assert.All(delivered, r => Assert.Equal(code, Live.CodeIn(r.Form["Body"])));
        await Live.AssertVerifiesAsync(Host, Key, phone, "PHONE", code);
        LogCapture.Suite.AssertNoneContain([code]);
    }

    [Fact]
    public async Task A_number_the_provider_rejects_as_invalid_is_failed_at_once_with_a_clear_reason()
    {
        // Given a provider that refuses this number (Twilio error 21211)
        var phone = Live.NewPhone();
        fixture.TwilioByNumber[phone] = _ => new StandInAnswer(400,
            $$"""{"code":21211,"message":"The 'To' number {{phone}} is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}""");

        // When a code is sent to it
        var id = await Live.SendAsync(Host, Key, phone, "SMS");

        // Then the channel is 'failed' with a reason that says why (and does not quote the provider's text)
        var (status, reason) = await Live.WaitForChannelAsync(Host, Key, id, s => s == "failed");
        Assert.Equal("the provider rejected the number as invalid or unreachable (HTTP 400, Twilio error 21211)", reason);
        Assert.DoesNotContain(phone, reason, StringComparison.Ordinal);

        // And it was tried once, not retried, and the sealed body is deleted
        var row = await Live.OutboxRowAsync(Server.ConnectionString, id, "SMS");
        Assert.Equal(("failed", 1L), (row.Status, row.Attempts));
        Assert.Null(row.SealedBody);
        await Task.Delay(600);
        Assert.Single(fixture.Twilio.Requests, r => r.Form.GetValueOrDefault("To") == phone);
        LogCapture.Suite.AssertNoneContain([Live.CodeIn(fixture.Twilio.Requests.Single(r => r.Form.GetValueOrDefault("To") == phone).Form["Body"])]);
    }

    [Fact]
    public async Task A_recipient_the_mail_server_rejects_is_failed_with_a_clear_reason()
    {
        // Given an address the SMTP server refuses with 550
        var user = Live.NewEmail("reject");

        // When a code is sent to it
        var id = await Live.SendAsync(Host, Key, user, "EMAIL");

        // Then the channel is 'failed' at once, with the reason, and nothing was stored by the server
        var (_, reason) = await Live.WaitForChannelAsync(Host, Key, id, s => s == "failed");
        Assert.Equal("the mail server rejected the recipient (550)", reason);
        var row = await Live.OutboxRowAsync(Server.ConnectionString, id, "EMAIL");
        Assert.Equal(1, row.Attempts);
        Assert.Null(row.SealedBody);
        Assert.Equal(0, fixture.Smtp.CountTo(user));
    }

    [Fact]
    public async Task A_code_replaced_by_a_newer_one_before_delivery_is_not_sent()
    {
        // Given an application without resend cool-down, and a number whose provider is down
        var app = await CreateApplicationAsync("Replace Shop", new { resend_cooldown_seconds = 0 });
        var key = await Live.CreateLiveKeyAsync(Host, Server.OperatorToken, app);
        var phone = Live.NewPhone();
        var up = false;
        fixture.TwilioByNumber[phone] = _ => Volatile.Read(ref up) ? new StandInAnswer(201) : new StandInAnswer(503);
        var first = await Live.SendAsync(Host, key, phone, "SMS");
        await Live.WaitForAsync(() => Task.FromResult(fixture.Twilio.Requests.Count(r => r.Form.GetValueOrDefault("To") == phone)), n => n >= 1, "a first attempt");

        // When a new code replaces it and the provider comes back
        var second = await Live.SendAsync(Host, key, phone, "SMS");
        var (_, reason) = await Live.WaitForChannelAsync(Host, key, first, s => s == "failed");
        Volatile.Write(ref up, true);
        await Live.WaitForChannelAsync(Host, key, second, s => s == "sent");

        // Then the first is 'failed' as no longer pending (body deleted), and only the new code was delivered
        Assert.Equal("not sent: the challenge is no longer pending (canceled)", reason);
        Assert.Null((await Live.OutboxRowAsync(Server.ConnectionString, first, "SMS")).SealedBody);
        var delivered = fixture.Twilio.Requests.Where(r => r.Form.GetValueOrDefault("To") == phone).ToList();
        var code = Live.CodeIn(delivered[^1].Form["Body"]);
        await Live.AssertVerifiesAsync(Host, key, phone, "PHONE", code);
    }

    [Fact]
    public async Task A_live_send_to_a_premium_rate_range_is_refused_before_the_provider_is_called()
    {
        // Given a live key and a working Twilio stand-in (the fraud guard is on by default)
        const string premium = "+449098790000";

        // When the integrator sends SMS and CALL codes to a UK premium-rate number (shipped range +449)
        foreach (var type in new[] { "SMS", "CALL" })
        {
            using var refused = await Live.PostSendAsync(Host, Key, premium, type);
            await refused.AssertProblemAsync(HttpStatusCode.Forbidden, "destination_blocked", "user");
        }

        // Then nothing was queued for it, and a send queued after it reaches the provider while the premium number
        // never did
        var control = Live.NewPhone();
        await Live.SendAsync(Host, Key, control, "SMS");
        await fixture.Twilio.WaitForAsync(r => r.Form.GetValueOrDefault("To") == control);
        Assert.Equal(0, await CountAsync("SELECT COUNT(*) FROM outbox WHERE destination = @premium", new { premium }));
        Assert.Equal(0, await CountAsync("SELECT COUNT(*) FROM challenges WHERE user_key = @premium", new { premium }));
        Assert.DoesNotContain(fixture.Twilio.Requests, r => r.Form.GetValueOrDefault("To", "").Contains(premium, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Test_mode_sends_never_reach_a_provider()
    {
        // Given configured providers and the demo application's test key
        var email = Live.NewEmail("testmode");
        var phone = Live.NewPhone();

        // When the test key sends EMAIL and SMS codes
        var emailId = await Live.SendAsync(Host, Server.TestKey, email, "EMAIL");
        var smsId = await Live.SendAsync(Host, Server.TestKey, phone, "SMS");
        await Task.Delay(800);

        // Then neither provider saw anything, and the rows stay in the test outbox
        Assert.Equal(0, fixture.Smtp.CountTo(email));
        Assert.DoesNotContain(fixture.Twilio.Requests, r => r.Form.GetValueOrDefault("To") == phone);
        Assert.Equal("test", (await Live.OutboxRowAsync(Server.ConnectionString, emailId, "EMAIL")).Status);
        Assert.Equal("test", (await Live.OutboxRowAsync(Server.ConnectionString, smsId, "SMS")).Status);
        Assert.Equal("sent", (await Live.ChannelAsync(Host, Server.TestKey, emailId)).Status);
    }

    [Fact]
    public async Task The_per_application_send_limit_is_429_rate_limited_with_retry_after()
    {
        // Given an application allowed three code sends per hour, with a test and a live key
        var app = await CreateApplicationAsync("Limit Shop", new { sends_per_application_per_hour = 3 });
        var testKey = await CreateKeyAsync(app, "test");
        var liveKey = await Live.CreateLiveKeyAsync(Host, Server.OperatorToken, app);

        // When it sends three codes to three users, then a fourth
        for (var i = 0; i < 3; i++)
        {
            await Live.SendAsync(Host, testKey, Live.NewEmail("limit"), "EMAIL");
        }

        using var fourth = await Live.PostSendAsync(Host, testKey, Live.NewEmail("limit"), "EMAIL");

        // Then the fourth is 429 rate_limited with a Retry-After of at most an hour
        var problem = await Live.ReadAsync(fourth, HttpStatusCode.TooManyRequests);
        Assert.Equal("rate_limited", problem.GetProperty("code").GetString());
        var retryAfter = int.Parse(fourth.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(retryAfter, 3500, 3600);

        // And nothing was written for it; the live mode has its own budget, and other applications are unaffected
        Assert.Equal(3, await CountAsync("SELECT COUNT(*) FROM challenges WHERE application_id = @app AND mode = 'test'", new { app }));
        await Live.SendAsync(Host, liveKey, Live.NewEmail("limit"), "EMAIL");
        await Live.SendAsync(Host, Server.TestKey, Live.NewEmail("limit"), "EMAIL");
    }

    private Task<string> CreateApplicationAsync(string name, object settings) =>
        Live.CreateApplicationAsync(Host, Server.OperatorToken, name, settings);

    private Task<string> CreateKeyAsync(string app, string mode) => Live.CreateKeyAsync(Host, Server.OperatorToken, app, mode);

    private async Task<long> CountAsync(string sql, object parameters)
    {
        await using var connection = await Live.OpenAsync(Server.ConnectionString);
        return await connection.ExecuteScalarAsync<long>(sql, parameters);
    }
}
