using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using DevRift.Hsm.Api.Tests.Factors;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.SecurityKeys;

/// <summary>
/// Security keys through the real host (SoftHSM2, SQLite; PostgreSQL where named), driven by an independent software
/// authenticator: registration, verification with Type=KEY, several keys, removal, and every forgery refused.
/// </summary>
public sealed class SecurityKeyTests(FakeClockServers servers) : IClassFixture<FakeClockServers>
{
    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_software_key_registers_and_verifies_with_Type_KEY(Db db)
    {
        // Given a user with no key
        var server = await servers.GetAsync(db);
        var user = SecurityKeyApi.NewUser("key");
        using var key = server.NewAuthenticator();

        // When registration options are requested
        var creation = await server.RegistrationOptionsAsync(user);

        // Then they are WebAuthn creation options for relying party localhost, ES256 first, with a fresh HSM challenge
        // of at least 16 bytes stored server-side with its expiry
        Assert.Equal("localhost", creation.GetProperty("rp").GetProperty("id").GetString());
        Assert.Equal(user, creation.GetProperty("user").GetProperty("name").GetString());
        Assert.Equal(32, Base64UrlText.Decode(creation.GetProperty("user").GetProperty("id").GetString()!).Length);
        Assert.Equal(-7, creation.GetProperty("pubKeyCredParams")[0].GetProperty("alg").GetInt32());
        Assert.Equal("none", creation.GetProperty("attestation").GetString());
        Assert.Equal(300_000, creation.GetProperty("timeout").GetInt32());
        var challenge = creation.GetProperty("challenge").GetString()!;
        Assert.True(Base64UrlText.Decode(challenge).Length >= 16);
        var now = server.Clock!.GetUtcNow().ToUnixTimeMilliseconds();
        Assert.Equal(1, await server.CountAsync(
            "SELECT COUNT(*) FROM webauthn_ceremonies WHERE challenge = @challenge AND kind = 'registration' AND user_key IN (SELECT identity_id FROM identity_contacts WHERE value = @user) AND used_at IS NULL AND created_at = @now AND expires_at = @expires",
            new { challenge, user, now, expires = now + 300_000 }));

        // When the authenticator's attestation is posted
        using var registered = await server.PostRegistrationAsync(user, key.Register(creation));

        // Then 201 security_key, and the row holds the credential with counter 0, the ceremony is used
        var body = await registered.AssertJsonAsync(HttpStatusCode.Created, "security_key");
        var id = body.GetProperty("id").GetString()!;
        Assert.StartsWith("key_", id, StringComparison.Ordinal);
        Assert.Equal(user, body.GetProperty("user").GetString());
        Assert.Equal(key.CredentialIdText, body.GetProperty("credential_id").GetString());
        Assert.Equal(["usb"], body.GetProperty("transports").EnumerateArray().Select(t => t.GetString()!));
        Assert.Equal(Guid.Empty.ToString(), body.GetProperty("aaguid").GetString());
        Assert.False(body.TryGetProperty("last_used_at", out _), "never used: no last_used_at");
        Assert.False(body.GetProperty("livemode").GetBoolean());
        Assert.Equal(0, await server.ScalarAsync<long>("SELECT sign_count FROM security_keys WHERE id = @id AND user_key IN (SELECT identity_id FROM identity_contacts WHERE value = @user) AND attestation = 'none'", new { id, user }));
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM webauthn_ceremonies WHERE challenge = @challenge AND used_at IS NOT NULL", new { challenge }));

        // When assertion options are requested, they allow exactly this credential
        server.Clock.Advance(TimeSpan.FromSeconds(10));
        var request = await server.AssertionOptionsAsync(user);
        Assert.Equal("localhost", request.GetProperty("rpId").GetString());
        Assert.Equal([key.CredentialIdText], request.GetProperty("allowCredentials").EnumerateArray().Select(c => c.GetProperty("id").GetString()!));
        Assert.True(Base64UrlText.Decode(request.GetProperty("challenge").GetString()!).Length >= 16);
        Assert.NotEqual(challenge, request.GetProperty("challenge").GetString());

        // and the assertion is verified with Type=KEY
        using var verified = await server.VerifyKeyAsync(user, key.Assert(request));
        var verification = await verified.AssertJsonAsync(HttpStatusCode.OK, "verification");
        Assert.True(verification.GetProperty("valid").GetBoolean());
        Assert.Equal("KEY", verification.GetProperty("type").GetString());
        Assert.Equal(user, verification.GetProperty("user").GetString());
        Assert.Equal(server.Clock.GetUtcNow().UtcDateTime, verification.GetProperty("verified_at").GetDateTime());
        Assert.Equal("no-store", verified.Headers.CacheControl?.ToString());

        // Then the counter and last use are recorded
        Assert.Equal(1, await server.ScalarAsync<long>("SELECT sign_count FROM security_keys WHERE id = @id", new { id }));
        Assert.Equal(server.Clock.GetUtcNow().ToUnixTimeMilliseconds(), await server.ScalarAsync<long?>("SELECT last_used_at FROM security_keys WHERE id = @id", new { id }));
        var listed = Assert.Single(await server.ListKeysAsync(user));
        Assert.Equal(server.Clock.GetUtcNow().UtcDateTime, listed.GetProperty("last_used_at").GetDateTime());

        // and a second check advances the counter again
        await server.VerifiedWithKeyAsync(user, key);
        Assert.Equal(2, await server.ScalarAsync<long>("SELECT sign_count FROM security_keys WHERE id = @id", new { id }));
    }

