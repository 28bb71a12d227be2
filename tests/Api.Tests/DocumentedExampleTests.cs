using System.Net;
using System.Text;
using System.Text.Json;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests;

/// <summary>
/// The curl examples at the top of API.md, sent as curl sends them (host replaced, placeholders filled in), and the
/// two other encodings of the same requests. The <c>/v1/mfa/backup</c> examples belong to the backup-code suite.
/// </summary>
public sealed class DocumentedExampleTests(SystemClockServers servers) : IClassFixture<SystemClockServers>
{
    private const string Email = "ada@example.com";
    private const string Phone = "+14155550123";

    [Fact]
    public async Task Documented_SMS_send_sent_as_raw_curl_bytes_is_accepted_with_the_plus_kept_and_its_code_verifies_as_PHONE()
    {
        // Given the exact bytes curl 7.88.1 writes for: curl -X POST $HOST/v1/mfa -H "Authorization: Bearer sk_test_…" -d "User=+14155550123, Type=SMS"
        var server = await servers.GetAsync(Db.Sqlite);
        const string body = "User=+14155550123, Type=SMS";
        var request = Encoding.ASCII.GetBytes(
            "POST /v1/mfa HTTP/1.1\r\n" +
            $"Host: {server.BaseAddress.Authority}\r\n" +
            "User-Agent: curl/7.88.1\r\n" +
            "Accept: */*\r\n" +
            $"Authorization: Bearer {server.TestKey}\r\n" +
            $"Content-Length: {Encoding.ASCII.GetByteCount(body)}\r\n" +
            "Content-Type: application/x-www-form-urlencoded\r\n" +
            "\r\n" +
            body);

        // When they go over a plain TCP connection
        var response = await RawHttp.SendAsync(server.BaseAddress, request);

        // Then 202 with a pending SMS challenge for "+14155550123" (the '+' was not decoded into a space)
        Assert.True(response.Status == 202, $"expected 202, got {response.Status}: {response.Body}");
        using var doc = JsonDocument.Parse(response.Body);
        var challenge = doc.RootElement;
        Assert.Equal("challenge", challenge.GetProperty("object").GetString());
        Assert.Equal(Phone, challenge.GetProperty("user").GetString());
        Assert.Equal("SMS", challenge.GetProperty("type").GetString());
        Assert.Equal("pending", challenge.GetProperty("status").GetString());
        Assert.False(challenge.GetProperty("livemode").GetBoolean());
        var id = challenge.GetProperty("id").GetString()!;
        Assert.StartsWith("mfa_", id, StringComparison.Ordinal);
        Assert.Equal($"/v1/mfa/{id}", response.Headers["Location"]);
        var channel = Assert.Single(challenge.GetProperty("channels").EnumerateArray());
        Assert.Equal(Phone, channel.GetProperty("to").GetString());

        // And the code went to the test outbox, not into the response
        var code = await server.LatestCodeAsync(Phone, "SMS");
        Assert.Matches("^[0-9]{6}$", code);
        Assert.DoesNotContain(code, response.Body, StringComparison.Ordinal);

        // And the documented PHONE verify example accepts it
        using var verify = await server.PostCurlAsync("/v1/mfa/verify", $"User={Phone}, Type=PHONE, Code={code}");
        var verification = await verify.AssertJsonAsync(HttpStatusCode.OK, "verification");
        Assert.True(verification.GetProperty("valid").GetBoolean());
        Assert.Equal(Phone, verification.GetProperty("user").GetString());
        Assert.Equal("PHONE", verification.GetProperty("type").GetString());
    }

    [Fact]
    public async Task Documented_EMAIL_send_and_verify_examples_work_as_written()
    {
        // Given the documented EMAIL send
        var server = await servers.GetAsync(Db.Sqlite);
        using var send = await server.PostCurlAsync("/v1/mfa", $"User={Email}, Type=EMAIL");
        var sendBody = await send.Content.ReadAsStringAsync();
        var challenge = await send.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");
        Assert.Equal(Email, challenge.GetProperty("user").GetString());
        Assert.Equal("EMAIL", challenge.GetProperty("type").GetString());
        var code = await server.LatestCodeAsync(Email, "EMAIL");
        Assert.DoesNotContain(code, sendBody, StringComparison.Ordinal);

        // When the documented EMAIL verify example carries the code from the test outbox
        using var verify = await server.PostCurlAsync("/v1/mfa/verify", $"User={Email}, Type=EMAIL, Code={code}");

        // Then it is a valid verification
        var verification = await verify.AssertJsonAsync(HttpStatusCode.OK, "verification");
        Assert.True(verification.GetProperty("valid").GetBoolean());
        Assert.Equal(Email, verification.GetProperty("user").GetString());
        Assert.Equal("EMAIL", verification.GetProperty("type").GetString());
        Assert.False(verification.GetProperty("livemode").GetBoolean());
        Assert.Equal("no-store", verify.Headers.CacheControl?.ToString());
    }

