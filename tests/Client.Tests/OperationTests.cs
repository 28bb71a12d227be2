using System.Text.Json;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Api.Tests.SecurityKeys;
using OtpNet;

namespace DevRift.Client.Tests;

/// <summary>Every /v1 operation through the client against the real appliance.</summary>
public sealed class OperationTests(ApplianceFixture fixture) : IClassFixture<ApplianceFixture>
{
    [Fact]
    public async Task An_emailed_code_is_sent_read_from_the_test_outbox_and_verified()
    {
        using var client = fixture.NewClient();
        var user = TestUsers.NewEmail("send");

        var challenge = await client.SendCodeAsync(user, DeliveryChannel.Email);
        Assert.Equal("challenge", challenge.ObjectType);
        Assert.StartsWith("mfa_", challenge.Id, StringComparison.Ordinal);
        Assert.Equal(("pending", "EMAIL", user, false), (challenge.Status, challenge.Type, challenge.User, challenge.Livemode));
        Assert.Equal(TimeSpan.FromMinutes(10), challenge.ExpiresAt - challenge.CreatedAt);
        var channel = Assert.Single(challenge.Channels);
        Assert.Equal("EMAIL", channel.Channel);

        var code = await client.GetLatestTestCodeAsync(user, DeliveryChannel.Email);
        var verification = await client.VerifyCodeAsync(user, VerificationType.Email, code);

        Assert.True(verification.Valid);
        Assert.Equal(("verification", "EMAIL", user), (verification.ObjectType, verification.Type, verification.User));
        Assert.Equal("approved", (await client.GetChallengeAsync(challenge.Id)).Status);
        var messages = await client.ListTestMessagesAsync(user);
        Assert.Equal("EMAIL", Assert.Single(messages).Channel);
        Assert.Contains(code, messages[0].Body, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(DeliveryChannel.Sms)]
    [InlineData(DeliveryChannel.WhatsApp)]
    [InlineData(DeliveryChannel.Call)]
    public async Task A_national_number_is_formatted_to_E164_sent_and_verified_as_PHONE(DeliveryChannel type)
    {
        using var client = fixture.NewClient(configure: o => o.DefaultRegion = "US");
        var e164 = TestUsers.NewPhone();
        var national = $"({e164[2..5]}) {e164[5..8]}-{e164[8..]}";

        var challenge = await client.SendCodeAsync(national, type);
        Assert.Equal(e164, challenge.User);
        var code = await client.GetLatestTestCodeAsync(national, type);
        var verification = await client.VerifyCodeAsync($"+1 {e164[2..5]} {e164[5..8]} {e164[8..]}", VerificationType.Phone, code);

        Assert.Equal(("PHONE", e164), (verification.Type, verification.User));
    }

    [Fact]
    public async Task A_dual_code_goes_to_email_and_phone_and_verifies_once()
    {
        using var client = fixture.NewClient(await fixture.NewApplicationKeyAsync("enterprise"));
        var user = $"{TestUsers.NewEmail("dual")}:{TestUsers.NewPhone()}";

        var challenge = await client.SendCodeAsync(new SendCodeRequest { User = user, Type = DeliveryChannel.Dual, Locale = "fr" });
        Assert.Equal(["EMAIL", "SMS"], challenge.Channels.Select(c => c.Channel).Order(StringComparer.Ordinal));
        var code = await client.GetLatestTestCodeAsync(user, DeliveryChannel.Dual);
        Assert.Equal("DUAL", (await client.VerifyCodeAsync(user, VerificationType.Dual, code)).Type);

        var again = await Assert.ThrowsAsync<DevRiftException>(() => client.VerifyCodeAsync(user, VerificationType.Dual, code));
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, again.Status);
        Assert.True(again.IsVerificationFailure);
    }

