using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Dapper;
using DevRift.Hsm.Api.Tests.Delivery;
using Npgsql;

namespace DevRift.Hsm.Api.Tests.Audit;

/// <summary>Several appliance processes sharing one PostgreSQL database and one token append to one chain.</summary>
public sealed class AuditMultiNodeTests
{
    [Fact]
    public async Task Concurrent_appends_from_two_nodes_form_one_unbroken_chain()
    {
        // Given two appliance processes on one PostgreSQL database and one token
        await using var site = await ChildAppliance.Site.CreateAsync(postgres: true);
        var settings = new Dictionary<string, string?> { ["Logging:LogLevel:Default"] = "Warning", ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning" };
        await using var a = ChildAppliance.For(site, settings, "node-a");
        await using var b = ChildAppliance.For(site, settings, "node-b");
        await a.InitAsync();
        b.ShareSecretsOf(a);
        await Task.WhenAll(a.StartAsync(), b.StartAsync());

        // When a hundred requests hit both nodes at once (both chainers racing), each user through one node
        const int perNode = 50;
        async Task CallAsync(ChildAppliance node, string user)
        {
            using var http = new HttpClient { BaseAddress = node.BaseAddress };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", node.TestKey);
            // An enrolment is audited on every node (a read is only counted on the key)
            using var response = await http.PostAsync("/v1/mfa/app", new StringContent($"User={user}", System.Text.Encoding.UTF8, "application/x-www-form-urlencoded"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        await Task.WhenAll(Enumerable.Range(0, perNode).SelectMany(i => (Task[])[CallAsync(a, $"a{i}@example.com"), CallAsync(b, $"b{i}@example.com")]));

        // Then, once chained (each node's chainer runs in the background; a chain check chains first), the log holds
        // init's record and one per request, numbered 1 … 101 without a gap, from both nodes
        await Task.WhenAll(VerifiedChainAsync(a), VerifiedChainAsync(b));
        await using (var c = new NpgsqlConnection(site.ConnectionString))
        {
            var rows = (await c.QueryAsync<(long Seq, string Event, string? Subject)>("SELECT seq, event, subject FROM audit_log ORDER BY seq")).ToList();
            Assert.Equal(Enumerable.Range(1, 2 * perNode + 1).Select(i => (long)i), rows.Select(r => r.Seq));
            Assert.Equal("appliance.init", rows[0].Event);
            Assert.Equal(
                Enumerable.Range(0, perNode).SelectMany(i => (string[])[$"a{i}@example.com", $"b{i}@example.com"]).Order(StringComparer.Ordinal),
                rows.Skip(1).Select(r => r.Subject!).Order(StringComparer.Ordinal));
            Assert.Equal(2 * perNode + 1, await c.ExecuteScalarAsync<long>("SELECT last_seq FROM audit_head WHERE id = 1"));
        }

        // And each node verifies the whole chain, with nothing left pending
        foreach (var node in (ChildAppliance[])[a, b])
        {
            var result = await VerifiedChainAsync(node);
            Assert.True(result.GetProperty("valid").GetBoolean(), result.ToString());
            Assert.Equal(2 * perNode + 1, result.GetProperty("records").GetInt64());
            Assert.Equal(0, result.GetProperty("pending").GetInt64());
        }
    }

    private static async Task<JsonElement> VerifiedChainAsync(ChildAppliance node)
    {
        using var admin = new HttpClient { BaseAddress = node.BaseAddress };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", node.OperatorToken);
        using var response = await admin.GetAsync("/admin/v1/audit/verify");
        var result = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return result;
    }
}
