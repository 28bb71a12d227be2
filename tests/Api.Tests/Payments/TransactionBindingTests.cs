using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Dapper;
using DevRift.Hsm.Api.Tests.Audit;
using DevRift.Hsm.Api.Tests.Factors;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Api.Tests.SecurityKeys;

namespace DevRift.Hsm.Api.Tests.Payments;

/// <summary>
/// PSD2 dynamic linking: a code bound to a payment's amount and payee in the HSM derivation, shown to the user in the
/// message, refused (401 transaction_mismatch, an attempt counted) for any other payment; APP records what it
/// authorised; KEY's WebAuthn challenge covers the transaction. On SQLite and PostgreSQL.
/// </summary>
public sealed class TransactionBindingTests(FakeClockServers servers) : IClassFixture<FakeClockServers>
{
    private const string Acme = "Amount=12.34, Currency=EUR, Payee=ACME Ltd, Reference=INV-1";

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task An_sms_code_for_12_34_EUR_to_ACME_is_refused_for_any_other_payment_and_verifies_for_that_one(Db db)
    {
        // Given an SMS code sent in the documented comma form for 12.34 EUR to ACME Ltd
        var server = await servers.GetAsync(db);
        var phone = TestUsers.NewPhone();
        using var sent = await server.PostCurlAsync("/v1/mfa", $"User={phone}, Type=SMS, {Acme}");
        var challenge = await sent.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");
        var id = challenge.GetProperty("id").GetString()!;
        AssertTransaction(challenge.GetProperty("transaction"), "12.34", "EUR", "ACME Ltd", "INV-1");
        var code = await server.LatestCodeAsync(phone, "SMS");

        // Then the message names the amount and the payee, and GET shows the transaction
        Assert.Contains("is your", await LatestBodyAsync(server, phone, "SMS"), StringComparison.Ordinal);
        Assert.Contains("to pay €12.34 to ACME Ltd", await LatestBodyAsync(server, phone, "SMS"), StringComparison.Ordinal);
        using (var get = await server.NewClient(server.TestKey).GetAsync($"/v1/mfa/{id}"))
        {
            AssertTransaction((await get.AssertJsonAsync(HttpStatusCode.OK, "challenge")).GetProperty("transaction"), "12.34", "EUR", "ACME Ltd", "INV-1");
        }

        // When the right code is presented for one cent more, one character more in the payee, another currency, and no transaction
        string[] others =
        [
            "Amount=12.35, Currency=EUR, Payee=ACME Ltd, Reference=INV-1",
            "Amount=12.34, Currency=EUR, Payee=ACME Ltd., Reference=INV-1",
            "Amount=12.34, Currency=USD, Payee=ACME Ltd, Reference=INV-1",
            "",
        ];
        for (var i = 0; i < others.Length; i++)
        {
            using var refused = await server.PostCurlAsync("/v1/mfa/verify", $"User={phone}, Type=PHONE, Code={code}" + (others[i].Length > 0 ? ", " + others[i] : ""));

            // Then each is 401 transaction_mismatch, counted as a failed attempt, and never tells what the code was for
            var problem = await refused.AssertProblemAsync(HttpStatusCode.Unauthorized, "transaction_mismatch", "transaction");
            Assert.Equal(4 - i, problem.GetProperty("attempts_remaining").GetInt32());
            Assert.DoesNotContain("12.34", problem.GetRawText(), StringComparison.Ordinal);
            Assert.DoesNotContain("ACME", problem.GetRawText(), StringComparison.Ordinal);
        }

        await using var c = await server.OpenDatabaseAsync();
        Assert.Equal(("pending", 4L), await c.QuerySingleAsync<(string, long)>("SELECT status, attempts FROM challenges WHERE id = @id", new { id }));

        // When the same code is presented with the same payment
        using var ok = await server.PostCurlAsync("/v1/mfa/verify", $"User={phone}, Type=PHONE, Code={code}, {Acme}");

        // Then 200, echoing the transaction; the challenge is consumed; the audit record names the payment, not the code
        var verification = await ok.AssertJsonAsync(HttpStatusCode.OK, "verification");
        AssertTransaction(verification.GetProperty("transaction"), "12.34", "EUR", "ACME Ltd", "INV-1");
        Assert.Equal("approved", await server.StatusInDatabaseAsync(id));
        await server.ChainAuditAsync();
        var detail = await c.QuerySingleAsync<string>(
            "SELECT detail FROM audit_log WHERE event = 'verification' AND subject = @phone AND outcome = 'valid'", new { phone });
        AssertTransaction(JsonDocument.Parse(detail).RootElement.GetProperty("transaction"), "12.34", "EUR", "ACME Ltd", "INV-1");
        Assert.DoesNotContain(code, detail, StringComparison.Ordinal);
        using var replay = await server.PostCurlAsync("/v1/mfa/verify", $"User={phone}, Type=PHONE, Code={code}, {Acme}");
        await replay.AssertProblemAsync(HttpStatusCode.Unauthorized, "no_pending_challenge");
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Json_amounts_are_canonical_per_currency_and_the_reference_is_bound_too(Db db)
    {
        // Given an email code for "12.3" EUR, in JSON, to a German-speaking user
        var server = await servers.GetAsync(db);
        var user = TestUsers.NewEmail("canon");
        using var sent = await server.PostJsonAsync("/v1/mfa", new
        {
            user, type = "EMAIL", locale = "de", transaction = new { amount = "12.3", currency = "EUR", payee = "ACME Ltd", reference = "INV-1" },
        });
        var id = (await sent.AssertJsonAsync(HttpStatusCode.Accepted, "challenge")).GetProperty("id").GetString()!;
        var code = await server.LatestCodeAsync(user, "EMAIL");

        // Then the stored amount is canonical (12.30) and the German message shows 12,30 € and the payee
        await using var c = await server.OpenDatabaseAsync();
        Assert.Equal(("12.30", "EUR", "ACME Ltd", "INV-1"), await c.QuerySingleAsync<(string, string, string, string)>(
            "SELECT transaction_amount, transaction_currency, transaction_payee, transaction_reference FROM challenges WHERE id = @id", new { id }));
        Assert.Matches(new Regex(@"Zahlung von 12,30\s€ an ACME Ltd"), await LatestBodyAsync(server, user, "EMAIL"));

        // When it is presented as 12.30 with another reference
        using var otherReference = await server.PostJsonAsync("/v1/mfa/verify", new
        {
            user, type = "EMAIL", code, transaction = new { amount = "12.30", currency = "EUR", payee = "ACME Ltd", reference = "INV-2" },
        });

        // Then 401 transaction_mismatch; and as 012.30 with the same reference (the same amount) it verifies
        await otherReference.AssertProblemAsync(HttpStatusCode.Unauthorized, "transaction_mismatch", "transaction");
        using var same = await server.PostJsonAsync("/v1/mfa/verify", new
        {
            user, type = "EMAIL", code, transaction = new { amount = "012.30", currency = "EUR", payee = "ACME Ltd", reference = "INV-1" },
        });
        AssertTransaction((await same.AssertJsonAsync(HttpStatusCode.OK, "verification")).GetProperty("transaction"), "12.30", "EUR", "ACME Ltd", "INV-1");
        Assert.Equal(("approved", 2L), await c.QuerySingleAsync<(string, long)>("SELECT status, attempts FROM challenges WHERE id = @id", new { id }));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task WhatsApp_and_voice_messages_name_the_payment_and_an_ordinary_url_encoded_form_carries_it(Db db)
    {
        // Given a WhatsApp code in French sent as an ordinary URL-encoded form, and a Spanish voice call sent as JSON
        var server = await servers.GetAsync(db);
        var whatsapp = TestUsers.NewPhone();
        var call = TestUsers.NewPhone();
        using (var sent = await server.PostCurlAsync("/v1/mfa",
            $"User={Uri.EscapeDataString(whatsapp)}&Type=WHATSAPP&Locale=fr&Amount=1234.5&Currency=EUR&Payee=Caf%C3%A9%20de%20la%20Gare"))
        {
            await sent.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");
        }

        using (var sent = await server.PostJsonAsync("/v1/mfa", new { user = call, type = "CALL", locale = "es", transaction = new { amount = "12.34", currency = "EUR", payee = "ACME Ltd" } }))
        {
            await sent.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");
        }

        // Then the French text shows 1 234,50 € and the payee; the Spanish call reads the code, then the amount and payee
        Assert.Matches(new Regex(@"pour payer 1\s234,50\s€ à Café de la Gare\."), await LatestBodyAsync(server, whatsapp, "WHATSAPP"));
        Assert.Contains("Aprueba el pago de 12,34 € a ACME Ltd.", await LatestBodyAsync(server, call, "CALL"), StringComparison.Ordinal);

        // And the WhatsApp code verifies with the same payment in the same encoding
        var code = await server.LatestCodeAsync(whatsapp, "WHATSAPP");
        using var ok = await server.PostCurlAsync("/v1/mfa/verify",
            $"User={Uri.EscapeDataString(whatsapp)}&Type=PHONE&Code={code}&Amount=1234.50&Currency=EUR&Payee=Caf%C3%A9%20de%20la%20Gare");
        AssertTransaction((await ok.AssertJsonAsync(HttpStatusCode.OK, "verification")).GetProperty("transaction"), "1234.50", "EUR", "Café de la Gare", null);
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_code_sent_without_a_transaction_is_refused_with_one_and_its_message_is_unchanged(Db db)
    {
        // Given an ordinary email code
        var server = await servers.GetAsync(db);
        var user = TestUsers.NewEmail("plain");
        await server.SendAcceptedAsync(user, "EMAIL");
        var code = await server.LatestCodeAsync(user, "EMAIL");
        var body = await LatestBodyAsync(server, user, "EMAIL");
        Assert.StartsWith($"Your Demo verification code is {code}. It expires in 10 minutes.", body, StringComparison.Ordinal);

        // When it is presented with a transaction
        using var refused = await server.PostCurlAsync("/v1/mfa/verify", $"User={user}, Type=EMAIL, Code={code}, {Acme}");

        // Then 401 transaction_mismatch, and without one it verifies (with no transaction in the answer)
        await refused.AssertProblemAsync(HttpStatusCode.Unauthorized, "transaction_mismatch", "transaction");
        using var ok = await server.VerifyCodeAsync(user, "EMAIL", code);
        Assert.False((await ok.AssertJsonAsync(HttpStatusCode.OK, "verification")).TryGetProperty("transaction", out _));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_dual_code_for_a_payment_verifies_by_either_channel_only_with_that_payment(Db db)
    {
        // Given a DUAL send for 12.34 EUR to ACME Ltd (enterprise application), in English
        var server = await servers.GetAsync(db);
        var (_, key) = await server.CreateApplicationWithKeyAsync("Dual Pay", "enterprise");
        var email = TestUsers.NewEmail("dualpay");
        var phone = TestUsers.NewPhone();
        var dual = $"{email}:{phone}";
        using var sent = await server.PostCurlAsync("/v1/mfa", $"User={dual}, Type=DUAL, {Acme}", key);
        var id = (await sent.AssertJsonAsync(HttpStatusCode.Accepted, "challenge")).GetProperty("id").GetString()!;
        var smsCode = await server.LatestCodeAsync(dual, "SMS", key);
        Assert.Contains("payment of €12.34 to ACME Ltd", await LatestBodyAsync(server, dual, "EMAIL", key), StringComparison.Ordinal);

        // When the SMS code is presented for 12.35
        using var refused = await server.PostCurlAsync("/v1/mfa/verify", $"User={dual}, Type=DUAL, Code={smsCode}, Amount=12.35, Currency=EUR, Payee=ACME Ltd, Reference=INV-1", key);

        // Then 401 transaction_mismatch; with 12.34 it verifies and consumes the challenge
        await refused.AssertProblemAsync(HttpStatusCode.Unauthorized, "transaction_mismatch", "transaction");
        using var ok = await server.PostCurlAsync("/v1/mfa/verify", $"User={dual}, Type=DUAL, Code={smsCode}, {Acme}", key);
        AssertTransaction((await ok.AssertJsonAsync(HttpStatusCode.OK, "verification")).GetProperty("transaction"), "12.34", "EUR", "ACME Ltd", "INV-1");
        Assert.Equal("approved", await server.StatusInDatabaseAsync(id));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task An_Idempotency_Key_retried_for_the_same_payment_answers_the_first_challenge_and_for_another_is_409(Db db)
    {
        // Given a payment send with an Idempotency-Key
        var server = await servers.GetAsync(db);
        var phone = TestUsers.NewPhone();
        var idempotencyKey = Guid.NewGuid().ToString("N");
        using var first = await server.SendIdempotentAsync($"User={phone}, Type=SMS, {Acme}", idempotencyKey);
        var id = (await first.AssertJsonAsync(HttpStatusCode.Accepted, "challenge")).GetProperty("id").GetString();

        // When it is retried with the same payment, and then with one cent more
        using var retry = await server.SendIdempotentAsync($"User={phone}, Type=SMS, Amount=12.34, Currency=EUR, Payee=ACME Ltd, Reference=INV-1", idempotencyKey);
        using var other = await server.SendIdempotentAsync($"User={phone}, Type=SMS, Amount=12.35, Currency=EUR, Payee=ACME Ltd, Reference=INV-1", idempotencyKey);

        // Then the retry is the first challenge, the other payment is 409 (a key never sends a code for another payment), one message
        Assert.Equal(id, (await retry.AssertJsonAsync(HttpStatusCode.Accepted, "challenge")).GetProperty("id").GetString());
        await other.AssertProblemAsync(HttpStatusCode.Conflict, "idempotency_key_reused", "Idempotency-Key");
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM outbox WHERE destination = @phone", new { phone }));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Each_bad_transaction_field_is_a_400_naming_it_and_sends_nothing(Db db)
    {
        // Given sends with one bad transaction field each
        var server = await servers.GetAsync(db);
        (string Fields, string Param)[] cases =
        [
            ("Amount=-12.34, Currency=EUR, Payee=ACME Ltd", "transaction.amount"),
            ("Amount=+12.34, Currency=EUR, Payee=ACME Ltd", "transaction.amount"),
            ("Amount=1.2e3, Currency=EUR, Payee=ACME Ltd", "transaction.amount"),
            ("Amount=12.345, Currency=EUR, Payee=ACME Ltd", "transaction.amount"),
            ("Amount=12.5, Currency=JPY, Payee=ACME Ltd", "transaction.amount"),
            ("Amount=0.00, Currency=EUR, Payee=ACME Ltd", "transaction.amount"),
            ("Amount=1234567890123456789, Currency=JPY, Payee=ACME Ltd", "transaction.amount"),
            ("Amount=12,34, Currency=EUR, Payee=ACME Ltd", "transaction.amount"),
            ("Currency=EUR, Payee=ACME Ltd", "transaction.amount"),
            ("Amount=12.34, Currency=eur, Payee=ACME Ltd", "transaction.currency"),
            ("Amount=12.34, Currency=EUX, Payee=ACME Ltd", "transaction.currency"),
            ("Amount=12.34, Payee=ACME Ltd", "transaction.currency"),
            ("Amount=12.34, Currency=EUR", "transaction.payee"),
            ("Amount=12.34, Currency=EUR, Payee=" + new string('A', 141), "transaction.payee"),
            ("Amount=12.34, Currency=EUR, Payee=ACME%07Ltd", "transaction.payee"),
            ("Amount=12.34, Currency=EUR, Payee=ACME%E2%80%AELtd", "transaction.payee"),
            ("Amount=12.34, Currency=EUR, Payee=ACME Ltd, Reference=" + new string('R', 141), "transaction.reference"),
            ("Reference=INV-1", "transaction.currency"),
        ];
        var phone = TestUsers.NewPhone();
        foreach (var (fields, param) in cases)
        {
            // When each is posted
            using var response = await server.PostCurlAsync("/v1/mfa", $"User={phone}, Type=SMS, {fields}");

            // Then 400 invalid_request naming the field
            await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", param);
        }

        // And a JSON transaction that is not an object, or has an unknown field, is refused the same way
        using (var notObject = await server.PostJsonAsync("/v1/mfa", new { user = phone, type = "SMS", transaction = "12.34 EUR" }))
        {
            await notObject.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "transaction");
        }

        using (var unknown = await server.PostJsonAsync("/v1/mfa", new { user = phone, type = "SMS", transaction = new { amount = "1", currency = "EUR", payee = "A", iban = "DE0" } }))
        {
            await unknown.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "transaction.iban");
        }

        // And nothing was sent or stored
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM challenges WHERE user_key = @phone", new { phone }));
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM outbox WHERE destination = @phone", new { phone }));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task App_and_backup_codes_verified_with_a_transaction_record_and_echo_what_they_authorised(Db db)
    {
        // Given a user with an active authenticator app
        var server = await servers.GetAsync(db);
        var user = FactorApi.NewUser("apppay");
        var enrolment = await server.EnrolActiveAsync(user);
        server.Clock!.Advance(TimeSpan.FromSeconds(30));

        // When the next step's code is verified for 12.34 EUR to ACME Ltd (comma form)
        var code = Rfc6238.CodeAt(enrolment.Seed, server.Now());
        using var ok = await server.PostCurlAsync("/v1/mfa/verify", $"User={user}, Type=APP, Code={code}, {Acme}");

        // Then 200 echoing the transaction, and the audit record of that verification names it (and not the code or seed)
        AssertTransaction((await ok.AssertJsonAsync(HttpStatusCode.OK, "verification")).GetProperty("transaction"), "12.34", "EUR", "ACME Ltd", "INV-1");
        await server.ChainAuditAsync();
        await using var c = await server.OpenDatabaseAsync();
        var details = (await c.QueryAsync<string>(
            "SELECT detail FROM audit_log WHERE event = 'verification' AND subject = @user AND outcome = 'valid' ORDER BY seq", new { user })).ToList();
        Assert.All(details[..^1], d => Assert.False(JsonDocument.Parse(d).RootElement.TryGetProperty("transaction", out _)));
        var detail = JsonDocument.Parse(details[^1]).RootElement;
        Assert.Equal("APP", detail.GetProperty("type").GetString());
        AssertTransaction(detail.GetProperty("transaction"), "12.34", "EUR", "ACME Ltd", "INV-1");
        Assert.DoesNotContain(code, details[^1], StringComparison.Ordinal);
        Assert.DoesNotContain(enrolment.Secret, details[^1], StringComparison.Ordinal);

        // And a backup code verified with a transaction records and echoes it the same way (a backup code cannot carry it either)
        await server.GenerateBackupAsync(user);
        var backup = (await server.LatestBackupCodesAsync(user))[0];
        using var byBackup = await server.PostCurlAsync("/v1/mfa/verify", $"User={user}, Type=BACKUP, Code={backup}, Amount=5, Currency=JPY, Payee=ACME Ltd");
        AssertTransaction((await byBackup.AssertJsonAsync(HttpStatusCode.OK, "verification")).GetProperty("transaction"), "5", "JPY", "ACME Ltd", null);
        await server.ChainAuditAsync();
        var backupDetail = await c.QuerySingleAsync<string>(
            "SELECT detail FROM audit_log WHERE event = 'verification' AND subject = @user AND outcome = 'valid' ORDER BY seq DESC LIMIT 1", new { user });
        AssertTransaction(JsonDocument.Parse(backupDetail).RootElement.GetProperty("transaction"), "5", "JPY", "ACME Ltd", null);
        Assert.DoesNotContain(FactorApi.Normalised(backup), backupDetail, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_security_key_assertion_over_one_payment_is_refused_for_another_and_accepted_for_it(Db db)
    {
        // Given a registered key and assertion options for 12.34 EUR to ACME Ltd
        var server = await servers.GetAsync(db);
        var key = await server.NewKeyApplicationAsync("Key Pay");
        var user = SecurityKeyApi.NewUser("keypay");
        var registered = await server.RegisterKeyAsync(user, bearer: key);
        var acme = new JsonObject { ["amount"] = "12.34", ["currency"] = "EUR", ["payee"] = "ACME Ltd" };
        var options = await AssertionOptionsAsync(server, user, acme, key);
        var plainChallenge = (await server.AssertionOptionsAsync(user, key)).GetProperty("challenge").GetString()!;

        // Then the WebAuthn challenge is SHA-256 over the tag, the stored HSM seed and the canonical transaction
        var challenge = options.GetProperty("challenge").GetString()!;
        var seed = await server.ScalarAsync<byte[]>("SELECT challenge_seed FROM webauthn_ceremonies WHERE challenge = @challenge", new { challenge });
        Assert.Equal(32, seed!.Length);
        var expected = System.Security.Cryptography.SHA256.HashData(Crypto.HsmMac.Encode(
            "devrift.webauthn-challenge.transaction.v1", Convert.ToBase64String(seed), "5:12.34,3:EUR,8:ACME Ltd,0:,"));
        Assert.Equal(expected, Base64UrlText.Decode(challenge));

        // When the key's assertion over those options is presented for 12.35
        var assertion = registered.Authenticator.Assert(options);
        using var refused = await server.PostJsonAsync("/v1/mfa/verify", new JsonObject
        {
            ["user"] = user, ["type"] = "KEY", ["credential"] = assertion,
            ["transaction"] = new JsonObject { ["amount"] = "12.35", ["currency"] = "EUR", ["payee"] = "ACME Ltd" },
        }, key);

        // Then 401 transaction_mismatch; the options are used up, and the failure counts toward the lockout
        var problem = await refused.AssertProblemAsync(HttpStatusCode.Unauthorized, "transaction_mismatch", "transaction");
        Assert.Equal(4, problem.GetProperty("attempts_remaining").GetInt32());
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM webauthn_ceremonies WHERE challenge = @challenge AND used_at IS NOT NULL", new { challenge }));

        // And an assertion over plain options presented with the transaction is refused the same way
        var plainOptions = JsonDocument.Parse($$"""{"challenge":"{{plainChallenge}}","rpId":"localhost"}""").RootElement;
        using var plain = await server.PostJsonAsync("/v1/mfa/verify", new JsonObject
        {
            ["user"] = user, ["type"] = "KEY", ["credential"] = registered.Authenticator.Assert(plainOptions), ["transaction"] = acme.DeepClone(),
        }, key);
        await plain.AssertProblemAsync(HttpStatusCode.Unauthorized, "transaction_mismatch", "transaction");

        // When new options for the payment are asserted and presented with the same payment
        var again = await AssertionOptionsAsync(server, user, acme, key);
        using var ok = await server.PostJsonAsync("/v1/mfa/verify", new JsonObject
        {
            ["user"] = user, ["type"] = "KEY", ["credential"] = registered.Authenticator.Assert(again), ["transaction"] = acme.DeepClone(),
        }, key);

        // Then 200 KEY, echoing the transaction
        var verification = await ok.AssertJsonAsync(HttpStatusCode.OK, "verification");
        Assert.Equal("KEY", verification.GetProperty("type").GetString());
        AssertTransaction(verification.GetProperty("transaction"), "12.34", "EUR", "ACME Ltd", null);
    }

    private static async Task<JsonElement> AssertionOptionsAsync(ApplianceServer server, string user, JsonObject transaction, string key)
    {
        using var response = await server.PostJsonAsync("/v1/mfa/keys/assertion/options", new JsonObject { ["user"] = user, ["transaction"] = transaction.DeepClone() }, key);
        return await response.AssertJsonAsync(HttpStatusCode.OK);
    }

    private static async Task<string> LatestBodyAsync(ApplianceServer server, string user, string channel, string? key = null)
    {
        using var response = await server.NewClient(key ?? server.TestKey).GetAsync($"/v1/test/messages?user={Uri.EscapeDataString(user)}");
        var list = await response.AssertJsonAsync(HttpStatusCode.OK, "list");
        return list.GetProperty("data").EnumerateArray().First(m => m.GetProperty("channel").GetString() == channel).GetProperty("body").GetString()!;
    }

    private static void AssertTransaction(JsonElement transaction, string amount, string currency, string payee, string? reference)
    {
        Assert.Equal(amount, transaction.GetProperty("amount").GetString());
        Assert.Equal(currency, transaction.GetProperty("currency").GetString());
        Assert.Equal(payee, transaction.GetProperty("payee").GetString());
        Assert.Equal(reference, transaction.TryGetProperty("reference", out var r) ? r.GetString() : null);
    }
}
