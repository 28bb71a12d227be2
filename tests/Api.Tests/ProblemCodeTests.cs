using System.Net;
using System.Net.Http.Headers;
using System.Text;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests;

/// <summary>
/// Every problem code of API.md's error table that the /v1 core produces, by status, <c>code</c> and <c>param</c>.
/// (too_many_attempts, no_pending_challenge after use and idempotency_key_reused are pinned in <see cref="VerificationTests"/>,
/// not_found in <see cref="KeyIsolationTests"/>.)
/// </summary>
public sealed class ProblemCodeTests(FakeClockServers servers) : IClassFixture<FakeClockServers>
{
    private static readonly string[] ClientErrorCodes =
    [
        "invalid_request", "invalid_user", "invalid_phone_number", "invalid_email", "invalid_type", "invalid_code_format",
        "invalid_code", "code_expired", "no_pending_challenge", "not_enrolled", "method_disabled", "plan_required",
    ];

    public static TheoryData<string, string, string?, string> MalformedBodies => new()
    {
        // content type, body, param, path
        { "application/x-www-form-urlencoded", "User ada@example.com, Type=EMAIL", null, "/v1/mfa" },
        { "application/x-www-form-urlencoded", "=ada@example.com, Type=EMAIL", null, "/v1/mfa" },
        { "application/x-www-form-urlencoded", "User=ada@example.com, user=bob@example.com, Type=EMAIL", "user", "/v1/mfa" },
        { "application/x-www-form-urlencoded", "User=ada@example.com&Type=EMAIL&TYPE=SMS", "type", "/v1/mfa" },
        { "application/x-www-form-urlencoded", "User=%FF%FE, Type=EMAIL", null, "/v1/mfa" },
        { "application/json", "[\"ada@example.com\", \"EMAIL\"]", null, "/v1/mfa" },
        { "application/json", "\"User=ada@example.com, Type=EMAIL\"", null, "/v1/mfa" },
        { "application/json", "{\"user\": \"ada@example.com\", ", null, "/v1/mfa" },
        { "application/json", "{\"user\": {\"email\": \"ada@example.com\"}, \"type\": \"EMAIL\"}", "user", "/v1/mfa" },
        { "application/json", "{\"user\": \"ada@example.com\", \"User\": \"bob@example.com\", \"type\": \"EMAIL\"}", "user", "/v1/mfa" },
        { "application/x-www-form-urlencoded", "User=ada@example.com, Type=EMAIL, Code=123456, code=654321", "code", "/v1/mfa/verify" },
        { "application/json", "[]", null, "/v1/mfa/verify" },
    };

    [Theory]
    [MemberData(nameof(MalformedBodies))]
    public async Task Malformed_bodies_are_400_invalid_request(string contentType, string body, string? param, string path)
    {
        // Given a body that is not a set of Name=value pairs or a JSON object of strings
        var server = await servers.GetAsync(Db.Sqlite);

        // When it is posted
        using var response = await server.Client.PostAsync(path, Content.Bytes(body, contentType));

        // Then 400 invalid_request, naming the field when there is one
        var problem = await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", param);
        if (param is null)
        {
            Assert.False(problem.TryGetProperty("param", out _));
        }
    }

    [Theory]
    [InlineData("/v1/mfa", "Type=EMAIL")]
    [InlineData("/v1/mfa", "User=, Type=EMAIL")]
    [InlineData("/v1/mfa", "User=   , Type=SMS")]
    [InlineData("/v1/mfa/verify", "Type=EMAIL, Code=123456")]
    [InlineData("/v1/mfa", "User=ada@example.com, Type=DUAL")]
    [InlineData("/v1/mfa", "User=+14155550123:ada@example.com, Type=DUAL")]
    public async Task A_missing_user_or_a_DUAL_user_not_in_email_phone_form_is_400_invalid_user(string path, string body)
    {
        // Given a body without a usable User
        var server = await servers.GetAsync(Db.Sqlite);

        // When it is posted
        using var response = await server.PostCurlAsync(path, body);

        // Then 400 invalid_user naming 'user'
        await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_user", "user");
    }