    [Fact]
    public async Task Registration_and_verification_work_in_the_documented_form_encoding_too()
    {
        // Given options for a new user
        var server = await servers.GetAsync(Db.Sqlite);
        var user = SecurityKeyApi.NewUser("form");
        using var key = server.NewAuthenticator();
        var options = await server.RegistrationOptionsAsync(user);

        // When the attestation is posted as curl -d "User=…, Credential={…}" sends it (the JSON's own commas included)
        using (var registered = await server.PostCurlAsync("/v1/mfa/keys/registration", $"User={user}, Credential={key.Register(options).ToJsonString()}"))
        {
            // Then the key is registered
            await registered.AssertJsonAsync(HttpStatusCode.Created, "security_key");
        }

        // and the assertion verifies in the same encoding
        var request = await server.AssertionOptionsAsync(user);
        using (var verified = await server.PostCurlAsync("/v1/mfa/verify", $"User={user}, Type=KEY, Credential={key.Assert(request).ToJsonString()}"))
        {
            await verified.AssertJsonAsync(HttpStatusCode.OK, "verification");
        }

        // and in an ordinary URL-encoded form a second key registers and verifies too
        using var second = server.NewAuthenticator();
        using var client = server.NewClient(server.TestKey);
        using (var form = await client.PostAsync("/v1/mfa/keys/registration", new FormUrlEncodedContent(
            new Dictionary<string, string> { ["user"] = user, ["credential"] = second.Register(await server.RegistrationOptionsAsync(user)).ToJsonString() })))
        {
            await form.AssertJsonAsync(HttpStatusCode.Created, "security_key");
        }

        using var formVerified = await client.PostAsync("/v1/mfa/verify", new FormUrlEncodedContent(
            new Dictionary<string, string> { ["user"] = user, ["type"] = "KEY", ["credential"] = second.Assert(await server.AssertionOptionsAsync(user)).ToJsonString() }));
        await formVerified.AssertJsonAsync(HttpStatusCode.OK, "verification");
        Assert.Equal(2, (await server.ListKeysAsync(user)).Count);
    }

    [Fact]
    public async Task Several_keys_are_listed_and_a_removed_key_no_longer_verifies()
    {
        // Given a user with two keys
        var server = await servers.GetAsync(Db.Sqlite);
        var user = SecurityKeyApi.NewUser("two");
        var first = await server.RegisterKeyAsync(user);
        var second = await server.RegisterKeyAsync(user);
        using var a = first.Authenticator;
        using var b = second.Authenticator;

        // Then both are listed, in the list and in the factors summary, and each verifies
        Assert.Equal([first.Id, second.Id], (await server.ListKeysAsync(user)).Select(k => k.GetProperty("id").GetString()!));
        var factors = await server.FactorsOfAsync(user);
        Assert.Equal([a.CredentialIdText, b.CredentialIdText],
            factors.GetProperty("security_keys").EnumerateArray().Select(k => k.GetProperty("credential_id").GetString()!));
        var request = await server.AssertionOptionsAsync(user);
        Assert.Equal([a.CredentialIdText, b.CredentialIdText], request.GetProperty("allowCredentials").EnumerateArray().Select(c => c.GetProperty("id").GetString()!));
        await server.VerifiedWithKeyAsync(user, a);
        await server.VerifiedWithKeyAsync(user, b);

        // and the second registration's options excluded the first key
        var creation = await server.RegistrationOptionsAsync(user);
        Assert.Equal([a.CredentialIdText, b.CredentialIdText], creation.GetProperty("excludeCredentials").EnumerateArray().Select(c => c.GetProperty("id").GetString()!));

        // When the first key is removed
        using (var removed = await server.DeleteKeyAsync(first.Id))
        {
            Assert.Equal(HttpStatusCode.NoContent, removed.StatusCode);
        }

        // Then it is gone from the list, the options and the database, and its assertion is refused
        Assert.Equal([second.Id], (await server.ListKeysAsync(user)).Select(k => k.GetProperty("id").GetString()!));
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM security_keys WHERE id = @id", new { id = first.Id }));
        request = await server.AssertionOptionsAsync(user);
        Assert.Equal([b.CredentialIdText], request.GetProperty("allowCredentials").EnumerateArray().Select(c => c.GetProperty("id").GetString()!));
        using (var refused = await server.VerifyKeyAsync(user, a.Assert(request)))
        {
            await refused.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_code", "credential");
        }

        await server.VerifiedWithKeyAsync(user, b);

        // and removing it again is 404
        using var again = await server.DeleteKeyAsync(first.Id);
        await again.AssertProblemAsync(HttpStatusCode.NotFound, "not_found", "id");
    }

