using System.Net;
using System.Net.Http.Json;
using DevRift.Hsm.Api.Tests.Factors;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Appliance.Applications;
using Microsoft.Extensions.DependencyInjection;

namespace DevRift.Hsm.Api.Tests.Rotation;

/// <summary>
/// For each purpose: data made before a rotation still verifies after it, new data uses the new version (version
/// columns read from the database), the new key is a protected token object, the dependents move from v1 to v2, and an
/// old version can be retired only once nothing depends on it. One server per test: rotation changes the whole token.
/// </summary>
public sealed class PerPurposeRotationTests
{
    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Seed_kek_rotation_keeps_factors_verifying_and_rewraps_every_seed_to_v2_in_the_background(Db db)
    {
        // Given an active authenticator-app factor and a pending enrolment, both wrapped under seed-kek v1
        await using var server = await ApplianceServer.StartAsync(db, fakeClock: true);
        var active = FactorApi.NewUser("active");
        var pending = FactorApi.NewUser("pending");
        var activeSeed = (await server.EnrolActiveAsync(active)).Seed;
        var pendingSeed = (await server.EnrolAsync(pending)).Seed;
        Assert.Equal(2, await server.CountAsync("SELECT COUNT(*) FROM totp_factors WHERE kek_version = 1"));
        var before = await server.HsmStatusAsync();
        Assert.Equal(2, before.Dependents("seed-kek", 1, "totp_factors"));
        await using (var c = await server.OpenDatabaseAsync())
        {
            var oldBlobs = (await Dapper.SqlMapper.QueryAsync<byte[]>(c, "SELECT wrapped_seed FROM totp_factors")).ToList();

            // When the seed KEK is rotated
            var key = await server.RotateAsync("seed-kek");

            // Then v2 exists, and the background service re-wraps both factors to it, each with a new blob
            Assert.Equal(2, key.GetProperty("version").GetInt32());
            Assert.Equal("devrift.seed-kek.v2", key.GetProperty("label").GetString());
            await server.WaitForCountAsync("SELECT COUNT(*) FROM totp_factors WHERE kek_version = 2", 2);
            Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM totp_factors WHERE kek_version = 1"));
            var newBlobs = (await Dapper.SqlMapper.QueryAsync<byte[]>(c, "SELECT wrapped_seed FROM totp_factors")).ToList();
            Assert.All(newBlobs, b => Assert.DoesNotContain(b, oldBlobs));
        }

        // and both still verify with codes of their original seeds (the active one at a later step, the pending one confirms)
        server.Clock!.Advance(TimeSpan.FromSeconds(30));
        await server.VerifyAppAsync(active, Rfc6238.CodeAt(activeSeed, server.Now())).ExpectVerifiedAsync("APP");
        await server.VerifyAppAsync(pending, Rfc6238.CodeAt(pendingSeed, server.Now())).ExpectVerifiedAsync("APP");

        // and a new enrolment is wrapped under v2 at once
        var fresh = FactorApi.NewUser("fresh");
        await server.EnrolActiveAsync(fresh);
        Assert.Equal(2, await server.CountAsync("SELECT kek_version FROM totp_factors WHERE user_key IN (SELECT identity_id FROM identity_contacts WHERE value = @fresh)", new { fresh }));

        // and the status shows nothing left on v1, three factors on v2
        var after = await server.HsmStatusAsync();
        Assert.Equal(0, after.Dependents("seed-kek", 1, "totp_factors"));
        Assert.Equal(3, after.Dependents("seed-kek", 2, "totp_factors"));
        Assert.False(after.Key("seed-kek", 1)!.Value.GetProperty("current").GetBoolean());
        Assert.True(after.Key("seed-kek", 2)!.Value.GetProperty("current").GetBoolean());

        // When v1 is retired, then it is destroyed on the token and the factors keep verifying under v2
        using (var current = await server.RetireAsync("seed-kek", 2))
        {
            await current.AssertProblemAsync(HttpStatusCode.Conflict, "key_in_use", "version");
        }

        using (var retired = await server.RetireAsync("seed-kek", 1))
        {
            var body = await retired.AssertJsonAsync(HttpStatusCode.OK, "hsm_key");
            Assert.True(body.GetProperty("retired").GetBoolean());
            Assert.Equal("devrift.seed-kek.v1", body.GetProperty("label").GetString());
        }

        Assert.Equal(new[] { 2 }, (await server.HsmStatusAsync()).Versions("seed-kek"));
        var tokenKeys = await server.TokenKeysAsync();
        Assert.DoesNotContain("devrift.seed-kek.v1", tokenKeys.Keys);
        RotationApi.AssertProtected(tokenKeys["devrift.seed-kek.v2"]);
        server.Clock.Advance(TimeSpan.FromSeconds(30));
        await server.VerifyAppAsync(active, Rfc6238.CodeAt(activeSeed, server.Now())).ExpectVerifiedAsync("APP");
    }

