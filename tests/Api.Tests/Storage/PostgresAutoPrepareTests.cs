using Dapper;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Appliance.Storage;
using Microsoft.Extensions.Options;

namespace DevRift.Hsm.Api.Tests.Storage;

/// <summary>On PostgreSQL the statements a connection repeats are prepared on the server once, unless the operator says otherwise.</summary>
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
}