    [Fact]
    public async Task Another_applications_key_cannot_be_removed_listed_or_used()
    {
        // Given a key of another application (relying party localhost too)
        var server = await servers.GetAsync(Db.Sqlite);
        var otherKey = await server.NewKeyApplicationAsync("Other keys app");
        var user = SecurityKeyApi.NewUser("other-app");
        var theirs = await server.RegisterKeyAsync(user, bearer: otherKey);
        using var authenticator = theirs.Authenticator;

        // When the demo application tries to remove it, then 404 and it still exists
        using (var removed = await server.DeleteKeyAsync(theirs.Id))
        {
            await removed.AssertProblemAsync(HttpStatusCode.NotFound, "not_found", "id");
        }

        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM security_keys WHERE id = @id", new { id = theirs.Id }));

        // and the demo application does not see it nor can start a check with it
        Assert.Empty(await server.ListKeysAsync(user));
        Assert.Empty((await server.FactorsOfAsync(user)).GetProperty("security_keys").EnumerateArray());
        using (var options = await server.PostAssertionOptionsAsync(user))
        {
            await options.AssertProblemAsync(HttpStatusCode.Unauthorized, "not_enrolled", "user");
        }

        // and an assertion made for the other application's options is unknown to the demo application
        var assertion = authenticator.Assert(await server.AssertionOptionsAsync(user, otherKey));
        using (var foreign = await server.VerifyKeyAsync(user, assertion))
        {
            await foreign.AssertProblemAsync(HttpStatusCode.Unauthorized, "no_pending_challenge", "credential");
        }

        // while the owner still verifies that very assertion (its options were not used up by the foreign attempt)
        using var own = await server.VerifyKeyAsync(user, assertion, otherKey);
        await own.AssertJsonAsync(HttpStatusCode.OK, "verification");

        // and the owner removes it with 204
        using var ownRemoval = await server.DeleteKeyAsync(theirs.Id, otherKey);
        Assert.Equal(HttpStatusCode.NoContent, ownRemoval.StatusCode);
    }

    [Fact]
    public async Task Live_and_test_mode_keys_and_options_are_isolated()
    {
        // Given a key registered in test mode, and a live key of the same application
        var server = await servers.GetAsync(Db.Sqlite);
        var live = (await server.CreateApiKeyAsync(server.ApplicationId, "live")).Secret;
        var user = SecurityKeyApi.NewUser("modes");
        var registered = await server.RegisterKeyAsync(user);
        using var key = registered.Authenticator;

        // Then live mode sees no key and cannot start a check
        Assert.Empty(await server.ListKeysAsync(user, live));
        using (var options = await server.PostAssertionOptionsAsync(user, live))
        {
            await options.AssertProblemAsync(HttpStatusCode.Unauthorized, "not_enrolled", "user");
        }

        using (var removed = await server.DeleteKeyAsync(registered.Id, live))
        {
            await removed.AssertProblemAsync(HttpStatusCode.NotFound, "not_found", "id");
        }

        // When a test-mode assertion is posted with the live key, then its challenge is unknown there
        var request = await server.AssertionOptionsAsync(user);
        var assertion = key.Assert(request);
        using (var crossed = await server.VerifyKeyAsync(user, assertion, live))
        {
            await crossed.AssertProblemAsync(HttpStatusCode.Unauthorized, "no_pending_challenge", "credential");
        }

        // and test-mode registration options cannot be finished in live mode
        var creation = await server.RegistrationOptionsAsync(user);
        using var other = server.NewAuthenticator();
        using (var crossedRegistration = await server.PostRegistrationAsync(user, other.Register(creation), live))
        {
            await crossedRegistration.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "credential");
        }

