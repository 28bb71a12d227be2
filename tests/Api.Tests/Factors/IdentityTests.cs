using System.Net;
using Dapper;
using DevRift.Hsm.Api.Tests.Audit;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Api.Tests.SecurityKeys;
using DevRift.Hsm.Appliance.Backup;
using DevRift.Hsm.Crypto;
using Microsoft.Extensions.DependencyInjection;

namespace DevRift.Hsm.Api.Tests.Factors;

/// <summary>
/// Issue 15, part 4: one end user across contacts. An identity owns the factors, backup codes and lockout; a DUAL send
/// or set links the email and the phone; an integrator's <c>user_id</c> names the identity; data keyed by contact
/// strings before identities existed is moved onto them at start without loss.
/// </summary>
public sealed class IdentityTests(FakeClockServers servers) : IClassFixture<FakeClockServers>
{
    private const string NotAnIdentity = "substr(user_key, 1, 4) <> 'idn_'";

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_DUAL_backup_code_verifies_with_the_email_the_phone_or_the_pair_and_only_once(Db db)
    {
        // Given a DUAL backup set
        var server = await servers.GetAsync(db);
        var (email, phone) = (TestUsers.NewEmail("dual"), TestUsers.NewPhone());
        await server.GenerateBackupAsync($"{email}:{phone}", "DUAL");
        var codes = await server.LatestBackupCodesAsync(email);
        Assert.Equal(codes, await server.LatestBackupCodesAsync(phone, "SMS"));

        // Then the email, the phone and the pair are one user: each sees the same ten codes
        foreach (var user in (string[])[email, phone, $"{email}:{phone}"])
        {
            var factors = await server.FactorsAsync(user);
            Assert.Equal((10, 10, user), (factors.GetProperty("backup_codes").GetProperty("remaining").GetInt32(),
                factors.GetProperty("backup_codes").GetProperty("total").GetInt32(), factors.GetProperty("user").GetString()));
        }

        // When one code is verified as the email, another as the phone and a third as the pair, then each is 200
        server.Clock!.Advance(TimeSpan.FromSeconds(1));
        await server.VerifyBackupAsync(email, codes[0]).ExpectVerifiedAsync("BACKUP");
        await server.VerifyBackupAsync(phone, codes[1]).ExpectVerifiedAsync("BACKUP");
        await server.VerifyBackupAsync($"{email}:{phone}", codes[2]).ExpectVerifiedAsync("BACKUP");

        // and a code used through one contact is used for the other: 401, not counted as a guess
        var problem = await server.VerifyBackupAsync(phone, codes[0]).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        Assert.Contains("already used", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(7, (await server.FactorsAsync(email)).GetProperty("backup_codes").GetProperty("remaining").GetInt32());
        Assert.Equal(0, (await server.FactorsAsync(phone)).GetProperty("lockout").GetProperty("consecutive_failures").GetInt32());

        // and the database holds one identity with both contacts, owning the set and its codes
        var identity = await IdentityOfAsync(server, email);
        Assert.Equal(identity, await IdentityOfAsync(server, phone));
        Assert.Equal(2, await server.CountAsync("SELECT COUNT(*) FROM identity_contacts WHERE identity_id = @identity", new { identity }));
        Assert.Equal(10, await server.CountAsync("SELECT COUNT(*) FROM backup_codes WHERE user_key = @identity", new { identity }));
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM backup_sets WHERE user_key = @identity AND revoked_at IS NULL", new { identity }));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task An_app_enrolled_by_email_verifies_by_phone_once_a_DUAL_send_links_them_and_the_lockout_is_shared(Db db)
    {
        // Given an app enrolled and confirmed for an email address
        var server = await servers.GetAsync(db);
        var (email, phone) = (TestUsers.NewEmail("link"), TestUsers.NewPhone());
        var e = await server.EnrolActiveAsync(email);
        server.Clock!.Advance(TimeSpan.FromSeconds(30));

        // Then the phone alone is another user: it has no app
        await server.VerifyAppAsync(phone, Rfc6238.CodeAt(e.Seed, server.Now())).ExpectProblemAsync(HttpStatusCode.Unauthorized, "not_enrolled");
        Assert.Equal("none", (await server.FactorsAsync(phone)).GetProperty("app").GetProperty("status").GetString());

        // When a DUAL code is sent to the pair
        await server.SendAcceptedAsync($"{email}:{phone}", "DUAL");

        // Then the phone is the same user: its app verifies by the phone
        Assert.Equal("active", (await server.FactorsAsync(phone)).GetProperty("app").GetProperty("status").GetString());
        await server.VerifyAppAsync(phone, Rfc6238.CodeAt(e.Seed, server.Now())).ExpectVerifiedAsync("APP");

        // and failures by either contact count toward one lockout (strict profile: five, then 429 for both)
        await server.PatchSettingsAsync("""{"lockout_profile":"strict"}""");
        try
        {
            server.Clock.Advance(TimeSpan.FromSeconds(30));
            var wrong = Rfc6238.WrongCode(e.Seed, server.Now());
            for (var i = 0; i < 5; i++)
            {
                await server.VerifyAppAsync(i % 2 == 0 ? email : phone, wrong).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
            }

            await server.VerifyAppAsync(phone, Rfc6238.CodeAt(e.Seed, server.Now())).ExpectProblemAsync(HttpStatusCode.TooManyRequests, "too_many_attempts");
            await server.VerifyAppAsync(email, Rfc6238.CodeAt(e.Seed, server.Now())).ExpectProblemAsync(HttpStatusCode.TooManyRequests, "too_many_attempts");
            var identity = await IdentityOfAsync(server, email);
            Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM lockouts WHERE user_key = @identity AND locks = 1 AND failures = 5", new { identity }));

            // and the lock's audit record names the contact the integrator used, not the identity
            Assert.DoesNotContain(await server.AuditRowsAsync(), r => r.Subject?.StartsWith("idn_", StringComparison.Ordinal) == true);
        }
        finally
        {
            await server.PatchSettingsAsync("""{"lockout_profile":"source_aware"}""");
        }
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_user_id_names_the_identity_across_contacts_and_two_user_ids_are_never_merged(Db db)
    {
        // Given an app enrolled for an email with the integrator's user_id
        var server = await servers.GetAsync(db);
        var (work, home) = (TestUsers.NewEmail("work"), TestUsers.NewEmail("home"));
        var userId = "cust-" + Guid.NewGuid().ToString("N")[..8];
        using (var enrol = await server.PostCurlAsync("/v1/mfa/app", $"User={work}, User_Id={userId}"))
        {
            var body = await enrol.AssertJsonAsync(HttpStatusCode.OK, "app_enrollment");
            var seed = Base32Text.Decode(body.GetProperty("secret").GetString()!);
            await server.PostJsonAsync("/v1/mfa/verify", new { user = work, type = "APP", code = Rfc6238.CodeAt(seed, server.Now()) }).ExpectVerifiedAsync("APP");
            server.Clock!.Advance(TimeSpan.FromSeconds(30));

            // When the user signs in with another address and the same user_id, then the app verifies (JSON and the comma form)
            await server.PostJsonAsync("/v1/mfa/verify", new { user = home, user_id = userId, type = "APP", code = Rfc6238.CodeAt(seed, server.Now()) })
                .ExpectVerifiedAsync("APP");
            server.Clock.Advance(TimeSpan.FromSeconds(30));
            await server.PostCurlAsync("/v1/mfa/verify", $"User={home}, User_Id={userId}, Type=APP, Code={Rfc6238.CodeAt(seed, server.Now())}").ExpectVerifiedAsync("APP");

            // and the factors summary by user_id shows it; without the user_id the other address is still nobody
            using var factors = await server.Client.GetAsync($"/v1/mfa/factors?user={Uri.EscapeDataString(home)}&user_id={userId}");
            Assert.Equal("active", (await factors.AssertJsonAsync(HttpStatusCode.OK, "factors")).GetProperty("app").GetProperty("status").GetString());
            Assert.Equal("none", (await server.FactorsAsync(home)).GetProperty("app").GetProperty("status").GetString());
        }

        // When the first address is sent a code with another user_id, then 409 identity_conflict and nothing changed
        var before = await IdentityTableCountsAsync(server);
        var sendsBefore = await server.SendTableCountsAsync();
        using (var conflict = await server.PostCurlAsync("/v1/mfa", $"User={work}, Type=EMAIL, User_Id=other-{userId}"))
        {
            await conflict.AssertProblemAsync(HttpStatusCode.Conflict, "identity_conflict", "user_id");
        }

        await server.PostCurlAsync("/v1/mfa/app", $"User={work}, User_Id=other-{userId}").ExpectProblemAsync(HttpStatusCode.Conflict, "identity_conflict");
        Assert.Equal(before, await IdentityTableCountsAsync(server));
        Assert.Equal(sendsBefore, await server.SendTableCountsAsync());

        // and a user_id that is not printable ASCII without spaces, or too long, is 400 invalid_user_id naming the field
        foreach (var bad in (string[])["has space", "tab\there", "é-accent", new string('x', 129)])
        {
            using var response = await server.PostJsonAsync("/v1/mfa/app", new { user = work, user_id = bad });
            await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_user_id", "user_id");
        }

        Assert.Equal(before, await IdentityTableCountsAsync(server));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Security_keys_of_two_users_that_a_DUAL_send_merges_both_verify_with_either_contact(Db db)
    {
        // Given a security key registered for an email and another for a phone (two users, two WebAuthn user handles)
        var server = await servers.GetAsync(db);
        var (email, phone) = (TestUsers.NewEmail("keys"), TestUsers.NewPhone());
        var byEmail = await server.RegisterKeyAsync(email);
        var byPhone = await server.RegisterKeyAsync(phone);
        Assert.NotEqual(Convert.ToHexString(byEmail.Authenticator.UserHandle!), Convert.ToHexString(byPhone.Authenticator.UserHandle!));

        // When a DUAL send links the email and the phone
        await server.SendAcceptedAsync($"{email}:{phone}", "DUAL");

        // Then either contact lists both keys as its own, and each key verifies as either contact (its assertion carries
        // the handle it was registered with)
        foreach (var user in (string[])[email, phone])
        {
            var keys = await server.ListKeysAsync(user);
            Assert.Equal(new[] { byEmail.Id, byPhone.Id }.Order(StringComparer.Ordinal), keys.Select(k => k.GetProperty("id").GetString()!).Order(StringComparer.Ordinal));
            Assert.All(keys, k => Assert.Equal(user, k.GetProperty("user").GetString()));
        }

        await server.VerifiedWithKeyAsync(email, byPhone.Authenticator);
        await server.VerifiedWithKeyAsync(phone, byEmail.Authenticator);

        // and one identity owns both keys and keeps one user handle
        var identity = await IdentityOfAsync(server, phone);
        Assert.Equal(2, await server.CountAsync("SELECT COUNT(*) FROM security_keys WHERE user_key = @identity AND user_handle IS NOT NULL", new { identity }));
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM webauthn_users WHERE user_key = @identity", new { identity }));
    }

    [Fact]
    public async Task Racing_requests_that_link_one_user_end_with_one_identity_that_owns_everything()
    {
        // Given PostgreSQL, where requests run concurrently (SQLite's single writer serialises them)
        var server = await servers.GetAsync(Db.Postgres);
        for (var round = 0; round < 6; round++)
        {
            var (email, phone) = (TestUsers.NewEmail("race"), TestUsers.NewPhone());

            // When an app enrolment by the email, an SMS backup set by the phone and a DUAL send to the pair race
            var results = await Task.WhenAll(
                WithRetryAsync(() => server.PostCurlAsync("/v1/mfa/app", $"User={email}")),
                WithRetryAsync(() => server.PostCurlAsync("/v1/mfa/backup", $"User={phone}, Type=SMS")),
                WithRetryAsync(() => server.PostCurlAsync("/v1/mfa", $"User={email}:{phone}, Type=DUAL")));
            Assert.Equal([HttpStatusCode.OK, HttpStatusCode.Accepted, HttpStatusCode.Accepted], results);

            // Then one identity holds both contacts and owns the app and the backup codes; no identity is left without contacts
            var identity = await IdentityOfAsync(server, email);
            Assert.Equal(identity, await IdentityOfAsync(server, phone));
            Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM totp_factors WHERE user_key = @identity", new { identity }));
            Assert.Equal(10, await server.CountAsync("SELECT COUNT(*) FROM backup_codes WHERE user_key = @identity", new { identity }));
            Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM identities i WHERE NOT EXISTS (SELECT 1 FROM identity_contacts c WHERE c.identity_id = i.id)"));
            Assert.Equal("pending", (await server.FactorsAsync(phone)).GetProperty("app").GetProperty("status").GetString());
        }

        static async Task<HttpStatusCode> WithRetryAsync(Func<Task<HttpResponseMessage>> send)
        {
            // A deadlock or a unique key won by the other request is a 503 the client retries (the .NET client does).
            for (var attempt = 0; ; attempt++)
            {
                using var response = await send();
                if (response.StatusCode != HttpStatusCode.ServiceUnavailable || attempt == 3)
                {
                    return response.StatusCode;
                }
            }
        }
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Users_stored_by_contact_before_identities_are_moved_onto_one_identity_at_start_without_loss(Db db)
    {
        // Given data as the appliance stored it before identities: an app under the email, a DUAL backup set under
        // email:phone (its verifiers bound to that key) and a lockout under the phone
        await using var a = await ApplianceServer.StartAsync(db, fakeClock: true);
        var (email, phone) = (TestUsers.NewEmail("legacy"), TestUsers.NewPhone());
        var dual = $"{email}:{phone}";
        var e = await a.EnrolActiveAsync(email);
        await a.GenerateBackupAsync(dual, "DUAL");
        var codes = await a.LatestBackupCodesAsync(email);
        await LegacyFormAsync(a, email, phone, dual, codes);
        Assert.Equal(0, await a.CountAsync("SELECT COUNT(*) FROM identities"));

        // When a node starts on that database
        await using var b = await ApplianceServer.StartAsync(db, sameSiteAs: a);

        // Then every row is owned by one identity holding both contacts, and the backfill is marked done
        Assert.Equal(1, await b.CountAsync("SELECT COUNT(*) FROM identities"));
        var identity = await IdentityOfAsync(b, email);
        Assert.Equal(identity, await IdentityOfAsync(b, phone));
        foreach (var table in (string[])["totp_factors", "backup_sets", "backup_codes", "lockouts"])
        {
            Assert.Equal(0, await b.CountAsync($"SELECT COUNT(*) FROM {table} WHERE {NotAnIdentity}"));
            Assert.True(await b.CountAsync($"SELECT COUNT(*) FROM {table} WHERE user_key = @identity", new { identity }) > 0, table);
        }

        Assert.Equal(1, await b.CountAsync("SELECT COUNT(*) FROM maintenance WHERE name = 'identity_backfill' AND done_at IS NOT NULL"));

        // and nothing was lost: the app verifies by the phone, the old codes by either contact, the lockout's count stayed
        a.Clock!.Advance(TimeSpan.FromSeconds(30));
        var factors = await b.FactorsAsync(phone);
        Assert.Equal(("active", 10, 3), (factors.GetProperty("app").GetProperty("status").GetString(),
            factors.GetProperty("backup_codes").GetProperty("remaining").GetInt32(), factors.GetProperty("lockout").GetProperty("consecutive_failures").GetInt32()));
        await b.VerifyAppAsync(phone, Rfc6238.CodeAt(e.Seed, a.Now())).ExpectVerifiedAsync("APP");
        await b.VerifyBackupAsync(email, codes[0]).ExpectVerifiedAsync("BACKUP");
        await b.VerifyBackupAsync(phone, codes[1]).ExpectVerifiedAsync("BACKUP");
        await b.VerifyBackupAsync(dual, codes[2]).ExpectVerifiedAsync("BACKUP");
        Assert.Equal(7, (await b.FactorsAsync(email)).GetProperty("backup_codes").GetProperty("remaining").GetInt32());

        // and a third node finds the work done and changes nothing
        var contacts = await b.CountAsync("SELECT COUNT(*) FROM identity_contacts");
        await using var c = await ApplianceServer.StartAsync(db, sameSiteAs: a);
        Assert.Equal((1, contacts), (await c.CountAsync("SELECT COUNT(*) FROM identities"), await c.CountAsync("SELECT COUNT(*) FROM identity_contacts")));
    }

    /// <summary>
    /// Rewrites the server's rows to what an appliance before migration 0014 held: keyed by the contact strings, the
    /// backup verifiers bound to the user key (HSM MACs of the application, mode and key, as that version computed
    /// them), no identities, and the backfill not yet run.
    /// </summary>
    private static async Task LegacyFormAsync(ApplianceServer server, string email, string phone, string dual, List<string> codes)
    {
        var identity = await IdentityOfAsync(server, email);
        var verifiers = server.Services.GetRequiredService<LookupVerifiers>();
        var legacy = codes.Select(code => verifiers.Compute("backup_code", $"{server.ApplicationId}/test/{dual}", BackupCodes.ParseCode(code))).ToList();
        await using var c = await server.OpenDatabaseAsync();
        await using var tx = await c.BeginTransactionAsync();
        var set = await c.QuerySingleAsync<string>("SELECT id FROM backup_sets WHERE user_key = @identity AND revoked_at IS NULL", new { identity }, tx);
        await c.ExecuteAsync("UPDATE totp_factors SET user_key = @email WHERE user_key = @identity", new { email, identity }, tx);
        await c.ExecuteAsync("UPDATE backup_sets SET user_key = @dual WHERE user_key = @identity", new { dual, identity }, tx);
        await c.ExecuteAsync("DELETE FROM backup_codes WHERE user_key = @identity", new { identity }, tx);
        await c.ExecuteAsync(
            "INSERT INTO backup_codes (id, set_id, application_id, mode, user_key, owner, verifier, verifier_version) VALUES (@id, @set, @app, 'test', @dual, @dual, @verifier, @version)",
            legacy.Select((mac, i) => new { id = $"bkc_legacy{i}", set, app = server.ApplicationId, dual, verifier = mac.Mac, version = mac.Version }), tx);
        await c.ExecuteAsync("DELETE FROM lockouts WHERE user_key = @identity", new { identity }, tx);
        await c.ExecuteAsync("DELETE FROM lockout_sources WHERE user_key = @identity", new { identity }, tx);
        await c.ExecuteAsync(
            "INSERT INTO lockouts (application_id, mode, user_key, failures, locks, locked_until, hard_locked) VALUES (@app, 'test', @phone, 3, 0, 0, 0)",
            new { app = server.ApplicationId, phone }, tx);
        await c.ExecuteAsync("DELETE FROM identity_contacts", transaction: tx);
        await c.ExecuteAsync("DELETE FROM identities", transaction: tx);
        await c.ExecuteAsync("UPDATE maintenance SET done_at = NULL WHERE name = 'identity_backfill'", transaction: tx);
        await tx.CommitAsync();
    }

    private static async Task<string> IdentityOfAsync(ApplianceServer server, string contact)
    {
        await using var c = await server.OpenDatabaseAsync();
        return await c.QuerySingleAsync<string>("SELECT identity_id FROM identity_contacts WHERE value = @contact", new { contact });
    }

    private static async Task<(long Identities, long Contacts, long Factors)> IdentityTableCountsAsync(ApplianceServer server) =>
        (await server.CountAsync("SELECT COUNT(*) FROM identities"), await server.CountAsync("SELECT COUNT(*) FROM identity_contacts"),
            await server.CountAsync("SELECT COUNT(*) FROM totp_factors"));
}