    [Fact]
    public async Task An_authenticator_app_is_enrolled_confirmed_listed_and_removed()
    {
        using var client = fixture.NewClient();
        var user = TestUsers.NewEmail("app");

        var enrollment = await client.EnrollAppAsync(user);
        Assert.Equal(("app_enrollment", "pending", "SHA1", 6, 30), (enrollment.ObjectType, enrollment.Status, enrollment.Algorithm, enrollment.Digits, enrollment.Period));
        Assert.StartsWith("otpauth://totp/", enrollment.OtpauthUri, StringComparison.Ordinal);
        Assert.Equal([0x89, 0x50, 0x4E, 0x47], Convert.FromBase64String(enrollment.QrCode)[..4]);
        Assert.Equal("pending", (await client.GetFactorsAsync(user)).App.Status);

        var totp = new Totp(Base32Encoding.ToBytes(enrollment.Secret));
        var code = totp.ComputeTotp(fixture.Server.Clock!.GetUtcNow().UtcDateTime);
        Assert.Equal("APP", (await client.VerifyCodeAsync(user, VerificationType.App, code)).Type);
        var factors = await client.GetFactorsAsync(user);
        Assert.Equal(("factors", "active", false), (factors.ObjectType, factors.App.Status, factors.Lockout.Locked));
        Assert.NotNull(factors.App.ConfirmedAt);

        await client.RemoveAppAsync(user);
        Assert.Equal("none", (await client.GetFactorsAsync(user)).App.Status);
        var gone = await Assert.ThrowsAsync<DevRiftException>(() => client.VerifyCodeAsync(user, VerificationType.App, code));
        Assert.Equal("not_enrolled", gone.Code);
    }

    [Fact]
    public async Task A_user_id_names_the_user_across_contacts_and_another_user_id_is_a_conflict()
    {
        using var client = fixture.NewClient();
        var (work, home) = (TestUsers.NewEmail("work"), TestUsers.NewEmail("home"));
        var userId = "cust-" + Guid.NewGuid().ToString("N")[..8];

        var enrollment = await client.EnrollAppAsync(work, userId);
        var totp = new Totp(Base32Encoding.ToBytes(enrollment.Secret));
        await client.VerifyCodeAsync(work, VerificationType.App, totp.ComputeTotp(fixture.Server.Clock!.GetUtcNow().UtcDateTime));
        fixture.Server.Clock.Advance(TimeSpan.FromSeconds(30));

        var verification = await client.VerifyAsync(new VerifyRequest
        {
            User = home, UserId = userId, Type = VerificationType.App, Code = totp.ComputeTotp(fixture.Server.Clock.GetUtcNow().UtcDateTime),
        });
        Assert.Equal(("APP", home), (verification.Type, verification.User));

        var conflict = await Assert.ThrowsAsync<DevRiftException>(() => client.SendCodeAsync(new SendCodeRequest { User = work, UserId = "other-" + userId, Type = DeliveryChannel.Email }));
        Assert.Equal((System.Net.HttpStatusCode.Conflict, "identity_conflict", "user_id"), (conflict.Status, conflict.Code, conflict.Param));
    }

    [Fact]
    public async Task Backup_codes_are_delivered_counted_and_one_verifies()
    {
        using var client = fixture.NewClient();
        var user = TestUsers.NewEmail("backup");

        var set = await client.GenerateBackupCodesAsync(new GenerateBackupCodesRequest { User = user, Type = BackupDelivery.Email });
        Assert.Equal(("backup_set", 10, 13), (set.ObjectType, set.Count, set.Length));
        Assert.Equal("EMAIL", Assert.Single(set.Destinations).Channel);
        var message = Assert.Single(await client.ListTestMessagesAsync(user));
        var codes = System.Text.RegularExpressions.Regex.Matches(message.Body, "^[0-9A-HJKMNP-TV-Z]{1,5}(?:-[0-9A-HJKMNP-TV-Z]{1,5})+$", System.Text.RegularExpressions.RegexOptions.Multiline).Select(m => m.Value).ToList();
        Assert.Equal(10, codes.Count);

        Assert.Equal("BACKUP", (await client.VerifyCodeAsync(user, VerificationType.Backup, codes[3].ToLowerInvariant())).Type);
        var state = (await client.GetFactorsAsync(user)).BackupCodes;
        Assert.Equal((9, 10), (state.Remaining, state.Total));
    }

