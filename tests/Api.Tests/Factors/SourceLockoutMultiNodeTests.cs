using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Dapper;
using DevRift.Hsm.Api.Tests.Delivery;
using Npgsql;

namespace DevRift.Hsm.Api.Tests.Factors;

/// <summary>Per-source counters live in the database: two appliance processes on one PostgreSQL database share them.</summary>
public sealed class SourceLockoutMultiNodeTests
{
    [Fact]
    public async Task Failures_from_one_source_count_across_two_nodes_and_refuse_it_on_both()
    {
        // Given two appliance processes on one PostgreSQL database and one token, and a user enrolled through node A
        await using var site = await ChildAppliance.Site.CreateAsync(postgres: true);
        var settings = new Dictionary<string, string?> { ["Logging:LogLevel:Default"] = "Warning", ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning" };
        await using var a = ChildAppliance.For(site, settings, "node-a");
        await using var b = ChildAppliance.For(site, settings, "node-b");
        await a.InitAsync();
        b.ShareSecretsOf(a);
        await Task.WhenAll(a.StartAsync(), b.StartAsync());
        using var httpA = Client(a);
        using var httpB = Client(b);
        const string user = "two-nodes@example.com";
        using var enrolled = await Post(httpA, "/v1/mfa/app", $"User={user}");
        Assert.Equal(HttpStatusCode.OK, enrolled.StatusCode);
        var seed = Base32Text.Decode(JsonDocument.Parse(await enrolled.Content.ReadAsStringAsync()).RootElement.GetProperty("secret").GetString()!);
        using (var confirmed = await Post(httpA, "/v1/mfa/verify", $"User={user}, Type=APP, Code={Rfc6238.CodeAt(seed, DateTimeOffset.UtcNow)}"))
        {
            Assert.Equal(HttpStatusCode.OK, confirmed.StatusCode);
        }

        // When five wrong codes from one address alternate between the nodes, each counting down the same counter
        var wrong = Rfc6238.WrongCode(seed, DateTimeOffset.UtcNow);
        for (var i = 0; i < 5; i++)
        {
            using var failed = await Post(i % 2 == 0 ? httpA : httpB, "/v1/mfa/verify", $"User={user}, Type=APP, Code={wrong}, Client-Ip=198.51.100.1");
            var problem = await Problem(failed, HttpStatusCode.Unauthorized);
            Assert.Equal(("invalid_code", 4 - i), (problem.GetProperty("code").GetString(), problem.GetProperty("attempts_remaining").GetInt32()));
        }

        // Then that address is refused on both nodes, even with an unused right code
        var right = Rfc6238.CodeAt(seed, DateTimeOffset.UtcNow, stepOffset: 1);
        foreach (var node in (HttpClient[])[httpA, httpB])
        {
            using var refused = await Post(node, "/v1/mfa/verify", $"User={user}, Type=APP, Code={right}, Client-Ip=198.51.100.1");
            var problem = await Problem(refused, HttpStatusCode.TooManyRequests);
            Assert.Equal(("too_many_attempts", "client_ip"), (problem.GetProperty("code").GetString(), problem.GetProperty("param").GetString()));
            Assert.NotNull(refused.Headers.RetryAfter);
        }

        // and the user verifies that code from another address through node B
        using (var verified = await Post(httpB, "/v1/mfa/verify", $"User={user}, Type=APP, Code={right}, Client-Ip=203.0.113.7"))
        {
            Assert.Equal(HttpStatusCode.OK, verified.StatusCode);
        }

        // and the database holds one counter for the address: five failures, one block
        await using var c = new NpgsqlConnection(site.ConnectionString);
        var (failures, blocks) = await c.QuerySingleAsync<(long, long)>(
            "SELECT failures, blocks FROM lockout_sources WHERE user_key IN (SELECT identity_id FROM identity_contacts WHERE value = @user) AND source LIKE '% 198.51.100.1'", new { user });
        Assert.Equal((5, 1), (failures, blocks));
        using (var admin = new HttpClient { BaseAddress = a.BaseAddress })
        {
            // (a chain check chains what is pending, from both nodes)
            admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", a.OperatorToken);
            using var chain = await admin.GetAsync("/admin/v1/audit/verify");
            Assert.Equal(HttpStatusCode.OK, chain.StatusCode);
        }

        Assert.Equal(1, await c.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM audit_log WHERE event = 'lockout.engaged' AND subject = @user", new { user }));
    }

    private static HttpClient Client(ChildAppliance node)
    {
        var http = new HttpClient { BaseAddress = node.BaseAddress };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", node.TestKey);
        return http;
    }

    private static Task<HttpResponseMessage> Post(HttpClient http, string path, string body) =>
        http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/x-www-form-urlencoded"));

    private static async Task<JsonElement> Problem(HttpResponseMessage response, HttpStatusCode status)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }
}