    [Fact]
    public async Task Lookup_rotation_keeps_api_keys_the_operator_token_and_backup_codes_working_and_retire_waits_for_them()
    {
        // Given an extra API key, the operator token and a backup set, all verified under lookup v1
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite, fakeClock: true);
        var oldKey = await server.CreateApiKeyAsync(server.ApplicationId, "test");
        var user = FactorApi.NewUser("backup");
        await server.GenerateBackupAsync(user);
        var oldCodes = await server.LatestBackupCodesAsync(user);
        Assert.Equal(0, await server.CountAsync("SELECT COUNT(*) FROM api_keys WHERE verifier_version <> 1"));

        // When the lookup key is rotated
        var key = await server.RotateAsync("lookup");
        Assert.Equal("devrift.lookup.v2", key.GetProperty("label").GetString());

        // Then the keys and the operator token made before still authenticate, and an old backup code verifies
        using (var viaOld = server.NewClient(oldKey.Secret))
        {
            using var factors = await viaOld.GetAsync($"/v1/mfa/factors?user={Uri.EscapeDataString(user)}");
            await factors.AssertJsonAsync(HttpStatusCode.OK, "factors");
        }

        await server.FactorsAsync(user); // the demo key
        var status = await server.HsmStatusAsync(); // the operator token
        server.Clock!.Advance(TimeSpan.FromSeconds(5));
        await server.VerifyBackupAsync(user, oldCodes[0]).ExpectVerifiedAsync("BACKUP");

        // and new keys, operator tokens and backup codes are verified under v2
        var newKey = await server.CreateApiKeyAsync(server.ApplicationId, "test");
        var newOperator = await server.Services.GetRequiredService<OperatorTokens>().CreateAsync("rotation");
        var newUser = FactorApi.NewUser("backup2");
        await server.GenerateBackupAsync(newUser, bearer: newKey.Secret);
        Assert.Equal(2, await server.CountAsync("SELECT verifier_version FROM api_keys WHERE id = @Id", new { newKey.Id }));
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM operator_tokens WHERE verifier_version = 2"));
        Assert.Equal(10, await server.CountAsync("SELECT COUNT(*) FROM backup_codes WHERE user_key IN (SELECT identity_id FROM identity_contacts WHERE value = @newUser) AND verifier_version = 2", new { newUser }));
        await server.VerifyBackupAsync(newUser, (await server.LatestBackupCodesAsync(newUser))[0], newKey.Secret).ExpectVerifiedAsync("BACKUP");

        // and the status counts what still depends on each version
        status = await server.HsmStatusAsync(newOperator);
        Assert.Equal(2, status.Dependents("lookup", 1, "api_keys"));
        Assert.Equal(1, status.Dependents("lookup", 1, "operator_tokens"));
        Assert.Equal(9, status.Dependents("lookup", 1, "backup_codes"));
        Assert.Equal(1, status.Dependents("lookup", 2, "api_keys"));
        Assert.Equal(1, status.Dependents("lookup", 2, "operator_tokens"));
        Assert.Equal(9, status.Dependents("lookup", 2, "backup_codes"));