    [Theory]
    [InlineData("EMAIL")]
    [InlineData("SMS")]
    public async Task Documented_DUAL_send_and_verify_examples_work_as_written(string channelOfTheCode)
    {
        // Given the documented DUAL send (the second case uses fresh contacts: it must not wait out the cool-down)
        var server = await servers.GetAsync(Db.Sqlite);
        var user = channelOfTheCode == "EMAIL" ? $"{Email}:{Phone}" : $"{TestUsers.NewEmail("dual")}:{TestUsers.NewPhone()}";
        using var send = await server.PostCurlAsync("/v1/mfa", $"User={user}, Type=DUAL");
        var sendBody = await send.Content.ReadAsStringAsync();
        var challenge = await send.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");
        Assert.Equal(user, challenge.GetProperty("user").GetString());
        Assert.Equal(["EMAIL", "SMS"], challenge.GetProperty("channels").EnumerateArray().Select(c => c.GetProperty("channel").GetString()).Order());
        var code = await server.LatestCodeAsync(user, channelOfTheCode);
        Assert.DoesNotContain(code, sendBody, StringComparison.Ordinal);

        // When the documented DUAL verify example carries the code of one channel
        using var verify = await server.PostCurlAsync("/v1/mfa/verify", $"User={user}, Type=DUAL, Code={code}");

        // Then it is a valid verification of the DUAL user
        var verification = await verify.AssertJsonAsync(HttpStatusCode.OK, "verification");
        Assert.True(verification.GetProperty("valid").GetBoolean());
        Assert.Equal(user, verification.GetProperty("user").GetString());
        Assert.Equal("DUAL", verification.GetProperty("type").GetString());
    }

    [Fact]
    public async Task Documented_APP_verify_example_works_as_written_for_an_enrolled_authenticator()
    {
        // Given an authenticator app enrolled for the user (POST /v1/mfa/app) and its current TOTP code
        var server = await servers.GetAsync(Db.Sqlite);
        using var enrol = await server.PostCurlAsync("/v1/mfa/app", $"User={Email}");
        var enrolment = await enrol.AssertJsonAsync(HttpStatusCode.OK);
        var secret = enrolment.GetProperty("secret").GetString()!;
        var code = new OtpNet.Totp(OtpNet.Base32Encoding.ToBytes(secret)).ComputeTotp(DateTime.UtcNow);

        // When the documented APP verify example carries it
        using var verify = await server.PostCurlAsync("/v1/mfa/verify", $"User={Email}, Type=APP, Code={code}");

        // Then it is a valid verification
        var verification = await verify.AssertJsonAsync(HttpStatusCode.OK, "verification");
        Assert.True(verification.GetProperty("valid").GetBoolean());
        Assert.Equal(Email, verification.GetProperty("user").GetString());
        Assert.Equal("APP", verification.GetProperty("type").GetString());
    }

    [Theory]
    [InlineData("EMAIL", "EMAIL")]
    [InlineData("SMS", "PHONE")]
    [InlineData("WHATSAPP", "PHONE")]
    [InlineData("CALL", "PHONE")]
    [InlineData("DUAL", "DUAL")]
    public async Task Json_bodies_send_and_verify_like_the_documented_form(string sendType, string verifyType)
    {
        // Given a JSON send
        var server = await servers.GetAsync(Db.Sqlite);
        var user = sendType switch
        {
            "EMAIL" => TestUsers.NewEmail("json"),
            "DUAL" => $"{TestUsers.NewEmail("json")}:{TestUsers.NewPhone()}",
            _ => TestUsers.NewPhone(),
        };
        using var send = await server.PostJsonAsync("/v1/mfa", new { user, type = sendType });
        var sendBody = await send.Content.ReadAsStringAsync();
        var challenge = await send.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");
        Assert.Equal(user, challenge.GetProperty("user").GetString());
        Assert.Equal(sendType, challenge.GetProperty("type").GetString());
        var code = await server.LatestCodeAsync(user, sendType == "DUAL" ? "SMS" : sendType);
        Assert.DoesNotContain(code, sendBody, StringComparison.Ordinal);

        // When a JSON verify carries the code
        using var verify = await server.PostJsonAsync("/v1/mfa/verify", new { user, type = verifyType, code });

        // Then it is valid
        var verification = await verify.AssertJsonAsync(HttpStatusCode.OK, "verification");
        Assert.True(verification.GetProperty("valid").GetBoolean());
        Assert.Equal(verifyType, verification.GetProperty("type").GetString());
    }

