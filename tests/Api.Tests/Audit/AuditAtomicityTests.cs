using System.Net;
using Dapper;
using DevRift.Hsm.Api.Tests.Factors;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Audit;

/// <summary>
/// A verification's success and its audit record commit together: when the record cannot be written the caller gets
/// 503 and the code, step or backup code is still there to be used, on SQLite and PostgreSQL. The audit write is made
/// to fail for one user only, by a trigger on audit_pending (where an append writes), so everything else keeps working.
/// </summary>
public sealed class AuditAtomicityTests : IClassFixture<FakeClockServers>
{
    private readonly FakeClockServers _servers;

    public AuditAtomicityTests(FakeClockServers servers) => _servers = servers;

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task An_app_verify_that_cannot_be_audited_is_503_and_leaves_the_step_unused(Db db)
    {
        // Given an active authenticator app and the code of a new step
        var server = await _servers.GetAsync(db);
        var user = FactorApi.NewUser("atomic-app");
        var e = await server.EnrolActiveAsync(user);
        server.Clock!.Advance(TimeSpan.FromSeconds(30));
        var code = Rfc6238.CodeAt(e.Seed, server.Now());
        var stepBefore = await LastUsedStepAsync(server, user);

        // When the verification's audit record cannot be written
        await using (await RefuseVerificationRecordsAsync(server, user))
        {
            using var refused = await server.VerifyAppAsync(user, code);
            await refused.AssertProblemAsync(HttpStatusCode.ServiceUnavailable, "storage_unavailable");

            // Then the step was not consumed
            Assert.Equal(stepBefore, await LastUsedStepAsync(server, user));
        }

        // And the same code verifies once the log can be written, with its record
        using var ok = await server.VerifyAppAsync(user, code);
        await ok.AssertJsonAsync(HttpStatusCode.OK, "verification");
        Assert.Equal(stepBefore + 1, await LastUsedStepAsync(server, user));
        // (two records in all: the enrolment's confirming verify and this one; none for the refused request)
        await server.ChainAuditAsync();
        Assert.Equal(2, await server.CountAsync("SELECT COUNT(*) FROM audit_log WHERE event = 'verification' AND subject = @user AND outcome = 'valid'", new { user }));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task An_email_verify_that_cannot_be_audited_is_503_and_leaves_the_challenge_pending(Db db)
    {
        // Given a code sent by email
        var server = await _servers.GetAsync(db);
        var user = TestUsers.NewEmail("atomic-email");
        var challengeId = (await server.SendAcceptedAsync(user, "EMAIL")).GetProperty("id").GetString()!;
        var code = await server.LatestCodeAsync(user, "EMAIL");

        // When the verification's audit record cannot be written
        await using (await RefuseVerificationRecordsAsync(server, user))
        {
            using var refused = await server.VerifyCodeAsync(user, "EMAIL", code);
            await refused.AssertProblemAsync(HttpStatusCode.ServiceUnavailable, "storage_unavailable");

            // Then the challenge is still pending
            Assert.Equal("pending", await StatusAsync(server, challengeId));
        }

        // And the same code verifies afterwards
        using var ok = await server.VerifyCodeAsync(user, "EMAIL", code);
        await ok.AssertJsonAsync(HttpStatusCode.OK, "verification");
        Assert.Equal("approved", await StatusAsync(server, challengeId));
        await server.ChainAuditAsync();
        Assert.Equal(1, await server.CountAsync("SELECT COUNT(*) FROM audit_log WHERE event = 'verification' AND subject = @user AND outcome = 'valid'", new { user }));
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_backup_code_verify_that_cannot_be_audited_is_503_and_leaves_the_code_unused(Db db)
    {
        // Given a fresh set of backup codes
        var server = await _servers.GetAsync(db);
        var user = TestUsers.NewEmail("atomic-backup");
        await server.GenerateBackupAsync(user);
        var code = (await server.LatestBackupCodesAsync(user))[0];
        var unusedBefore = await server.CountAsync("SELECT COUNT(*) FROM backup_codes WHERE user_key IN (SELECT identity_id FROM identity_contacts WHERE value = @user) AND used_at IS NULL", new { user });

        // When the verification's audit record cannot be written
        await using (await RefuseVerificationRecordsAsync(server, user))
        {
            using var refused = await server.VerifyBackupAsync(user, code);
            await refused.AssertProblemAsync(HttpStatusCode.ServiceUnavailable, "storage_unavailable");

            // Then no code was used, and no "a backup code was used" notice queued
            Assert.Equal(unusedBefore, await server.CountAsync("SELECT COUNT(*) FROM backup_codes WHERE user_key IN (SELECT identity_id FROM identity_contacts WHERE value = @user) AND used_at IS NULL", new { user }));
            Assert.Empty(await UseNoticesAsync(server, user));
        }

        // And the same code verifies afterwards, exactly once
        using var ok = await server.VerifyBackupAsync(user, code);
        await ok.AssertJsonAsync(HttpStatusCode.OK, "verification");
        Assert.Equal(unusedBefore - 1, await server.CountAsync("SELECT COUNT(*) FROM backup_codes WHERE user_key IN (SELECT identity_id FROM identity_contacts WHERE value = @user) AND used_at IS NULL", new { user }));
        Assert.Single(await UseNoticesAsync(server, user));
    }

    private static async Task<List<OutboxMessage>> UseNoticesAsync(ApplianceServer server, string user) =>
        (await server.MessagesAsync(user)).Where(m => m.Body.Contains("was just used", StringComparison.Ordinal)).ToList();

    private static async Task<long> LastUsedStepAsync(ApplianceServer server, string user)
    {
        await using var c = await server.OpenDatabaseAsync();
        return await c.QuerySingleAsync<long>("SELECT last_used_step FROM totp_factors WHERE user_key IN (SELECT identity_id FROM identity_contacts WHERE value = @user) AND status = 'active'", new { user });
    }

    private static async Task<string> StatusAsync(ApplianceServer server, string challengeId)
    {
        await using var c = await server.OpenDatabaseAsync();
        return await c.QuerySingleAsync<string>("SELECT status FROM challenges WHERE id = @challengeId", new { challengeId });
    }

    /// <summary>Makes every insert of a verification record about <paramref name="user"/> fail until disposed.</summary>
    private static async Task<IAsyncDisposable> RefuseVerificationRecordsAsync(ApplianceServer server, string user)
    {
        var name = "refuse_" + Guid.NewGuid().ToString("N")[..12];
        await using var c = await server.OpenDatabaseAsync();
        if (server.IsPostgres())
        {
            await c.ExecuteAsync($"""
                CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                  IF NEW.event = 'verification' AND NEW.subject = '{user}' THEN RAISE EXCEPTION 'audit refused'; END IF;
                  RETURN NEW;
                END $$;
                CREATE TRIGGER {name} BEFORE INSERT ON audit_pending FOR EACH ROW EXECUTE FUNCTION {name}();
                """);
        }
        else
        {
            await c.ExecuteAsync($"""
                CREATE TRIGGER {name} BEFORE INSERT ON audit_pending
                WHEN NEW.event = 'verification' AND NEW.subject = '{user}'
                BEGIN SELECT RAISE(ABORT, 'audit refused'); END;
                """);
        }

        return new Drop(server, name);
    }

    private sealed class Drop(ApplianceServer server, string name) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await using var c = await server.OpenDatabaseAsync();
            await c.ExecuteAsync(server.IsPostgres()
                ? $"DROP TRIGGER {name} ON audit_pending; DROP FUNCTION {name}();"
                : $"DROP TRIGGER {name}");
        }
    }
}

internal static class ServerDatabase
{
    public static bool IsPostgres(this ApplianceServer server) => server.ConnectionString.Contains("Host=", StringComparison.OrdinalIgnoreCase);
}