        // When v1 is retired while those remain, then 409 key_in_use and it stays on the token
        using (var refused = await server.RetireAsync("lookup", 1, newOperator))
        {
            var problem = await refused.AssertProblemAsync(HttpStatusCode.Conflict, "key_in_use", "version");
            Assert.Contains("2 api_keys", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        }

        Assert.Contains("devrift.lookup.v1", (await server.TokenKeysAsync()).Keys);
        await server.FactorsAsync(user);

        // When every v1 dependent is gone (old keys revoked, the old operator token revoked, the old set replaced)
        await server.GenerateBackupAsync(user, bearer: newKey.Secret);
        using (var admin = server.AdminClient(newOperator))
        {
            foreach (var id in (string[])[oldKey.Id, (await server.Services.GetRequiredService<ApiKeys>().ListAsync(server.ApplicationId))[0].Id])
            {
                using var revoked = await admin.DeleteAsync($"/admin/v1/applications/{server.ApplicationId}/api-keys/{id}");
                await revoked.AssertJsonAsync(HttpStatusCode.OK, "api_key");
            }
        }

        await using (var c = await server.OpenDatabaseAsync())
        {
            await Dapper.SqlMapper.ExecuteAsync(c, "UPDATE operator_tokens SET revoked_at = 1 WHERE verifier_version = 1");
        }

        status = await server.HsmStatusAsync(newOperator);
        Assert.Equal(0, status.Dependents("lookup", 1, "api_keys") + status.Dependents("lookup", 1, "operator_tokens") + status.Dependents("lookup", 1, "backup_codes"));

        // Then v1 can be retired, and the v2 key and token go on working
        using (var retired = await server.RetireAsync("lookup", 1, newOperator))
        {
            await retired.AssertJsonAsync(HttpStatusCode.OK, "hsm_key");
        }

        Assert.DoesNotContain("devrift.lookup.v1", (await server.TokenKeysAsync()).Keys);
        using (var viaNew = server.NewClient(newKey.Secret))
        {
            using var factors = await viaNew.GetAsync($"/v1/mfa/factors?user={Uri.EscapeDataString(user)}");
            await factors.AssertJsonAsync(HttpStatusCode.OK, "factors");
        }

        Assert.Equal(new[] { 2 }, (await server.HsmStatusAsync(newOperator)).Versions("lookup"));
    }

    [Fact]
    public async Task Code_rotation_keeps_pending_challenges_verifiable_and_new_ones_use_v2()
    {
        // Given a challenge whose code was derived under code key v1
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite, fakeClock: true);
        var before = await server.SendEmailCodeAsync("before");
        Assert.Equal(1, await server.ChallengeKeyVersionAsync(before.User));

        // When the code key is rotated and another code is sent
        await server.RotateAsync("code");
        var after = await server.SendEmailCodeAsync("after");

        // Then the new challenge records v2, both are pending on their versions, and both codes verify
        Assert.Equal(2, await server.ChallengeKeyVersionAsync(after.User));
        var status = await server.HsmStatusAsync();
        Assert.Equal(1, status.Dependents("code", 1, "pending_challenges"));
        Assert.Equal(1, status.Dependents("code", 2, "pending_challenges"));
        using (var refused = await server.RetireAsync("code", 1))
        {
            await refused.AssertProblemAsync(HttpStatusCode.Conflict, "key_in_use", "version");
        }

        using (var ok = await server.VerifyCodeAsync(before.User, "EMAIL", before.Code))
        {
            await ok.AssertJsonAsync(HttpStatusCode.OK, "verification");
        }

        using (var ok = await server.VerifyCodeAsync(after.User, "EMAIL", after.Code))
        {
            await ok.AssertJsonAsync(HttpStatusCode.OK, "verification");
        }

        // and once no pending challenge needs v1, it can be retired
        Assert.Equal(0, (await server.HsmStatusAsync()).Dependents("code", 1, "pending_challenges"));
        using (var retired = await server.RetireAsync("code", 1))
        {
            await retired.AssertJsonAsync(HttpStatusCode.OK, "hsm_key");
        }

