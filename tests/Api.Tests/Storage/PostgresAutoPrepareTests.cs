using Dapper;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Appliance.Storage;
using Microsoft.Extensions.Options;

namespace DevRift.Hsm.Api.Tests.Storage;

/// <summary>
/// On PostgreSQL the statements a connection repeats are prepared on the server once, and a connection given back to
/// the pool is not reset on its next lease, unless the operator says otherwise.
/// </summary>
public sealed class PostgresAutoPrepareTests
{
    private static async Task<long> PreparedAfterThreeRunsAsync(string connectionString)
    {
        await using var db = new Database(Options.Create(new StorageOptions { ConnectionString = connectionString }));
        var marker = "m" + Guid.NewGuid().ToString("N");
        return await db.WithConnectionAsync(async c =>
        {
            // One lease, one backend: the same statement three times, then what that backend holds prepared.
            for (var i = 0; i < 3; i++)
            {
                Assert.Equal(i + 1, await c.ExecuteScalarAsync<int>($"SELECT @i + 1 AS {marker}", new { i }));
            }

            return await c.ExecuteScalarAsync<long>("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%' || @marker || '%'", new { marker });
        });
    }

    [Fact]
    public async Task A_statement_run_again_on_a_connection_is_prepared_on_the_server_by_default()
    {
        Assert.Equal(1, await PreparedAfterThreeRunsAsync(ApplianceServer.PostgresAdmin));
    }

    [Fact]
    public async Task An_operator_s_Max_Auto_Prepare_of_zero_is_kept()
    {
        Assert.Equal(0, await PreparedAfterThreeRunsAsync(ApplianceServer.PostgresAdmin + ";Max Auto Prepare=0"));
    }

    /// <summary>A session setting made on one lease, read on the next lease of the same (only) backend.</summary>
    private static async Task<string> SettingOnTheNextLeaseAsync(string connectionString)
    {
        await using var db = new Database(Options.Create(new StorageOptions { ConnectionString = connectionString + ";Maximum Pool Size=1" }));
        var marker = "m" + Guid.NewGuid().ToString("N");
        var backend = await db.WithConnectionAsync(async c =>
        {
            await c.ExecuteAsync($"SET devrift.reset_probe = '{marker}'");
            return await c.ExecuteScalarAsync<int>("SELECT pg_backend_pid()");
        });
        return await db.WithConnectionAsync(async c =>
        {
            Assert.Equal(backend, await c.ExecuteScalarAsync<int>("SELECT pg_backend_pid()"));
            return await c.ExecuteScalarAsync<string>("SELECT current_setting('devrift.reset_probe', true)") ?? "";
        });
    }

    [Fact]
    public async Task A_connection_given_back_is_not_reset_on_its_next_lease_by_default()
    {
        Assert.StartsWith("m", await SettingOnTheNextLeaseAsync(ApplianceServer.PostgresAdmin), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_operator_s_No_Reset_On_Close_of_false_is_kept()
    {
        Assert.Equal("", await SettingOnTheNextLeaseAsync(ApplianceServer.PostgresAdmin + ";No Reset On Close=false"));
    }
}