        // while in test mode the same assertion still verifies
        using var verified = await server.VerifyKeyAsync(user, assertion);
        await verified.AssertJsonAsync(HttpStatusCode.OK, "verification");
    }

    public static TheoryData<string, HttpStatusCode, string> AssertionForgeries => new()
    {
        { "origin of another site", HttpStatusCode.Unauthorized, "invalid_code" },
        { "origin on another port", HttpStatusCode.Unauthorized, "invalid_code" },
        { "https origin", HttpStatusCode.Unauthorized, "invalid_code" },
        { "rpIdHash of another relying party", HttpStatusCode.Unauthorized, "invalid_code" },
        { "user presence flag missing", HttpStatusCode.Unauthorized, "invalid_code" },
        { "clientData type webauthn.create", HttpStatusCode.Unauthorized, "invalid_code" },
        { "signature by another key", HttpStatusCode.Unauthorized, "invalid_code" },
        { "userHandle of someone else", HttpStatusCode.Unauthorized, "invalid_code" },
        { "credential of another user", HttpStatusCode.Unauthorized, "invalid_code" },
        { "challenge never issued", HttpStatusCode.Unauthorized, "no_pending_challenge" },
        { "challenge issued to another user", HttpStatusCode.Unauthorized, "no_pending_challenge" },
        { "registration challenge", HttpStatusCode.Unauthorized, "no_pending_challenge" },
    };

    [Theory]
    [MemberData(nameof(AssertionForgeries))]
    public async Task A_forged_assertion_is_refused_and_the_genuine_one_then_verifies(string forgery, HttpStatusCode status, string code)
    {
        // Given a user with a key, and another user with another key
        var server = await servers.GetAsync(Db.Sqlite);
        var user = SecurityKeyApi.NewUser("forge");
        var registered = await server.RegisterKeyAsync(user);
        using var key = registered.Authenticator;
        var otherUser = SecurityKeyApi.NewUser("forge-other");
        using var otherKey = (await server.RegisterKeyAsync(otherUser)).Authenticator;
        using var stranger = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var port = server.BaseAddress.Port;

        // When the forged assertion is posted
        var request = await server.AssertionOptionsAsync(user);
        var forged = forgery switch
        {
            "origin of another site" => key.Assert(request, new Forgery { Origin = $"http://evil.example:{port}" }),
            "origin on another port" => key.Assert(request, new Forgery { Origin = $"http://localhost:{(port == 1 ? 2 : 1)}" }),
            "https origin" => key.Assert(request, new Forgery { Origin = $"https://localhost:{port}" }),
            "rpIdHash of another relying party" => key.Assert(request, new Forgery { RpId = "example.com" }),
            "user presence flag missing" => key.Assert(request, new Forgery { Flags = AuthenticatorFlags.UserVerified }),
            "clientData type webauthn.create" => key.Assert(request, new Forgery { Type = "webauthn.create" }),
            "signature by another key" => key.Assert(request, new Forgery { SigningKey = stranger }),
            "userHandle of someone else" => key.Assert(request, new Forgery { UserHandle = Base64UrlText.Encode(RandomNumberGenerator.GetBytes(32)) }),
            "credential of another user" => otherKey.Assert(request),
            "challenge never issued" => key.Assert(request, new Forgery { Challenge = Base64UrlText.Encode(RandomNumberGenerator.GetBytes(32)) }),
            "challenge issued to another user" => key.Assert(await server.AssertionOptionsAsync(otherUser)),
            "registration challenge" => key.Assert(request, new Forgery { Challenge = (await server.RegistrationOptionsAsync(user)).GetProperty("challenge").GetString() }),
            _ => throw new ArgumentOutOfRangeException(nameof(forgery)),
        };
        using (var refused = await server.VerifyKeyAsync(user, forged))
        {
            // Then it is refused with the exact code, naming the credential, never a 200 or a 5xx
            var problem = await refused.AssertProblemAsync(status, code, "credential");

            // and a refused signature counts toward the lockout, a stale or foreign challenge does not
            var failures = (await server.FactorsOfAsync(user)).GetProperty("lockout").GetProperty("consecutive_failures").GetInt32();
            Assert.Equal(code == "invalid_code" ? 1 : 0, failures);
            if (code == "invalid_code")
            {
                Assert.Equal(4, problem.GetProperty("attempts_remaining").GetInt32());
            }
        }

        // and nothing about the key changed
        Assert.Equal(0, await server.ScalarAsync<long>("SELECT sign_count FROM security_keys WHERE id = @id", new { id = registered.Id }));
        Assert.Null(await server.ScalarAsync<long?>("SELECT last_used_at FROM security_keys WHERE id = @id", new { id = registered.Id }));

        // When the genuine key answers fresh options, then it verifies (the forgery was the only fault)
        await server.VerifiedWithKeyAsync(user, key);
        Assert.Equal(0, (await server.FactorsOfAsync(user)).GetProperty("lockout").GetProperty("consecutive_failures").GetInt32());
    }

    [Fact]
    public async Task The_same_assertion_posted_twice_is_refused_the_second_time()
    {
        // Given a verified assertion
        var server = await servers.GetAsync(Db.Sqlite);
        var user = SecurityKeyApi.NewUser("replay");
        using var key = (await server.RegisterKeyAsync(user)).Authenticator;
        var request = await server.AssertionOptionsAsync(user);
        var assertion = key.Assert(request);
        using (var first = await server.VerifyKeyAsync(user, assertion))
        {
            await first.AssertJsonAsync(HttpStatusCode.OK, "verification");
        }

        // When it is replayed, then 401 no_pending_challenge
        using var replayed = await server.VerifyKeyAsync(user, assertion);
        await replayed.AssertProblemAsync(HttpStatusCode.Unauthorized, "no_pending_challenge", "credential");
    }

    [Fact]
    public async Task A_counter_that_does_not_advance_is_refused_as_a_cloned_key()
    {
        // Given a key that has signed with counter 5
        var server = await servers.GetAsync(Db.Sqlite);
        var user = SecurityKeyApi.NewUser("counter");
        var registered = await server.RegisterKeyAsync(user);
        using var key = registered.Authenticator;
        using (var five = await server.VerifyKeyAsync(user, key.Assert(await server.AssertionOptionsAsync(user), new Forgery { Counter = 5 })))
        {
            await five.AssertJsonAsync(HttpStatusCode.OK, "verification");
        }

        // When a correctly signed assertion reports 5 again, 4, or 0, then each is 401 invalid_code
        foreach (var counter in (uint[])[5, 4, 0])
        {
            using var regressed = await server.VerifyKeyAsync(user, key.Assert(await server.AssertionOptionsAsync(user), new Forgery { Counter = counter }));
            await regressed.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_code", "credential");
            Assert.Equal(5, await server.ScalarAsync<long>("SELECT sign_count FROM security_keys WHERE id = @id", new { id = registered.Id }));
        }

        // and 6 verifies
        using var six = await server.VerifyKeyAsync(user, key.Assert(await server.AssertionOptionsAsync(user), new Forgery { Counter = 6 }));
        await six.AssertJsonAsync(HttpStatusCode.OK, "verification");
        Assert.Equal(6, await server.ScalarAsync<long>("SELECT sign_count FROM security_keys WHERE id = @id", new { id = registered.Id }));
    }

    [Fact]
    public async Task The_largest_counter_is_stored_exactly_and_nothing_can_follow_it()
    {
        // Given a key
        var server = await servers.GetAsync(Db.Sqlite);
        var user = SecurityKeyApi.NewUser("max-counter");
        var registered = await server.RegisterKeyAsync(user);
        using var key = registered.Authenticator;

        // When it signs with counter 2^32 − 1, then it verifies and the full value is stored
        using (var max = await server.VerifyKeyAsync(user, key.Assert(await server.AssertionOptionsAsync(user), new Forgery { Counter = uint.MaxValue })))
        {
            await max.AssertJsonAsync(HttpStatusCode.OK, "verification");
        }

        Assert.Equal(uint.MaxValue, await server.ScalarAsync<long>("SELECT sign_count FROM security_keys WHERE id = @id", new { id = registered.Id }));

        // and a counter that wrapped to 1 is refused
        using var wrapped = await server.VerifyKeyAsync(user, key.Assert(await server.AssertionOptionsAsync(user), new Forgery { Counter = 1 }));
        await wrapped.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_code", "credential");
    }

    [Fact]
    public async Task A_key_without_a_counter_keeps_reporting_zero_and_verifies()
    {
        // Given a key that never counts (counter 0 throughout, as WebAuthn allows)
        var server = await servers.GetAsync(Db.Sqlite);
        var user = SecurityKeyApi.NewUser("no-counter");
        using var key = (await server.RegisterKeyAsync(user)).Authenticator;

        // Then two checks with counter 0 both verify
        for (var i = 0; i < 2; i++)
        {
            using var response = await server.VerifyKeyAsync(user, key.Assert(await server.AssertionOptionsAsync(user), new Forgery { Counter = 0 }));
            await response.AssertJsonAsync(HttpStatusCode.OK, "verification");
        }
    }

    [Fact]
    public async Task User_verification_is_enforced_when_the_settings_require_it()
    {
        // Given an application requiring user verification, and the demo application preferring it
        var server = await servers.GetAsync(Db.Sqlite);
        var strict = await server.NewKeyApplicationAsync("Strict UV", new { webauthn_user_verification = "required" });
        var user = SecurityKeyApi.NewUser("uv");
        var presenceOnly = new Forgery { Flags = AuthenticatorFlags.UserPresent };

        // When a key without user verification registers, then the strict application refuses it
        using var key = server.NewAuthenticator();
        var creation = await server.RegistrationOptionsAsync(user, strict);
        Assert.Equal("required", creation.GetProperty("authenticatorSelection").GetProperty("userVerification").GetString());
        using (var refused = await server.PostRegistrationAsync(user, key.Register(creation, presenceOnly), strict))
        {
            await refused.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "credential");
        }

        // When it registers with verification but later asserts presence only, then 401 invalid_code
        await server.RegisterKeyAsync(user, key, strict);
        var request = await server.AssertionOptionsAsync(user, strict);
        Assert.Equal("required", request.GetProperty("userVerification").GetString());
        using (var unverified = await server.VerifyKeyAsync(user, key.Assert(request, presenceOnly), strict))
        {
            await unverified.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_code", "credential");
        }

        await server.VerifiedWithKeyAsync(user, key, strict);

        // and where verification is only preferred, presence alone is enough
        var relaxedUser = SecurityKeyApi.NewUser("uv-preferred");
        using var relaxed = new SoftwareAuthenticator(server.LocalOrigin()) { DefaultFlags = AuthenticatorFlags.UserPresent };
        await server.RegisterKeyAsync(relaxedUser, relaxed);
        await server.VerifiedWithKeyAsync(relaxedUser, relaxed);
    }

    public static TheoryData<string> RegistrationForgeries =>
    [
        "origin of another site", "rpIdHash of another relying party", "user presence flag missing", "attested credential data flag missing",
        "clientData type webauthn.get", "challenge never issued", "challenge issued to another user", "assertion challenge",
    ];

    [Theory]
    [MemberData(nameof(RegistrationForgeries))]
    public async Task A_forged_registration_is_refused_with_invalid_request_and_registers_nothing(string forgery)
    {
        // Given a user (with an existing key, so assertion options can be issued) and another user's options
        var server = await servers.GetAsync(Db.Sqlite);
        var user = SecurityKeyApi.NewUser("reg-forge");
        using var existing = (await server.RegisterKeyAsync(user)).Authenticator;
        using var key = server.NewAuthenticator();
        var creation = await server.RegistrationOptionsAsync(user);

        // When the forged attestation is posted
        var forged = forgery switch
        {
            "origin of another site" => key.Register(creation, new Forgery { Origin = "https://evil.example" }),
            "rpIdHash of another relying party" => key.Register(creation, new Forgery { RpId = "evil.example" }),
            "user presence flag missing" => key.Register(creation, new Forgery { Flags = AuthenticatorFlags.UserVerified }),
            "attested credential data flag missing" => key.Register(creation, new Forgery { Flags = AuthenticatorFlags.UserPresent | AuthenticatorFlags.UserVerified, ExactFlags = true }),
            "clientData type webauthn.get" => key.Register(creation, new Forgery { Type = "webauthn.get" }),
            "challenge never issued" => key.Register(creation, new Forgery { Challenge = Base64UrlText.Encode(RandomNumberGenerator.GetBytes(32)) }),
            "challenge issued to another user" => key.Register(await server.RegistrationOptionsAsync(SecurityKeyApi.NewUser("reg-other"))),
            "assertion challenge" => key.Register(creation, new Forgery { Challenge = (await server.AssertionOptionsAsync(user)).GetProperty("challenge").GetString() }),
            _ => throw new ArgumentOutOfRangeException(nameof(forgery)),
        };
        using (var refused = await server.PostRegistrationAsync(user, forged))
        {
            // Then 400 invalid_request naming the credential, and no key was stored
            await refused.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "credential");
        }

        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM security_keys WHERE credential_id = @id", new { id = key.CredentialId }));
        Assert.Single(await server.ListKeysAsync(user));

        // When the same key registers genuinely with fresh options, then it works (the forgery was the only fault)
        await server.RegisterKeyAsync(user, key);
        await server.VerifiedWithKeyAsync(user, key);
    }

    [Fact]
    public async Task The_same_credential_cannot_be_registered_twice()
    {
        // Given a registered key
        var server = await servers.GetAsync(Db.Sqlite);
        var user = SecurityKeyApi.NewUser("twice");
        using var key = (await server.RegisterKeyAsync(user)).Authenticator;

        // When the same credential is registered again, for the same user or for another user of the application
        foreach (var who in (string[])[user, SecurityKeyApi.NewUser("twice-other")])
        {
            using var again = await server.PostRegistrationAsync(who, key.Register(await server.RegistrationOptionsAsync(who)));

            // Then 400 invalid_request naming the credential, and there is still one row
            await again.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "credential");
        }

        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM security_keys WHERE credential_id = @id", new { id = key.CredentialId }));
    }

    [Fact]
    public async Task The_same_credential_registered_concurrently_is_stored_once()
    {
        // Given two sets of registration options and one credential answering both
        var server = await servers.GetAsync(Db.Sqlite);
        var user = SecurityKeyApi.NewUser("reg-race");
        using var key = server.NewAuthenticator();
        var attestations = new List<JsonObject>();
        for (var i = 0; i < 4; i++)
        {
            attestations.Add(key.Register(await server.RegistrationOptionsAsync(user)));
        }

        // When the four attestations race
        var results = await Task.WhenAll(attestations.Select(async a =>
        {
            using var r = await server.PostRegistrationAsync(user, a);
            return (r.StatusCode, await r.Content.ReadAsStringAsync());
        }));

        // Then exactly one is 201 and the others 400 invalid_request (never a 5xx), one row
        var summary = string.Join("\n", results.Select(r => $"{(int)r.StatusCode} {r.Item2}"));
        Assert.True(results.Count(r => r.StatusCode == HttpStatusCode.Created) == 1, summary);
        Assert.True(results.Where(r => r.StatusCode != HttpStatusCode.Created).All(r => r.StatusCode == HttpStatusCode.BadRequest && r.Item2.Contains("\"invalid_request\"", StringComparison.Ordinal)), summary);
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM security_keys WHERE credential_id = @id", new { id = key.CredentialId }));
    }

    [Fact]
    public async Task Options_expire_after_webauthn_timeout_seconds()
    {
        // Given a key and an application whose options last 60 s
        var server = await servers.GetAsync(Db.Sqlite);
        var shortLived = await server.NewKeyApplicationAsync("Short options", new { webauthn_timeout_seconds = 60 });
        var user = SecurityKeyApi.NewUser("expiry");
        using var key = (await server.RegisterKeyAsync(user, bearer: shortLived)).Authenticator;

        // When 59 s pass, then the assertion still verifies
        var request = await server.AssertionOptionsAsync(user, shortLived);
        Assert.Equal(60_000, request.GetProperty("timeout").GetInt32());
        server.Clock!.Advance(TimeSpan.FromSeconds(59));
        using (var inTime = await server.VerifyKeyAsync(user, key.Assert(request), shortLived))
        {
            await inTime.AssertJsonAsync(HttpStatusCode.OK, "verification");
        }

        // When 61 s pass after new options, then 401 code_expired
        request = await server.AssertionOptionsAsync(user, shortLived);
        server.Clock.Advance(TimeSpan.FromSeconds(61));
        using (var late = await server.VerifyKeyAsync(user, key.Assert(request), shortLived))
        {
            await late.AssertProblemAsync(HttpStatusCode.Unauthorized, "code_expired", "credential");
        }

        // and expired registration options are refused as a bad request
        var creation = await server.RegistrationOptionsAsync(user, shortLived);
        server.Clock.Advance(TimeSpan.FromSeconds(61));
        using var second = server.NewAuthenticator();
        using (var lateRegistration = await server.PostRegistrationAsync(user, second.Register(creation), shortLived))
        {
            await lateRegistration.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "credential");
        }

        Assert.Single(await server.ListKeysAsync(user, shortLived));
    }

    [Fact]
    public async Task Expired_ceremonies_are_removed_a_day_later_when_the_user_asks_for_new_options()
    {
        // Given a used and an unused ceremony of one user, and an unused one of another user
        var server = await servers.GetAsync(Db.Sqlite);
        var user = SecurityKeyApi.NewUser("cleanup");
        var bystander = SecurityKeyApi.NewUser("cleanup-other");
        using var key = (await server.RegisterKeyAsync(user)).Authenticator;
        var unused = (await server.AssertionOptionsAsync(user)).GetProperty("challenge").GetString();
        await server.RegistrationOptionsAsync(bystander);
        const string count = "SELECT COUNT(*) FROM webauthn_ceremonies WHERE user_key IN (SELECT identity_id FROM identity_contacts WHERE value = @user)";
        Assert.Equal(2, await server.CountAsync(count, new { user }));

        // When the options expired less than a day ago, then new options keep them (an answer is still code_expired)
        server.Clock!.Advance(TimeSpan.FromSeconds(300) + TimeSpan.FromHours(23));
        await server.AssertionOptionsAsync(user);
        Assert.Equal(3, await server.CountAsync(count, new { user }));
        using (var late = await server.VerifyKeyAsync(user, key.Assert(await server.AssertionOptionsAsync(user), new Forgery { Challenge = unused })))
        {
            await late.AssertProblemAsync(HttpStatusCode.Unauthorized, "code_expired", "credential");
        }

        // When more than a day has passed since they expired, then the user's next options request removes them
        server.Clock.Advance(TimeSpan.FromHours(1) + TimeSpan.FromSeconds(1));
        await server.AssertionOptionsAsync(user);
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM webauthn_ceremonies WHERE user_key IN (SELECT identity_id FROM identity_contacts WHERE value = @user) AND challenge = @unused", new { user, unused }));
        Assert.Equal(3, await server.CountAsync(count, new { user }));

        // and the other user's expired ceremony stays until that user asks
        Assert.Equal(1, await server.CountAsync(count, new { user = bystander }));
        await server.VerifiedWithKeyAsync(user, key);
    }

    [Fact]
    public async Task Failed_key_checks_lock_the_user_out_of_every_factor()
    {
        // Given a user with a security key and an authenticator app, in an application with the strict lockout
        var server = await servers.GetAsync(Db.Sqlite);
        var bearer = await server.NewKeyApplicationAsync("Strict lockout", new { lockout_profile = "strict" });
        var user = SecurityKeyApi.NewUser("lockout");
        using var key = (await server.RegisterKeyAsync(user, bearer: bearer)).Authenticator;
        var app = await server.EnrolActiveAsync(user, bearer);
        using var stranger = ECDsa.Create(ECCurve.NamedCurves.nistP256);

        // When five assertions signed by another key are posted, each counts down
        for (var remaining = 4; remaining >= 0; remaining--)
        {
            using var refused = await server.VerifyKeyAsync(user, key.Assert(await server.AssertionOptionsAsync(user, bearer), new Forgery { SigningKey = stranger }), bearer);
            var problem = await refused.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_code", "credential");
            Assert.Equal(remaining, problem.GetProperty("attempts_remaining").GetInt32());
        }

        // Then a genuine assertion gets 429, and so does a right authenticator-app code
        var request = await server.AssertionOptionsAsync(user, bearer);
        using (var locked = await server.VerifyKeyAsync(user, key.Assert(request), bearer))
        {
            await locked.AssertProblemAsync(HttpStatusCode.TooManyRequests, "too_many_attempts");
            Assert.NotNull(locked.Headers.RetryAfter);
        }

        await server.VerifyAppAsync(user, Rfc6238.CodeAt(app.Seed, server.Now()), bearer).ExpectProblemAsync(HttpStatusCode.TooManyRequests, "too_many_attempts");
        Assert.True((await server.FactorsOfAsync(user, bearer)).GetProperty("lockout").GetProperty("locked").GetBoolean());

        // When the lock has passed, then the key verifies again
        server.Clock!.Advance(TimeSpan.FromSeconds(301));
        await server.VerifiedWithKeyAsync(user, key, bearer);
        Assert.Equal(0, (await server.FactorsOfAsync(user, bearer)).GetProperty("lockout").GetProperty("consecutive_failures").GetInt32());
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Eight_concurrent_copies_of_one_assertion_give_exactly_one_success(Db db)
    {
        // Given a key and one valid assertion
        var server = await servers.GetAsync(db);
        var user = SecurityKeyApi.NewUser("race");
        var registered = await server.RegisterKeyAsync(user);
        using var key = registered.Authenticator;
        var assertion = key.Assert(await server.AssertionOptionsAsync(user));
        var json = new JsonObject { ["user"] = user, ["type"] = "KEY", ["credential"] = assertion }.ToJsonString();

        // When eight copies race
        var results = await server.RaceAsync("/v1/mfa/verify", json, 8);

        // Then exactly one 200 and seven 401 no_pending_challenge, counter 1, no failure counted
        var summary = string.Join("\n", results.Select(r => $"{(int)r.Status} {r.Body}"));
        Assert.True(results.Count(r => r.Status == HttpStatusCode.OK) == 1, summary);
        Assert.True(results.Where(r => r.Status != HttpStatusCode.OK)
            .All(r => r.Status == HttpStatusCode.Unauthorized && JsonDocument.Parse(r.Body).RootElement.GetProperty("code").GetString() == "no_pending_challenge"), summary);
        Assert.Equal(1, await server.ScalarAsync<long>("SELECT sign_count FROM security_keys WHERE id = @id", new { id = registered.Id }));
        Assert.Equal(0, (await server.FactorsOfAsync(user)).GetProperty("lockout").GetProperty("consecutive_failures").GetInt32());
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Eight_clones_answering_different_options_with_the_same_counter_give_exactly_one_success(Db db)
    {
        // Given a key, eight sets of options, and eight valid assertions that all report counter 1 (a cloned key)
        var server = await servers.GetAsync(db);
        var bearer = await server.NewKeyApplicationAsync("Clones", new { lockout_threshold = 50 });
        var user = SecurityKeyApi.NewUser("clones");
        var registered = await server.RegisterKeyAsync(user, bearer: bearer);
        using var key = registered.Authenticator;
        var bodies = new List<string>();
        for (var i = 0; i < 8; i++)
        {
            var assertion = key.Assert(await server.AssertionOptionsAsync(user, bearer), new Forgery { Counter = 1 });
            bodies.Add(new JsonObject { ["user"] = user, ["type"] = "KEY", ["credential"] = assertion }.ToJsonString());
        }

        // When they race
        var results = await server.RaceAsync("/v1/mfa/verify", bodies, bearer);

        // Then exactly one 200; the counter decides the others, 401 invalid_code, and the stored counter is 1
        var summary = string.Join("\n", results.Select(r => $"{(int)r.Status} {r.Body}"));
        Assert.True(results.Count(r => r.Status == HttpStatusCode.OK) == 1, summary);
        Assert.True(results.Where(r => r.Status != HttpStatusCode.OK)
            .All(r => r.Status == HttpStatusCode.Unauthorized && JsonDocument.Parse(r.Body).RootElement.GetProperty("code").GetString() == "invalid_code"), summary);
        Assert.Equal(1, await server.ScalarAsync<long>("SELECT sign_count FROM security_keys WHERE id = @id", new { id = registered.Id }));
    }

    [Fact]
    public async Task Security_keys_need_KEY_enabled_and_a_relying_party()
    {
        // Given an application without a relying party, and one with KEY disabled
        var server = await servers.GetAsync(Db.Sqlite);
        var (_, noRp) = await server.CreateApplicationWithKeyAsync("No relying party", "standard");
        var disabled = await server.NewKeyApplicationAsync("No keys", new { enabled_methods = new[] { "EMAIL", "APP" } });
        var user = SecurityKeyApi.NewUser("disabled");

        // Then options are 403 method_disabled in both
        foreach (var bearer in (string[])[noRp, disabled])
        {
            using var registration = await server.PostRegistrationOptionsAsync(user, bearer);
            await registration.AssertProblemAsync(HttpStatusCode.Forbidden, "method_disabled", "type");
            using var assertion = await server.PostAssertionOptionsAsync(user, bearer);
            await assertion.AssertProblemAsync(HttpStatusCode.Forbidden, "method_disabled", "type");
        }

        // and a user without keys cannot start a check in the demo application
        using var none = await server.PostAssertionOptionsAsync(user);
        await none.AssertProblemAsync(HttpStatusCode.Unauthorized, "not_enrolled", "user");
    }
}