        Assert.Equal(new[] { 2 }, (await server.HsmStatusAsync()).Versions("code"));
    }

    [Fact]
    public async Task Seal_rotation_keeps_sealed_outbox_bodies_readable_and_new_bodies_are_sealed_under_v2()
    {
        // Given a test-mode message sealed under seal v1
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite, fakeClock: true);
        var user = FactorApi.NewUser("sealed");
        await server.SendAcceptedAsync(user, "EMAIL");
        Assert.Equal(1, await server.SealVersionOfLatestMessageAsync(user));

        // When the seal key is rotated
        await server.RotateAsync("seal");

        // Then the old body is still readable through the test outbox, and its code verifies
        var code = await server.LatestCodeAsync(user, "EMAIL");
        Assert.Matches("^[0-9]{6}$", code);

        // and a new message is sealed under v2 (the version in the sealed header) and readable too
        var other = await server.SendEmailCodeAsync("sealed2");
        Assert.Equal(2, await server.SealVersionOfLatestMessageAsync(other.User));
        var status = await server.HsmStatusAsync();
        Assert.Equal(1, status.Dependents("seal", 1, "test_messages"));
        Assert.Equal(1, status.Dependents("seal", 2, "test_messages"));
        Assert.Equal(0, status.Dependents("seal", 1, "queued_messages"));
        using (var ok = await server.VerifyCodeAsync(user, "EMAIL", code))
        {
            await ok.AssertJsonAsync(HttpStatusCode.OK, "verification");
        }

        // and v1 cannot be retired while a body sealed under it is kept
        using var refused = await server.RetireAsync("seal", 1);
        var problem = await refused.AssertProblemAsync(HttpStatusCode.Conflict, "key_in_use", "version");
        Assert.Contains("1 test_messages", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(code, await server.LatestCodeAsync(user, "EMAIL"));
    }

    [Fact]
    public async Task Every_purpose_rotates_to_a_v2_generated_in_the_hsm_like_inits_keys()
    {
        // Given a fresh token with the five v1 keys
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite);
        var v1 = await server.TokenKeysAsync();

        // When each purpose is rotated
        foreach (var purpose in (string[])["seed-kek", "code", "lookup", "seal", "audit"])
        {
            var key = await server.RotateAsync(purpose);
            Assert.Equal(2, key.GetProperty("version").GetInt32());
        }

        // Then the token holds v1 and v2 of each, every v2 sensitive, never extractable, generated on the token,
        // with the same type and usage as its v1
        var keys = await server.TokenKeysAsync();
        Assert.Equal(10, keys.Count);
        foreach (var purpose in (string[])["seed-kek", "code", "lookup", "seal", "audit"])
        {
            var old = v1[$"devrift.{purpose}.v1"];
            var fresh = keys[$"devrift.{purpose}.v2"];
            RotationApi.AssertProtected(fresh);
            Assert.Equal(old.Type, fresh.Type);
            Assert.Equal(old.Usage, fresh.Usage);
            Assert.Equal(old.Access, fresh.Access);
        }

        Assert.Equal("AES length 32", keys["devrift.seal.v2"].Type);
        Assert.Equal(["wrap", "unwrap"], keys["devrift.seed-kek.v2"].Usage);

        // and the status lists both versions of each purpose, v2 current
        var status = await server.HsmStatusAsync();
        Assert.Equal(server.Hsm.TokenLabel, status.GetProperty("token").GetProperty("label").GetString());
        Assert.Equal("SoftHSM project", status.GetProperty("token").GetProperty("manufacturer").GetString());
        foreach (var purpose in (string[])["seed-kek", "code", "lookup", "seal", "audit"])
        {
            Assert.Equal(new[] { 1, 2 }, status.Versions(purpose));
            Assert.False(status.Key(purpose, 1)!.Value.GetProperty("current").GetBoolean());
            Assert.True(status.Key(purpose, 2)!.Value.GetProperty("current").GetBoolean());
        }
    }

    [Fact]
    public async Task Rotate_and_retire_name_the_bad_field()
    {
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite);
        using var admin = server.AdminClient();

        foreach (var body in (object[])[new { purpose = "master" }, new { purpose = 3 }, new { }, new { purpose = "seed_kek" }])
        {
            using var response = await admin.PostAsJsonAsync("/admin/v1/hsm/rotate", body);
            await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "purpose");
        }

        using (var response = await admin.PostAsJsonAsync("/admin/v1/hsm/retire", new { purpose = "nope", version = 1 }))
        {
            await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "purpose");
        }

        foreach (var body in (object[])[new { purpose = "code" }, new { purpose = "code", version = "one" }, new { purpose = "code", version = 0 }, new { purpose = "code", version = 1.5 }])
        {
            using var response = await admin.PostAsJsonAsync("/admin/v1/hsm/retire", body);
            await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "version");
        }

        using (var response = await server.RetireAsync("code", 7))
        {
            await response.AssertProblemAsync(HttpStatusCode.NotFound, "not_found", "version");
        }

        using (var response = await server.RetireAsync("code", 1))
        {
            await response.AssertProblemAsync(HttpStatusCode.Conflict, "key_in_use", "version");
        }

        using (var anonymous = server.NewClient(null))
        using (var response = await anonymous.PostAsJsonAsync("/admin/v1/hsm/rotate", new { purpose = "code" }))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }

        using (var withApiKey = server.NewClient(server.TestKey))
        using (var response = await withApiKey.GetAsync("/admin/v1/hsm"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }

        // Nothing was created by any of these
        Assert.Equal(5, (await server.TokenKeysAsync()).Count);
    }
}
