using System.Data.Common;
using Dapper;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Appliance.Storage;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace DevRift.Hsm.Api.Tests.FailClosed;

/// <summary>
/// Which database failures become 503 storage_unavailable (Database decides, in one place) and which stay what they
/// are, so that a programming error is never disguised as an outage.
/// </summary>
public sealed class StorageErrorClassificationTests(SystemClockServers servers) : IClassFixture<SystemClockServers>
{
    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_query_against_a_missing_table_is_not_disguised_as_an_outage(Db db)
    {
        var database = (await servers.GetAsync(db)).Services.GetRequiredService<Database>();

        var e = await Assert.ThrowsAnyAsync<DbException>(() => database.WithConnectionAsync(c => c.ExecuteAsync("SELECT * FROM no_such_table")));

        Assert.IsNotType<StorageUnavailableException>(e);
        if (db == Db.Postgres)
        {
            Assert.Equal("42P01", Assert.IsType<PostgresException>(e).SqlState); // undefined_table
        }
        else
        {
            Assert.Equal(1, Assert.IsType<SqliteException>(e).SqliteErrorCode); // SQLITE_ERROR
        }
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_foreign_key_violation_is_not_disguised_as_an_outage(Db db)
    {
        var database = (await servers.GetAsync(db)).Services.GetRequiredService<Database>();

        var e = await Assert.ThrowsAnyAsync<DbException>(() => database.InTransactionAsync((c, tx) => c.ExecuteAsync(
            "INSERT INTO api_keys (id, application_id, mode, hint, verifier, verifier_version, created_at) VALUES ('ak_fk', 'app_missing', 'test', 'h', @v, 1, 0)",
            new { v = new byte[32] }, tx)));

        Assert.IsNotType<StorageUnavailableException>(e);
    }

    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task A_unique_key_won_by_a_concurrent_writer_is_unavailable_now(Db db)
    {
        var server = await servers.GetAsync(db);
        var database = server.Services.GetRequiredService<Database>();

        // The idempotency path relies on this: a racing insert of the same key is a transient conflict, answered 503.
        var e = await Assert.ThrowsAsync<StorageUnavailableException>(() => database.WithConnectionAsync(c => c.ExecuteAsync(
            "INSERT INTO applications (id, name, plan, settings, created_at) SELECT id, name, plan, settings, created_at FROM applications WHERE id = @id",
            new { id = server.ApplicationId })));

        Assert.IsAssignableFrom<DbException>(e.InnerException);
    }

    [Fact]
    public async Task A_connection_terminated_by_the_administrator_is_unavailable_now()
    {
        var database = (await servers.GetAsync(Db.Postgres)).Services.GetRequiredService<Database>();

        var e = await Assert.ThrowsAsync<StorageUnavailableException>(() => database.WithConnectionAsync(c => c.ExecuteAsync("SELECT pg_terminate_backend(pg_backend_pid())")));

        Assert.Equal("57P01", Assert.IsType<PostgresException>(e.InnerException).SqlState); // admin_shutdown
        Assert.DoesNotContain("SELECT", e.Message, StringComparison.Ordinal);
    }
}