    [Theory]
    [InlineData("User=+1234, Type=SMS", "too short for a number in US (+1)")]
    [InlineData("User=+999123456789, Type=SMS", "it does not start with a country calling code")]
    [InlineData("User=+447700900123, Type=SMS", "its length fits GB (+44), but it is not a possible number there")]
    public async Task Phone_numbers_of_E164_shape_that_are_not_valid_say_why(string body, string why)
    {
        var server = await servers.GetAsync(Db.Sqlite);
        using var response = await server.PostCurlAsync("/v1/mfa", body);
        var problem = await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_phone_number", "user");
        Assert.StartsWith($"'user' is not a valid phone number: {why}", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("User=14155550123, Type=SMS")]
    [InlineData("User=+1 415 555 0123, Type=CALL")]
    [InlineData("User=+14155550123x, Type=WHATSAPP")]
    [InlineData("User=+1415555012345678, Type=SMS")]
    [InlineData("User=ada@example.com, Type=SMS")]
    [InlineData("User=ada@example.com:14155550123, Type=DUAL")]
    public async Task Phone_numbers_that_are_not_E164_are_400_invalid_phone_number_showing_the_format(string body)
    {
        // Given a phone number that is not '+' and a valid number of up to 15 digits
        var server = await servers.GetAsync(Db.Sqlite);

        // When it is sent
        using var response = await server.PostCurlAsync("/v1/mfa", body);

        // Then 400 invalid_phone_number naming 'user' and showing the expected format
        var problem = await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_phone_number", "user");
        Assert.Contains("E.164", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/v1/mfa", "User=ada, Type=EMAIL")]
    [InlineData("/v1/mfa", "User=ada@, Type=EMAIL")]
    [InlineData("/v1/mfa", "User=@example.com, Type=EMAIL")]
    [InlineData("/v1/mfa", "User=ada@example, Type=EMAIL")]
    [InlineData("/v1/mfa", "User=ada lovelace@example.com, Type=EMAIL")]
    [InlineData("/v1/mfa", "User=+14155550123, Type=EMAIL")]
    [InlineData("/v1/mfa", "User=ada@example:+14155550123, Type=DUAL")]
    [InlineData("/v1/mfa/verify", "User=ada, Type=EMAIL, Code=123456")]
    public async Task Malformed_email_addresses_are_400_invalid_email(string path, string body)
    {
        // Given an email user that is not name@domain.tld
        var server = await servers.GetAsync(Db.Sqlite);

        // When it is posted
        using var response = await server.PostCurlAsync(path, body);

        // Then 400 invalid_email naming 'user'
        await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_email", "user");
    }

    [Theory]
    [InlineData("/v1/mfa", "User=ada@example.com, Type=FAX")]
    [InlineData("/v1/mfa", "User=ada@example.com")]
    [InlineData("/v1/mfa", "User=ada@example.com, Type=PHONE")]
    [InlineData("/v1/mfa/verify", "User=ada@example.com, Type=FAX, Code=123456")]
    [InlineData("/v1/mfa/verify", "User=+14155550123, Type=SMS, Code=123456")]
    [InlineData("/v1/mfa/verify", "User=ada@example.com, Code=123456")]
    public async Task Unknown_or_missing_types_are_400_invalid_type(string path, string body)
    {
        // Given a Type that the endpoint does not know (verify takes families: PHONE, not SMS)
        var server = await servers.GetAsync(Db.Sqlite);

        // When it is posted
        using var response = await server.PostCurlAsync(path, body);

        // Then 400 invalid_type naming 'type'
        await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_type", "type");
    }

    [Theory]
    [InlineData("Code=abc")]
    [InlineData("Code=123")]
    [InlineData("Code=12345678901")]
    [InlineData("Code=12a456")]
    [InlineData("Code=")]
    [InlineData("Code=１２３４５６")]
    public async Task Codes_that_are_not_4_to_10_digits_are_400_invalid_code_format(string codePair)
    {
        // Given a pending challenge
        var server = await servers.GetAsync(Db.Sqlite);
        var user = TestUsers.NewEmail("format");
        await server.SendAcceptedAsync(user, "EMAIL");

        // When a code that is not 4 to 10 ASCII digits is presented
        using var response = await server.PostCurlAsync("/v1/mfa/verify", $"User={user}, Type=EMAIL, {codePair}");

        // Then 400 invalid_code_format naming 'code', and no attempt was counted
        await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_code_format", "code");
        Assert.Equal(0, await server.CountAsync("SELECT attempts FROM challenges WHERE user_key = @user", new { user }));
    }

    [Fact]
    public async Task Missing_malformed_wrong_and_revoked_keys_are_401_invalid_api_key()
    {
        // Given an application key that has been revoked, and the operator token (which is no API key)
        var server = await servers.GetAsync(Db.Sqlite);
        var revoked = await server.CreateApiKeyAsync(server.ApplicationId, "test");
        using (var admin = server.AdminClient())
        using (var revoke = await admin.DeleteAsync($"/admin/v1/applications/{server.ApplicationId}/api-keys/{revoked.Id}"))
        {
            await revoke.AssertJsonAsync(HttpStatusCode.OK, "api_key");
        }

        // A well-formed key that was never issued: the demo key's id with another secret
        var forged = server.TestKey[..18] + new string('A', 32);
        var presented = new (string Name, AuthenticationHeaderValue? Header)[]
        {
            ("missing", null),
            ("empty bearer", new AuthenticationHeaderValue("Bearer")),
            ("basic", new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.ASCII.GetBytes(server.TestKey + ":")))),
            ("not a key", new AuthenticationHeaderValue("Bearer", "sk_test_123")),
            ("forged secret", new AuthenticationHeaderValue("Bearer", forged)),
            ("unknown id", new AuthenticationHeaderValue("Bearer", "sk_test_" + new string('B', 42))),
            ("wrong mode prefix", new AuthenticationHeaderValue("Bearer", "sk_live_" + server.TestKey["sk_test_".Length..])),
            ("operator token", new AuthenticationHeaderValue("Bearer", server.OperatorToken)),
            ("revoked", new AuthenticationHeaderValue("Bearer", revoked.Secret)),
        };

        foreach (var (name, header) in presented)
        {
            // When each is presented on a send, a verify and a read
            using var client = server.NewClient(null);
            client.DefaultRequestHeaders.Authorization = header;
            foreach (var request in new Func<Task<HttpResponseMessage>>[]
            {
                () => client.PostAsync("/v1/mfa", Content.Bytes("User=ada@example.com, Type=EMAIL", "application/x-www-form-urlencoded")),
                () => client.PostAsync("/v1/mfa/verify", Content.Bytes("User=ada@example.com, Type=EMAIL, Code=123456", "application/x-www-form-urlencoded")),
                () => client.GetAsync("/v1/mfa/mfa_000000000000000000000000"),
                () => client.GetAsync("/v1/test/messages?user=ada@example.com"),
            })
            {
                using var response = await request();

                // Then 401 invalid_api_key with a Bearer challenge
                Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{name}: {(int)response.StatusCode}");
                await response.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
                Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
            }
        }
    }

    [Fact]
    public async Task A_wrong_code_is_401_invalid_code_with_the_attempts_remaining()
    {
        // Given a pending SMS challenge
        var server = await servers.GetAsync(Db.Sqlite);
        var phone = TestUsers.NewPhone();
        await server.SendAcceptedAsync(phone, "SMS");
        var code = await server.LatestCodeAsync(phone, "SMS");

        // When a wrong code is presented
        using var response = await server.VerifyCodeAsync(phone, "PHONE", ApiTestExtensions.WrongCode(code));

        // Then 401 invalid_code naming 'code', with 4 of 5 attempts left
        var problem = await response.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_code", "code");
        Assert.Equal(4, problem.GetProperty("attempts_remaining").GetInt32());
    }

    [Fact]
    public async Task A_code_presented_after_its_600_s_lifetime_is_401_code_expired()
    {
        // Given a code sent 600 s ago (the default lifetime)
        var server = await servers.GetAsync(Db.Sqlite);
        var user = TestUsers.NewEmail("expired");
        await server.SendAcceptedAsync(user, "EMAIL");
        var code = await server.LatestCodeAsync(user, "EMAIL");
        server.Clock!.Advance(TimeSpan.FromSeconds(601));

        // When it is presented
        using var response = await server.VerifyCodeAsync(user, "EMAIL", code);

        // Then 401 code_expired
        await response.AssertProblemAsync(HttpStatusCode.Unauthorized, "code_expired", "code");
    }

    [Theory]
    [InlineData(null, "EMAIL")]
    [InlineData(null, "PHONE")]
    [InlineData(null, "DUAL")]
    [InlineData("DUAL", "EMAIL")]
    [InlineData("DUAL", "PHONE")]
    public async Task Verifying_a_family_never_sent_to_the_user_is_401_no_pending_challenge(string? sentType, string verifyType)
    {
        // Given a user who received nothing, or only a DUAL code (DUAL is a family of its own)
        var server = await servers.GetAsync(Db.Sqlite);
        var email = TestUsers.NewEmail("nothing");
        var phone = TestUsers.NewPhone();
        if (sentType == "DUAL")
        {
            await server.SendAcceptedAsync($"{email}:{phone}", "DUAL");
        }

        var user = verifyType switch { "EMAIL" => email, "PHONE" => phone, _ => $"{email}:{phone}" };

        // When a code is verified for them
        using var response = await server.VerifyCodeAsync(user, verifyType, "123456");

        // Then 401 no_pending_challenge naming 'user'
        await response.AssertProblemAsync(HttpStatusCode.Unauthorized, "no_pending_challenge", "user");
    }

    [Fact]
    public async Task A_method_left_out_of_enabled_methods_is_403_method_disabled()
    {
        // Given an application whose settings enable EMAIL only (PATCH /admin/v1/applications/{id}/settings)
        var server = await servers.GetAsync(Db.Sqlite);
        var (_, key) = await server.CreateApplicationWithKeyAsync("Email Only", "enterprise", new { enabled_methods = new[] { "EMAIL" } });
        var phone = TestUsers.NewPhone();

        // When it sends SMS, CALL and DUAL, and verifies PHONE
        using var sms = await server.SendCodeAsync(phone, "SMS", key);
        using var call = await server.SendCodeAsync(phone, "CALL", key);
        using var dual = await server.SendCodeAsync($"{TestUsers.NewEmail()}:{phone}", "DUAL", key);
        using var verify = await server.VerifyCodeAsync(phone, "PHONE", "123456", key);

        // Then each is 403 method_disabled naming 'type', and nothing was queued
        await sms.AssertProblemAsync(HttpStatusCode.Forbidden, "method_disabled", "type");
        await call.AssertProblemAsync(HttpStatusCode.Forbidden, "method_disabled", "type");
        await dual.AssertProblemAsync(HttpStatusCode.Forbidden, "method_disabled", "type");
        await verify.AssertProblemAsync(HttpStatusCode.Forbidden, "method_disabled", "type");
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM outbox WHERE destination = @phone", new { phone }));

        // And EMAIL still works
        await server.SendAcceptedAsync(TestUsers.NewEmail(), "EMAIL", key);
    }

    [Fact]
    public async Task DUAL_on_a_standard_plan_application_is_403_plan_required()
    {
        // Given a standard-plan application and its test key, both made through the operator API
        var server = await servers.GetAsync(Db.Sqlite);
        var applicationId = await server.CreateApplicationAsync("Standard Shop", "standard");
        var key = await server.CreateApiKeyAsync(applicationId, "test");
        var user = $"{TestUsers.NewEmail("std")}:{TestUsers.NewPhone()}";

        // When the key sends and verifies DUAL
        using var send = await server.SendCodeAsync(user, "DUAL", key.Secret);
        using var verify = await server.VerifyCodeAsync(user, "DUAL", "123456", key.Secret);

        // Then both are 403 plan_required naming 'type'
        await send.AssertProblemAsync(HttpStatusCode.Forbidden, "plan_required", "type");
        await verify.AssertProblemAsync(HttpStatusCode.Forbidden, "plan_required", "type");

        // And the same key sends SMS (the key is fine; only DUAL needs the plan)
        await server.SendAcceptedAsync(TestUsers.NewPhone(), "SMS", key.Secret);
    }

    [Fact]
    public async Task The_test_outbox_read_with_a_live_key_is_403_live_mode_forbidden()
    {
        // Given a live key of the demo application
        var server = await servers.GetAsync(Db.Sqlite);
        var live = await server.CreateApiKeyAsync(server.ApplicationId, "live");

        // When it reads the test outbox
        using var client = server.NewClient(live.Secret);
        using var response = await client.GetAsync("/v1/test/messages?user=ada@example.com");

        // Then 403 live_mode_forbidden
        await response.AssertProblemAsync(HttpStatusCode.Forbidden, "live_mode_forbidden");
    }

    [Theory]
    [InlineData("/v1/mfa", false)]
    [InlineData("/v1/mfa", true)]
    [InlineData("/v1/mfa/verify", false)]
    [InlineData("/v1/mfa/verify", true)]
    public async Task A_body_over_16_KiB_is_413_payload_too_large(string path, bool chunked)
    {
        // Given a 17 KiB body, with a Content-Length or chunked
        var server = await servers.GetAsync(Db.Sqlite);
        var user = TestUsers.NewEmail("big");
        var body = Encoding.ASCII.GetBytes($"User={user}, Type=EMAIL, Code=123456, Padding=" + new string('x', 17 * 1024));
        HttpContent content = chunked ? new StreamContent(new NonSeekableStream(body)) : new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/x-www-form-urlencoded");

        // When it is posted
        using var response = await server.Client.PostAsync(path, content);

        // Then 413 payload_too_large, and nothing was sent
        await response.AssertProblemAsync(HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM outbox WHERE destination = @user", new { user }));
    }

    [Theory]
    [InlineData("text/xml", "<mfa><user>ada@example.com</user><type>EMAIL</type></mfa>")]
    [InlineData("application/xml", "<mfa/>")]
    [InlineData("multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"User\"\r\n\r\nada@example.com\r\n--x--\r\n")]
    public async Task An_unknown_content_type_is_415_unsupported_media_type(string contentType, string body)
    {
        // Given a body in a media type the API does not take
        var server = await servers.GetAsync(Db.Sqlite);

        // When it is posted to send and to verify
        using var send = await server.Client.PostAsync("/v1/mfa", Content.Bytes(body, contentType));
        using var verify = await server.Client.PostAsync("/v1/mfa/verify", Content.Bytes(body, contentType));

        // Then 415 unsupported_media_type
        await send.AssertProblemAsync(HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
        await verify.AssertProblemAsync(HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
    }

    [Fact]
    public async Task Sends_inside_the_30_s_cool_down_or_beyond_5_per_10_minutes_are_429_rate_limited_with_Retry_After()
    {
        // Given a first code to a phone at t0
        var server = await servers.GetAsync(Db.Sqlite);
        var clock = server.Clock!;
        var phone = TestUsers.NewPhone();
        await server.SendAcceptedAsync(phone, "SMS");

        // When a second is asked for at once
        using (var tooSoon = await server.SendCodeAsync(phone, "SMS"))
        {
            // Then 429 rate_limited naming 'user', Retry-After the 30 s cool-down
            await tooSoon.AssertProblemAsync(HttpStatusCode.TooManyRequests, "rate_limited", "user");
            Assert.Equal(TimeSpan.FromSeconds(30), tooSoon.Headers.RetryAfter?.Delta);
        }

        // And a resend inside the cool-down on another phone channel (same family) is refused too
        clock.Advance(TimeSpan.FromSeconds(29));
        using (var call = await server.SendCodeAsync(phone, "CALL"))
        {
            await call.AssertProblemAsync(HttpStatusCode.TooManyRequests, "rate_limited", "user");
            Assert.Equal(TimeSpan.FromSeconds(1), call.Headers.RetryAfter?.Delta);
        }

        // When sends are spaced past the cool-down (t0+31 s, +62 s, +93 s, +124 s), all 5 are accepted
        for (var i = 0; i < 4; i++)
        {
            clock.Advance(TimeSpan.FromSeconds(i == 0 ? 2 : 31));
            await server.SendAcceptedAsync(phone, "SMS");
        }

        // And the 6th inside the 10-minute window (t0+155 s) is 429 with Retry-After until the first send leaves the window
        clock.Advance(TimeSpan.FromSeconds(31));
        using (var sixth = await server.SendCodeAsync(phone, "SMS"))
        {
            var problem = await sixth.AssertProblemAsync(HttpStatusCode.TooManyRequests, "rate_limited", "user");
            Assert.Equal(TimeSpan.FromSeconds(600 - 155), sixth.Headers.RetryAfter?.Delta);
            Assert.Equal(600 - 155, problem.GetProperty("retry_after").GetInt32());
        }

        Assert.Equal(5, await server.CountAsync("SELECT COUNT(*) FROM outbox WHERE destination = @phone", new { phone }));

        // And once Retry-After has passed, a send is accepted again
        clock.Advance(TimeSpan.FromSeconds(600 - 155));
        await server.SendAcceptedAsync(phone, "SMS");
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_live_send_on_a_channel_without_a_provider_is_503_channel_not_configured_and_writes_nothing(Db db)
    {
        // Given a live key and no delivery provider configured
        var server = await servers.GetAsync(db);
        var live = await server.CreateApiKeyAsync(server.ApplicationId, "live");
        var email = TestUsers.NewEmail("live");
        var phone = TestUsers.NewPhone();
        var before = await server.SendTableCountsAsync();

        // When it sends EMAIL, SMS and DUAL (one with an Idempotency-Key)
        using var client = server.NewClient(live.Secret);
        using var emailRequest = new HttpRequestMessage(HttpMethod.Post, "/v1/mfa") { Content = Content.Bytes($"User={email}, Type=EMAIL", "application/x-www-form-urlencoded") };
        emailRequest.Headers.Add("Idempotency-Key", "live-" + Guid.NewGuid());
        using var emailSend = await client.SendAsync(emailRequest);
        using var smsSend = await server.SendCodeAsync(phone, "SMS", live.Secret);
        using var dualSend = await server.SendCodeAsync($"{email}:{phone}", "DUAL", live.Secret);

        // Then each is 503 channel_not_configured
        await emailSend.AssertProblemAsync(HttpStatusCode.ServiceUnavailable, "channel_not_configured", "type");
        await smsSend.AssertProblemAsync(HttpStatusCode.ServiceUnavailable, "channel_not_configured", "type");
        await dualSend.AssertProblemAsync(HttpStatusCode.ServiceUnavailable, "channel_not_configured", "type");

        // And no row was written: no challenge, no outbox message, no send counter, no idempotency record
        Assert.Equal(before, await server.SendTableCountsAsync());
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM outbox WHERE mode = 'live' OR destination IN (@email, @phone)", new { email, phone }));
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM challenges WHERE mode = 'live' OR user_key IN (@email, @phone)", new { email, phone }));
    }

    [Fact]
    public async Task An_Idempotency_Key_over_255_characters_is_400_invalid_request()
    {
        // Given a send whose Idempotency-Key is 256 characters long
        var server = await servers.GetAsync(Db.Sqlite);
        var user = TestUsers.NewEmail("longkey");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/mfa") { Content = Content.Bytes($"User={user}, Type=EMAIL", "application/x-www-form-urlencoded") };
        request.Headers.Add("Idempotency-Key", new string('k', 256));

        // When it is posted
        using var response = await server.Client.SendAsync(request);

        // Then 400 invalid_request naming the header, and nothing was sent
        await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "Idempotency-Key");
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM outbox WHERE destination = @user", new { user }));
    }

    [Theory]
    [InlineData("/v1/mfa", "application/x-www-form-urlencoded", "User=%, Type=%%")]
    [InlineData("/v1/mfa", "application/x-www-form-urlencoded", "User==, Type==, ==")]
    [InlineData("/v1/mfa", "application/x-www-form-urlencoded", "User=%00ada@example.com, Type=EMAIL")]
    [InlineData("/v1/mfa", "application/x-www-form-urlencoded", "User=ada@example.com\u0000, Type=EMAIL")]
    [InlineData("/v1/mfa", "application/x-www-form-urlencoded", "User=ada@example.com:+14155550123:+14155550123, Type=DUAL")]
    [InlineData("/v1/mfa", "application/x-www-form-urlencoded", "User=a@b.c:, Type=DUAL")]
    [InlineData("/v1/mfa", "application/x-www-form-urlencoded", "User=+, Type=SMS")]
    [InlineData("/v1/mfa", "application/x-www-form-urlencoded", ",,,&&&,,,")]
    [InlineData("/v1/mfa", "application/x-www-form-urlencoded", "User=ada@example.com, Type=EMAIL, Locale=%FF")]
    [InlineData("/v1/mfa", "application/json", "{\"user\": null, \"type\": null}")]
    [InlineData("/v1/mfa", "application/json", "{\"user\": 1e400, \"type\": \"SMS\"}")]
    [InlineData("/v1/mfa", "application/json", "{\"user\": true, \"type\": \"SMS\"}")]
    [InlineData("/v1/mfa", "application/json", "")]
    [InlineData("/v1/mfa", "application/json", "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}")]
    [InlineData("/v1/mfa/verify", "application/x-www-form-urlencoded", "User=ada@example.com, Type=EMAIL, Code=99999999999999999999999999")]
    [InlineData("/v1/mfa/verify", "application/json", "{\"user\": \"ada@example.com\", \"type\": \"EMAIL\", \"code\": -1.5e3}")]
    [InlineData("/v1/mfa/verify", "application/json", "{\"user\": \"ada@example.com\", \"type\": \"KEY\", \"credential\": 5}")]
    [InlineData("/v1/mfa/verify", "text/plain", "User=+14155550123, Type=PHONE, Code=- - - -")]
    public async Task Garbage_is_answered_with_a_4xx_problem_and_never_a_5xx(string path, string contentType, string body)
    {
        // Given a body no integrator should send
        var server = await servers.GetAsync(Db.Sqlite);

        // When it is posted
        using var response = await server.Client.PostAsync(path, Content.Bytes(body, contentType));

        // Then a 4xx problem with a code from API.md's table
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode is >= 400 and < 500, $"{(int)response.StatusCode}: {text}");
        var problem = await response.AssertProblemAsync(response.StatusCode, System.Text.Json.JsonDocument.Parse(text).RootElement.GetProperty("code").GetString()!);
        Assert.Contains(problem.GetProperty("code").GetString(), ClientErrorCodes);
    }

    [Theory]
    [InlineData("GET", "/v1/test/messages")]
    [InlineData("GET", "/v1/test/messages?user=")]
    [InlineData("GET", "/v1/test/messages?user=not%20a%20user")]
    [InlineData("GET", "/v1/mfa/%20")]
    public async Task Garbage_queries_are_answered_with_a_4xx_problem_and_never_a_5xx(string method, string path)
    {
        // Given a malformed read
        var server = await servers.GetAsync(Db.Sqlite);

        // When it is sent
        using var response = await server.Client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));

        // Then a 4xx problem
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode is >= 400 and < 500, $"{(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    /// <summary>A stream without a length, so that HttpClient sends it chunked.</summary>
    private sealed class NonSeekableStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }
}
