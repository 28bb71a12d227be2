using System.Net;
using Dapper;
using DevRift.Hsm.Api.Tests.Factors;
using DevRift.Hsm.Api.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace DevRift.Hsm.Api.Tests.Audit;

/// <summary>Each kind of security event lands in audit_log with its exact event name, actor, subject and outcome.</summary>
public sealed class AuditEventTests : IClassFixture<FakeClockServers>
{
    private readonly FakeClockServers _servers;

    public AuditEventTests(FakeClockServers servers) => _servers = servers;

    /// <summary>The problem code of a 4xx response.</summary>
    private static async Task<string> ProblemCodeAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode is >= 400 and < 500, $"expected a 4xx, got {(int)response.StatusCode}: {text}");
        return System.Text.Json.JsonDocument.Parse(text).RootElement.GetProperty("code").GetString()!;
    }

    private static string KeyId(string secret) => "ak_" + secret[(secret.IndexOf('_', 3) + 1)..][..10];

    [Fact]
    public async Task A_send_and_its_verifications_are_recorded_with_the_key_id_user_type_and_outcome()
    {
        // Given a test key and a fresh user
        var server = await _servers.GetAsync(Db.Sqlite);
        var user = TestUsers.NewEmail("audit-send").ToUpperInvariant();
        var subject = user.ToLowerInvariant();

        // When a code is sent
        string challengeId = "";
        var sent = await server.RowsDuringAsync(async () => challengeId = (await server.SendAcceptedAsync(user, "EMAIL")).GetProperty("id").GetString()!);

        // Then one challenge.send record names the key, application, mode, normalised user and challenge
        var send = Assert.Single(sent);
        Assert.Equal(("challenge.send", KeyId(server.TestKey), server.ApplicationId, "test", subject, "ok"),
            (send.Event, send.Actor, send.ApplicationId, send.Mode, send.Subject, send.Outcome));
        Assert.Equal(challengeId, send.DetailJson.GetProperty("challenge_id").GetString());
        Assert.Equal("EMAIL", send.DetailJson.GetProperty("type").GetString());
        Assert.Equal(server.Clock!.GetUtcNow().ToUnixTimeMilliseconds(), send.At);

        // When a wrong code and then the right code are verified
        var code = await server.LatestCodeAsync(subject, "EMAIL");
        var wrong = await server.RowsDuringAsync(async () =>
            await (await server.VerifyCodeAsync(user, "EMAIL", ApiTestExtensions.WrongCode(code))).AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_code"));
        var right = await server.RowsDuringAsync(async () =>
            await (await server.VerifyCodeAsync(user, "EMAIL", code)).AssertJsonAsync(HttpStatusCode.OK, "verification"));

        // Then each is one verification record with its type and outcome
        var failed = Assert.Single(wrong);
        Assert.Equal(("verification", subject, "invalid_code", "EMAIL"), (failed.Event, failed.Subject, failed.Outcome, failed.DetailJson.GetProperty("type").GetString()));
        var valid = Assert.Single(right);
        Assert.Equal(("verification", subject, "valid", "EMAIL"), (valid.Event, valid.Subject, valid.Outcome, valid.DetailJson.GetProperty("type").GetString()));

        // And a read, which changes nothing, adds no chained record
        Assert.Empty(await server.RowsDuringAsync(async () => await server.Client.GetStringAsync($"/v1/mfa/{challengeId}")));
    }

    [Fact]
    public async Task Key_use_is_counted_on_the_key_with_its_last_use_not_chained_per_request()
    {
        // Given a fresh key of the application
        var server = await _servers.GetAsync(Db.Sqlite);
        var key = await server.CreateApiKeyAsync(server.ApplicationId, "test");
        using var client = server.NewClient(key.Secret);
        var usage = server.Services.GetRequiredService<DevRift.Hsm.Appliance.Applications.ApiKeyUsage>();
        await usage.FlushAsync();

        // When it makes three reads
        var rows = await server.RowsDuringAsync(async () =>
        {
            for (var i = 0; i < 3; i++)
            {
                (await client.GetAsync("/v1/mfa/factors?user=usage@example.com")).EnsureSuccessStatusCode();
            }

            await usage.FlushAsync();
        });

        // Then the log has no record for the reads, and the key row counts them with the time of the last
        Assert.Empty(rows);
        await using var c = await server.OpenDatabaseAsync();
        var (count, lastUsed) = await c.QuerySingleAsync<(long, long?)>("SELECT use_count, last_used_at FROM api_keys WHERE id = @id", new { id = key.Id });
        Assert.Equal(3, count);
        Assert.Equal(server.Clock!.GetUtcNow().ToUnixTimeMilliseconds(), lastUsed);
    }

    [Fact]
    public async Task App_enrolment_confirmation_lockout_and_removal_are_recorded()
    {
        var server = await _servers.GetAsync(Db.Sqlite);
        var user = FactorApi.NewUser("audit-app");

        // When an authenticator app is enrolled
        Enrolment e = null!;
        var enrol = Assert.Single(await server.RowsDuringAsync(async () => e = await server.EnrolAsync(user)));
        var enrolmentId = e.Body.GetProperty("id").GetString();
        Assert.Equal(("app_factor.enrol", user, "ok", enrolmentId), (enrol.Event, enrol.Subject, enrol.Outcome, enrol.DetailJson.GetProperty("enrollment_id").GetString()));

        // and confirmed by its first code
        var confirm = await server.RowsDuringAsync(async () => await server.VerifyAppAsync(user, Rfc6238.CodeAt(e.Seed, server.Now())).ExpectVerifiedAsync("APP"));

        // Then the confirmation and the verification are both recorded, confirmation first (same transaction as the factor change)
        Assert.Equal(["app_factor.confirm", "verification"], confirm.Select(r => r.Event));
        Assert.Equal(("active", enrolmentId), (confirm[0].Outcome, confirm[0].DetailJson.GetProperty("factor_id").GetString()));
        Assert.Equal(("valid", "APP"), (confirm[1].Outcome, confirm[1].DetailJson.GetProperty("type").GetString()));

        // When five wrong codes get this source (the API key, no client_ip) refused and a sixth check is refused
        server.Clock!.Advance(TimeSpan.FromSeconds(30));
        var wrong = Rfc6238.WrongCode(e.Seed, server.Now());
        var failures = await server.RowsDuringAsync(async () =>
        {
            for (var i = 0; i < 5; i++)
            {
                await server.VerifyAppAsync(user, wrong).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
            }

            await server.VerifyAppAsync(user, wrong).ExpectProblemAsync(HttpStatusCode.TooManyRequests, "too_many_attempts");
        });

        // Then the block engaging is one lockout.engaged record at source level (lockout_profile source_aware, the
        // default), between the fifth failure's check and its verification record
        Assert.Equal(
            ["verification", "verification", "verification", "verification", "lockout.engaged", "verification", "verification"],
            failures.Select(r => r.Event));
        var engaged = failures.OnlyEvent("lockout.engaged");
        Assert.Equal((user, "source_blocked", "source", 5), (engaged.Subject, engaged.Outcome, engaged.DetailJson.GetProperty("level").GetString(),
            engaged.DetailJson.GetProperty("source_failures").GetInt32()));
        Assert.Equal(engaged.Actor, engaged.DetailJson.GetProperty("source").GetString());
        Assert.Equal(server.Now().AddSeconds(60).UtcDateTime, engaged.DetailJson.GetProperty("blocked_until").GetDateTime());
        Assert.Equal(["invalid_code", "invalid_code", "invalid_code", "invalid_code", "source_blocked", "invalid_code", "too_many_attempts"], failures.Select(r => r.Outcome));

        // When the factor is removed
        var remove = Assert.Single(await server.RowsDuringAsync(async () =>
        {
            using var response = await server.Client.DeleteAsync($"/v1/mfa/app?user={Uri.EscapeDataString(user)}");
            Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        }));
        Assert.Equal(("app_factor.remove", user, "ok"), (remove.Event, remove.Subject, remove.Outcome));
    }

    [Fact]
    public async Task Backup_code_generation_and_use_are_recorded()
    {
        var server = await _servers.GetAsync(Db.Sqlite);
        var user = FactorApi.NewUser("audit-backup");

        // When a backup set is generated
        string setId = "";
        var generate = Assert.Single(await server.RowsDuringAsync(async () => setId = (await server.GenerateBackupAsync(user)).GetProperty("id").GetString()!));
        Assert.Equal(("backup_codes.generate", user, "ok", "EMAIL", setId, 10),
            (generate.Event, generate.Subject, generate.Outcome, generate.DetailJson.GetProperty("type").GetString(),
             generate.DetailJson.GetProperty("backup_set_id").GetString(), generate.DetailJson.GetProperty("count").GetInt32()));

        // When a code is used, and used again
        var codes = await server.LatestBackupCodesAsync(user);
        var use = Assert.Single(await server.RowsDuringAsync(() => server.VerifyBackupAsync(user, codes[0]).ExpectVerifiedAsync("BACKUP")));
        var reuse = Assert.Single(await server.RowsDuringAsync(() => server.VerifyBackupAsync(user, codes[0]).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code")));

        // Then each is a BACKUP verification with its outcome
        Assert.Equal(("verification", user, "valid", "BACKUP"), (use.Event, use.Subject, use.Outcome, use.DetailJson.GetProperty("type").GetString()));
        Assert.Equal(("verification", user, "invalid_code", "BACKUP"), (reuse.Event, reuse.Subject, reuse.Outcome, reuse.DetailJson.GetProperty("type").GetString()));
    }

    [Fact]
    public async Task Security_key_ceremonies_and_removal_are_recorded_with_the_outcome_the_caller_saw()
    {
        var server = await _servers.GetAsync(Db.Sqlite);
        var user = FactorApi.NewUser("audit-key");

        // When registration starts
        var options = Assert.Single(await server.RowsDuringAsync(async () =>
        {
            using var response = await server.PostCurlAsync("/v1/mfa/keys/registration/options", $"User={user}");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }));
        Assert.Equal(("security_key.registration_options", user, "ok"), (options.Event, options.Subject, options.Outcome));

        // When a registration with a garbage attestation and the removal of an unknown key are refused
        string registerCode = "", removeCode = "";
        var register = Assert.Single(await server.RowsDuringAsync(async () =>
        {
            using var response = await server.PostJsonAsync("/v1/mfa/keys/registration", new { user, credential = new { id = "AAAA", type = "public-key" } });
            registerCode = await ProblemCodeAsync(response);
        }));
        var remove = Assert.Single(await server.RowsDuringAsync(async () =>
        {
            using var response = await server.Client.DeleteAsync("/v1/mfa/keys/key_doesnotexist0000000000");
            removeCode = await ProblemCodeAsync(response);
        }));

        // Then each is recorded with the problem code the caller got
        Assert.Equal(("security_key.register", user, registerCode), (register.Event, register.Subject, register.Outcome));
        Assert.Equal(("security_key.remove", removeCode, "key_doesnotexist0000000000"),
            (remove.Event, remove.Outcome, remove.DetailJson.GetProperty("security_key_id").GetString()));
    }

    [Fact]
    public async Task Refused_keys_and_tokens_are_recorded_with_their_public_id_only()
    {
        var server = await _servers.GetAsync(Db.Sqlite);
        var revoked = await server.CreateApiKeyAsync(server.ApplicationId, "test");
        using (var admin = server.AdminClient())
        {
            (await admin.DeleteAsync($"/admin/v1/applications/{server.ApplicationId}/api-keys/{revoked.Id}")).EnsureSuccessStatusCode();
        }

        const string unknown = "sk_live_ZZZZZZZZZZabcdefghijklmnopqrstuvwxyz012345";
        var rows = await server.RowsDuringAsync(async () =>
        {
            foreach (var bearer in (string?[])[revoked.Secret, unknown, "not-a-key", null])
            {
                using var client = server.NewClient(bearer);
                using var response = await client.GetAsync("/v1/mfa/factors?user=ada@example.com");
                await response.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
            }

            using var op = server.NewClient("adm_ZZZZZZZZZZabcdefghijklmnopqrstuvwxyz012345");
            using var refused = await op.GetAsync("/admin/v1/applications");
            await refused.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
        });

        Assert.Equal(
            [("api_key.failed", revoked.Id, "test", "key"), ("api_key.failed", "ak_ZZZZZZZZZZ", "live", "key"),
             ("api_key.failed", "anonymous", null, "malformed"), ("api_key.failed", "anonymous", null, "none"),
             ("operator.auth_failed", "operator", null, "token")],
            rows.Select(r => (r.Event, r.Actor, r.Mode, r.DetailJson.GetProperty("presented").GetString())));
        Assert.All(rows, r => Assert.Equal("invalid_api_key", r.Outcome));
        Assert.All(rows, r => Assert.Null(r.Subject));
        Assert.Equal("op_ZZZZZZZZZZ", rows[^1].DetailJson.GetProperty("operator_id").GetString());
    }

    [Fact]
    public async Task Operator_changes_through_the_API_and_the_command_line_are_recorded_and_reads_are_not()
    {
        var server = await _servers.GetAsync(Db.Sqlite);

        // When an operator creates an application, changes a setting (once rejected), creates and revokes a key, and reads
        string appId = "";
        CreatedKey key = null!;
        var api = await server.RowsDuringAsync(async () =>
        {
            appId = await server.CreateApplicationAsync("Audited", "standard");
            await (await server.PatchSettingsAsync(appId, new { code_length = 8 })).AssertJsonAsync(HttpStatusCode.OK, "settings");
            await (await server.PatchSettingsAsync(appId, new { code_length = 99 })).AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "code_length");
            key = await server.CreateApiKeyAsync(appId, "live");
            using var admin = server.AdminClient();
            (await admin.DeleteAsync($"/admin/v1/applications/{appId}/api-keys/{key.Id}")).EnsureSuccessStatusCode();
            (await admin.GetAsync($"/admin/v1/applications/{appId}/settings")).EnsureSuccessStatusCode();
            (await admin.GetAsync("/admin/v1/audit")).EnsureSuccessStatusCode();
        });

        // Then each change is one operator record with the application, and the reads none
        Assert.Equal(
            [("application.create", "ok", (string?)null), ("settings.update", "ok", null), ("settings.update", "invalid_request", null),
             ("api_key.create", "ok", "live"), ("api_key.revoke", "ok", "live")],
            api.Select(r => (r.Event, r.Outcome, r.Mode)));
        Assert.All(api, r => Assert.Equal(("operator", appId, "api"), (r.Actor, r.ApplicationId, r.DetailJson.GetProperty("via").GetString())));
        Assert.All(api, r => Assert.StartsWith("op_", r.DetailJson.GetProperty("operator_id").GetString(), StringComparison.Ordinal));
        Assert.Equal("standard", api[0].DetailJson.GetProperty("plan").GetString());
        Assert.Equal("code_length", Assert.Single(api[1].DetailJson.GetProperty("fields").EnumerateArray()).GetString());
        Assert.Equal(key.Id, api[3].DetailJson.GetProperty("key_id").GetString());
        Assert.Equal(key.Id, api[4].DetailJson.GetProperty("key_id").GetString());

        // When the same changes are made on the command line (and a list, which changes nothing)
        string cliKeyId = "";
        var cli = await server.RowsDuringAsync(async () =>
        {
            Assert.Equal(0, (await server.CliAsync("settings", "set", appId, "code_length=7")).Exit);
            var created = await server.CliAsync("api-keys", "create", appId, "test");
            Assert.Equal(0, created.Exit);
            cliKeyId = System.Text.Json.JsonDocument.Parse(created.Stdout).RootElement.GetProperty("id").GetString()!;
            Assert.Equal(0, (await server.CliAsync("api-keys", "revoke", appId, cliKeyId)).Exit);
            Assert.Equal(0, (await server.CliAsync("api-keys", "list", appId)).Exit);
            Assert.Equal(1, (await server.CliAsync("api-keys", "revoke", appId, "ak_nosuchkey")).Exit);
        });

        // Then each change is recorded as the operator's, via the command line, failures with their code
        Assert.Equal(
            [("settings.update", "ok"), ("api_key.create", "ok"), ("api_key.revoke", "ok"), ("api_key.revoke", "not_found")],
            cli.Select(r => (r.Event, r.Outcome)));
        Assert.All(cli, r => Assert.Equal(("operator", appId, "cli"), (r.Actor, r.ApplicationId, r.DetailJson.GetProperty("via").GetString())));
        Assert.Equal(cliKeyId, cli[1].DetailJson.GetProperty("key_id").GetString());
        Assert.Equal("test", cli[1].Mode);
    }
}