    [Fact]
    public async Task A_security_key_is_registered_used_listed_and_removed()
    {
        using var client = fixture.NewClient();
        using var authenticator = new SoftwareAuthenticator($"http://localhost:{fixture.Server.BaseAddress.Port}");
        var user = TestUsers.NewEmail("key");

        var creation = await client.CreateSecurityKeyRegistrationOptionsAsync(user);
        Assert.Equal("localhost", creation.GetProperty("rp").GetProperty("id").GetString());
        var key = await client.RegisterSecurityKeyAsync(user, Json(authenticator.Register(creation)));
        Assert.Equal(("security_key", authenticator.CredentialIdText), (key.ObjectType, key.CredentialId));
        Assert.StartsWith("key_", key.Id, StringComparison.Ordinal);

        var request = await client.CreateSecurityKeyAssertionOptionsAsync(user);
        var verification = await client.VerifySecurityKeyAsync(user, Json(authenticator.Assert(request)));
        Assert.Equal("KEY", verification.Type);
        var listed = Assert.Single(await client.ListSecurityKeysAsync(user));
        Assert.NotNull(listed.LastUsedAt);
        Assert.Equal(key.Id, Assert.Single((await client.GetFactorsAsync(user)).SecurityKeys).Id);

        await client.RemoveSecurityKeyAsync(key.Id);
        Assert.Empty(await client.ListSecurityKeysAsync(user));
        var removed = await Assert.ThrowsAsync<DevRiftException>(() => client.RemoveSecurityKeyAsync(key.Id));
        Assert.Equal((System.Net.HttpStatusCode.NotFound, "not_found"), (removed.Status, removed.Code));
    }

    [Fact]
    public async Task A_payment_bound_sms_code_and_security_key_assertion_verify_only_for_their_transaction()
    {
        using var client = fixture.NewClient();
        var phone = TestUsers.NewPhone();
        var acme = new Transaction { Amount = "12.3", Currency = "EUR", Payee = "ACME Ltd", Reference = "INV-1" };

        // An SMS code for 12.30 EUR to ACME Ltd: the challenge shows the canonical transaction, the message the payment
        var challenge = await client.SendCodeAsync(new SendCodeRequest { User = phone, Type = DeliveryChannel.Sms, Transaction = acme });
        Assert.Equal(("12.30", "EUR", "ACME Ltd", "INV-1"), (challenge.Transaction!.Amount, challenge.Transaction.Currency, challenge.Transaction.Payee, challenge.Transaction.Reference));
        Assert.Contains("to pay €12.30 to ACME Ltd", Assert.Single(await client.ListTestMessagesAsync(phone)).Body, StringComparison.Ordinal);
        var code = await client.GetLatestTestCodeAsync(phone, DeliveryChannel.Sms);

        // One cent more is 401 transaction_mismatch; the same payment verifies and is echoed
        var refused = await Assert.ThrowsAsync<DevRiftException>(() => client.VerifyAsync(new VerifyRequest
        {
            User = phone, Type = VerificationType.Phone, Code = code,
            Transaction = new Transaction { Amount = "12.31", Currency = "EUR", Payee = "ACME Ltd", Reference = "INV-1" },
        }));
        Assert.Equal((System.Net.HttpStatusCode.Unauthorized, "transaction_mismatch"), (refused.Status, refused.Code));
        var verification = await client.VerifyAsync(new VerifyRequest { User = phone, Type = VerificationType.Phone, Code = code, Transaction = acme });
        Assert.Equal(("PHONE", "12.30"), (verification.Type, verification.Transaction!.Amount));

        // A security key's assertion options for the payment: verified with it, echoed
        using var authenticator = new SoftwareAuthenticator($"http://localhost:{fixture.Server.BaseAddress.Port}");
        var user = TestUsers.NewEmail("keypay");
        await client.RegisterSecurityKeyAsync(user, Json(authenticator.Register(await client.CreateSecurityKeyRegistrationOptionsAsync(user))));
        var options = await client.CreateSecurityKeyAssertionOptionsAsync(user, acme);
        var byKey = await client.VerifyAsync(new VerifyRequest { User = user, Type = VerificationType.Key, Credential = Json(authenticator.Assert(options)), Transaction = acme });
        Assert.Equal(("KEY", "ACME Ltd"), (byKey.Type, byKey.Transaction!.Payee));
    }

    [Fact]
    public async Task Live_and_test_mode_are_told_apart_and_the_outbox_is_test_only()
    {
        using var test = fixture.NewClient();
        using var live = fixture.NewClient(await fixture.NewLiveKeyAsync());
        Assert.True(test.IsTestMode);
        Assert.False(test.IsLiveMode);
        Assert.True(live.IsLiveMode);

        var refused = await Assert.ThrowsAsync<DevRiftException>(() => live.ListTestMessagesAsync(TestUsers.NewEmail("live")));
        Assert.Equal((System.Net.HttpStatusCode.Forbidden, "live_mode_forbidden"), (refused.Status, refused.Code));
        var enrollment = await live.EnrollAppAsync(TestUsers.NewEmail("live"));
        Assert.True(enrollment.Livemode);
    }

    private static JsonElement Json(System.Text.Json.Nodes.JsonNode node) => JsonDocument.Parse(node.ToJsonString()).RootElement.Clone();
}