    [Fact]
    public async Task Url_encoded_form_with_an_encoded_plus_sends_and_verifies()
    {
        // Given an ordinary URL-encoded send: User=%2B1415555…&Type=SMS
        var server = await servers.GetAsync(Db.Sqlite);
        var phone = TestUsers.NewPhone();
        var encoded = Uri.EscapeDataString(phone);
        Assert.StartsWith("%2B", encoded, StringComparison.Ordinal);
        using var send = await server.PostCurlAsync("/v1/mfa", $"User={encoded}&Type=SMS");
        var challenge = await send.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");
        Assert.Equal(phone, challenge.GetProperty("user").GetString());

        // When the verify is URL-encoded too
        var code = await server.LatestCodeAsync(phone, "SMS");
        using var verify = await server.PostCurlAsync("/v1/mfa/verify", $"User={encoded}&Type=PHONE&Code={code}");

        // Then it is valid
        var verification = await verify.AssertJsonAsync(HttpStatusCode.OK, "verification");
        Assert.Equal(phone, verification.GetProperty("user").GetString());
    }

    [Fact]
    public async Task Field_names_and_types_are_case_insensitive_and_emails_compare_ignoring_case()
    {
        // Given lower-case names and types: user=…, type=sms
        var server = await servers.GetAsync(Db.Sqlite);
        var phone = TestUsers.NewPhone();
        using var send = await server.PostCurlAsync("/v1/mfa", $"user={phone}, type=sms");
        var challenge = await send.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");
        Assert.Equal("SMS", challenge.GetProperty("type").GetString());
        var code = await server.LatestCodeAsync(phone, "SMS");

        // When the verify shouts and mixes case
        using var verify = await server.PostCurlAsync("/v1/mfa/verify", $"USER={phone}, tYpE=Phone, cOdE={code}");

        // Then it is valid
        await verify.AssertJsonAsync(HttpStatusCode.OK, "verification");

        // And an email sent as Grace@Example.COM is the same user as grace@example.com
        var local = TestUsers.NewEmail("grace");
        var mixed = char.ToUpperInvariant(local[0]) + local[1..].Replace("example.com", "Example.COM", StringComparison.Ordinal);
        using var mixedSend = await server.PostCurlAsync("/v1/mfa", $"User={mixed}, Type=Email");
        var mixedChallenge = await mixedSend.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");
        Assert.Equal(local, mixedChallenge.GetProperty("user").GetString());
        var emailCode = await server.LatestCodeAsync(local, "EMAIL");
        using var emailVerify = await server.PostJsonAsync("/v1/mfa/verify", new { USER = local, Type = "email", CODE = emailCode });
        await emailVerify.AssertJsonAsync(HttpStatusCode.OK, "verification");
    }

    [Theory]
    [InlineData("fr-FR", "est votre code de vérification")]
    [InlineData("de", "ist Ihr")]
    [InlineData("es", "es tu código")]
    [InlineData("pt-BR", "is your")]
    public async Task An_optional_Locale_chooses_the_message_language_falling_back_to_English(string locale, string expected)
    {
        // Given a send with a Locale
        var server = await servers.GetAsync(Db.Sqlite);
        var phone = TestUsers.NewPhone();
        using var send = await server.PostCurlAsync("/v1/mfa", $"User={phone}, Type=SMS, Locale={locale}");
        await send.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");

        // When the message is read from the test outbox
        using var response = await server.Client.GetAsync($"/v1/test/messages?user={Uri.EscapeDataString(phone)}");

        // Then it is in that language (English when the language is not offered)
        var message = Assert.Single((await response.AssertJsonAsync(HttpStatusCode.OK, "list")).GetProperty("data").EnumerateArray());
        Assert.Contains(expected, message.GetProperty("body").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_test_outbox_lists_messages_newest_first_with_their_fields()
    {
        // Given two codes sent to one email (EMAIL, then DUAL through the same address)
        var server = await servers.GetAsync(Db.Sqlite);
        var email = TestUsers.NewEmail("outbox");
        await server.SendAcceptedAsync(email, "EMAIL");
        await server.SendAcceptedAsync($"{email}:{TestUsers.NewPhone()}", "DUAL");

        // When the test outbox is read for the email alone
        using var response = await server.Client.GetAsync($"/v1/test/messages?user={Uri.EscapeDataString(email)}");

        // Then both email messages are listed, newest first, each with id, channel, to, body, created_at
        var list = await response.AssertJsonAsync(HttpStatusCode.OK, "list");
        var data = list.GetProperty("data").EnumerateArray().ToList();
        Assert.Equal(2, data.Count);
        foreach (var m in data)
        {
            Assert.Equal("EMAIL", m.GetProperty("channel").GetString());
            Assert.Equal(email, m.GetProperty("to").GetString());
            Assert.StartsWith("msg_", m.GetProperty("id").GetString(), StringComparison.Ordinal);
            Assert.Matches("[0-9]{6}", m.GetProperty("body").GetString()!);
        }

        Assert.True(data[0].GetProperty("created_at").GetDateTime() >= data[1].GetProperty("created_at").GetDateTime());
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
    }
}
