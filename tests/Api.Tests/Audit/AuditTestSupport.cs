using System.Net;
using System.Text.Json;
using Dapper;
using DevRift.Hsm.Api.Cli;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Appliance.Audit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace DevRift.Hsm.Api.Tests.Audit;

/// <summary>One row of audit_log as the database holds it.</summary>
public sealed class AuditRow
{
    public long Seq { get; init; }

    public long At { get; init; }

    public string Event { get; init; } = "";

    public string Actor { get; init; } = "";

    public string? ApplicationId { get; init; }

    public string? Mode { get; init; }

    public string? Subject { get; init; }

    public string Outcome { get; init; } = "";

    public string Detail { get; init; } = "";

    public long KeyVersion { get; init; }

    public byte[] Mac { get; init; } = [];

    public JsonElement DetailJson => JsonDocument.Parse(Detail).RootElement.Clone();
}

public static class AuditApi
{
    /// <summary>Chains what is pending now (the server does it in the background within milliseconds; a test must not wait on that).</summary>
    public static Task ChainAuditAsync(this ApplianceServer server) =>
        server.Services.GetRequiredService<AuditLog>().ChainPendingAsync();

    /// <summary>Every chained record, after chaining what is pending.</summary>
    public static async Task<List<AuditRow>> AuditRowsAsync(this ApplianceServer server)
    {
        await server.ChainAuditAsync();
        await using var c = await server.OpenDatabaseAsync();
        return (await c.QueryAsync<AuditRow>(
            "SELECT seq, at, event, actor, application_id AS ApplicationId, mode, subject, outcome, detail, key_version AS KeyVersion, mac FROM audit_log ORDER BY seq")).ToList();
    }

    /// <summary>The rows appended by <paramref name="action"/>.</summary>
    public static async Task<List<AuditRow>> RowsDuringAsync(this ApplianceServer server, Func<Task> action)
    {
        var before = (await server.AuditRowsAsync()).Select(r => r.Seq).DefaultIfEmpty(0).Max();
        await action();
        return (await server.AuditRowsAsync()).Where(r => r.Seq > before).ToList();
    }

    public static async Task ExecuteAsync(this ApplianceServer server, string sql, object? parameters = null)
    {
        await using var c = await server.OpenDatabaseAsync();
        await c.ExecuteAsync(sql, parameters);
    }

    /// <summary>GET /admin/v1/audit/verify, asserting 200.</summary>
    public static async Task<JsonElement> VerifyChainAsync(this ApplianceServer server)
    {
        using var admin = server.AdminClient();
        using var response = await admin.GetAsync("/admin/v1/audit/verify");
        return await response.AssertJsonAsync(HttpStatusCode.OK);
    }

    /// <summary>Runs an operator command in-process against the server's services, as the executable does.</summary>
    public static async Task<(int Exit, string Stdout, string Stderr)> CliAsync(this ApplianceServer server, params string[] words)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exit = await OperatorCommands.RunAsync(server.Services, server.Services.GetRequiredService<IConfiguration>(), words, stdout, stderr);
        return (exit, stdout.ToString(), stderr.ToString());
    }

    public static AuditRow OnlyEvent(this IEnumerable<AuditRow> rows, string evt) =>
        Assert.Single(rows, r => r.Event == evt);
}
