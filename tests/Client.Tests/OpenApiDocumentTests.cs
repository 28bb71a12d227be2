using System.Net;
using System.Text.Json;

namespace DevRift.Client.Tests;

/// <summary>
/// The appliance's OpenAPI document describes what a client needs, its reference page is set up for an offline
/// appliance, and problem type URLs lead to pages it serves. With DEVRIFT_OPENAPI_OUT set (test.sh sets it), the
/// document is also written there for the linter and the generated-client check.
/// </summary>
public sealed class OpenApiDocumentTests(ApplianceFixture fixture) : IClassFixture<ApplianceFixture>
{
    private static readonly string[] s_methods = ["get", "post", "patch", "delete", "put"];

    private async Task<JsonElement> DocumentAsync()
    {
        using var http = fixture.Server.NewClient(null);
        using var response = await http.GetAsync("/openapi/v1.json");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        if (Environment.GetEnvironmentVariable("DEVRIFT_OPENAPI_OUT") is { Length: > 0 } path)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            await File.WriteAllTextAsync(path, text);
        }

        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private static IEnumerable<(string Path, string Method, JsonElement Operation)> Operations(JsonElement doc) =>
        doc.GetProperty("paths").EnumerateObject().SelectMany(p => p.Value.EnumerateObject()
            .Where(m => s_methods.Contains(m.Name))
            .Select(m => (p.Name, m.Name, m.Value)));

    [Fact]
    public async Task Every_operation_has_its_security_its_bodies_and_its_problem_responses()
    {
        var doc = await DocumentAsync();
        var operations = Operations(doc).ToList();
        Assert.Equal(41, operations.Count);
        Assert.All(operations, o => Assert.True(DevRift.Hsm.Api.OpenApi.OperationContracts.ByRoute.ContainsKey($"{o.Method.ToUpperInvariant()} {o.Path}"),
            $"{o.Method} {o.Path} has no entry in src/Api/OpenApi/OperationContracts.cs"));
        var schemes = doc.GetProperty("components").GetProperty("securitySchemes");
        Assert.Equal("bearer", schemes.GetProperty("apiKey").GetProperty("scheme").GetString());
        Assert.Equal("bearer", schemes.GetProperty("operatorToken").GetProperty("scheme").GetString());

        foreach (var (path, method, op) in operations)
        {
            var where = $"{method} {path}";
            Assert.False(string.IsNullOrEmpty(op.GetProperty("operationId").GetString()), where);
            var scheme = op.GetProperty("security")[0].EnumerateObject().Single().Name;
            Assert.Equal(path.StartsWith("/admin/", StringComparison.Ordinal) ? "operatorToken" : "apiKey", scheme);
            var responses = op.GetProperty("responses");
            foreach (var status in new[] { "401", "503" })
            {
                Assert.True(responses.TryGetProperty(status, out var problem), $"{where} lists no {status}");
                Assert.Equal("#/components/schemas/Problem", problem.GetProperty("content").GetProperty("application/problem+json").GetProperty("schema").GetProperty("$ref").GetString());
            }

            if (method is "post" or "patch")
            {
                var content = op.GetProperty("requestBody").GetProperty("content");
                Assert.True(content.TryGetProperty("application/json", out _), where);
                Assert.Equal(path.StartsWith("/v1/", StringComparison.Ordinal), content.TryGetProperty("application/x-www-form-urlencoded", out _));
            }
        }
    }

    [Fact]
    public async Task Problem_codes_headers_parameters_and_types_are_described()
    {
        var doc = await DocumentAsync();
        var paths = doc.GetProperty("paths");
        var verify = paths.GetProperty("/v1/mfa/verify").GetProperty("post").GetProperty("responses");
        var failed = verify.GetProperty("401").GetProperty("content").GetProperty("application/problem+json").GetProperty("examples");
        Assert.Equal(["client_certificate_required", "code_expired", "invalid_api_key", "invalid_code", "no_pending_challenge", "not_enrolled", "transaction_mismatch"],
            failed.EnumerateObject().Select(e => e.Name).Order(StringComparer.Ordinal));
        Assert.True(verify.GetProperty("429").GetProperty("headers").TryGetProperty("Retry-After", out _));

        var send = paths.GetProperty("/v1/mfa").GetProperty("post");
        var idempotency = Assert.Single(send.GetProperty("parameters").EnumerateArray(), p => p.GetProperty("name").GetString() == "Idempotency-Key");
        Assert.Equal("header", idempotency.GetProperty("in").GetString());
        Assert.True(send.GetProperty("responses").GetProperty("409").GetProperty("content").GetProperty("application/problem+json").GetProperty("examples").TryGetProperty("idempotency_key_reused", out _));

        var audit = paths.GetProperty("/admin/v1/audit").GetProperty("get").GetProperty("parameters").EnumerateArray().ToList();
        Assert.Equal(["after", "limit", "event", "application_id", "subject", "outcome", "from", "to"], audit.Select(p => p.GetProperty("name").GetString()));
        Assert.All(audit.Take(2), p => Assert.Equal("integer", p.GetProperty("schema").GetProperty("type").GetString()));
        Assert.All(audit.Skip(2), p => Assert.Equal("string", p.GetProperty("schema").GetProperty("type").GetString()));

        var schemas = doc.GetProperty("components").GetProperty("schemas");
        var challenge = schemas.GetProperty("ChallengeResponse").GetProperty("properties");
        Assert.Equal("string", challenge.GetProperty("created_at").GetProperty("type").GetString());
        Assert.Equal("integer", challenge.GetProperty("attempts_remaining").GetProperty("type").GetString());
        Assert.False(challenge.GetProperty("attempts_remaining").TryGetProperty("pattern", out _));
        var documentedCodes = schemas.GetProperty("Problem").GetProperty("properties").GetProperty("code").GetProperty("enum").EnumerateArray().Select(c => c.GetString()).ToHashSet();
        Assert.Equal(33, documentedCodes.Count);
        Assert.Contains("invalid_signature", documentedCodes);
        Assert.Contains("channel_not_configured", documentedCodes);
        Assert.Contains("transaction_mismatch", documentedCodes);

        // The payment of PSD2 dynamic linking: one schema, on send, verify and security-key assertion options, and echoed
        var transaction = schemas.GetProperty("Transaction");
        Assert.Equal(["amount", "currency", "payee"], transaction.GetProperty("required").EnumerateArray().Select(r => r.GetString()).Order(StringComparer.Ordinal));
        foreach (var request in new[] { "SendCodeRequest", "VerifyRequest", "AssertionOptionsRequest" })
        {
            Assert.Equal("#/components/schemas/Transaction",
                schemas.GetProperty(request).GetProperty("properties").GetProperty("transaction").GetProperty("$ref").GetString());
        }

        Assert.Equal("12.34", send.GetProperty("requestBody").GetProperty("content").GetProperty("application/json").GetProperty("example").GetProperty("transaction").GetProperty("amount").GetString());
        Assert.True(schemas.GetProperty("VerificationResponse").GetProperty("properties").TryGetProperty("transaction", out _));
    }

    [Fact]
    public async Task The_reference_page_is_offline_and_shows_samples_with_header_and_body()
    {
        using var http = fixture.Server.NewClient(null);
        var page = await http.GetStringAsync("/docs/v1");

        Assert.Contains("\"agent\":{\"disabled\":true}", page, StringComparison.Ordinal);
        Assert.Contains("\"showDeveloperTools\":\"never\"", page, StringComparison.Ordinal);
        Assert.Contains("\"withDefaultFonts\":false", page, StringComparison.Ordinal);
        Assert.DoesNotContain("cdn.jsdelivr", page, StringComparison.Ordinal);
        var doc = await DocumentAsync();
        var send = doc.GetProperty("paths").GetProperty("/v1/mfa").GetProperty("post");
        Assert.Equal("ada@example.com", send.GetProperty("requestBody").GetProperty("content").GetProperty("application/json").GetProperty("example").GetProperty("user").GetString());
    }

    [Fact]
    public async Task A_problem_type_url_leads_to_a_page_saying_what_it_means_and_what_to_do()
    {
        using var wrongKey = fixture.NewClient("sk_test_" + new string('z', 40));
        var e = await Assert.ThrowsAsync<DevRiftException>(() => wrongKey.GetFactorsAsync("ada@example.com"));
        using var http = fixture.Server.NewClient(null);

        using var page = await http.GetAsync(new Uri(fixture.Server.BaseAddress, e.Type!));
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType!.MediaType);
        var html = await page.Content.ReadAsStringAsync();
        Assert.Contains("What it means", html, StringComparison.Ordinal);
        Assert.Contains("What to do", html, StringComparison.Ordinal);

        foreach (var code in DevRift.Hsm.Api.OpenApi.ProblemCatalog.All.Select(c => c.Code))
        {
            using var each = await http.GetAsync($"/errors/{code}");
            Assert.Equal(HttpStatusCode.OK, each.StatusCode);
        }

        using var unknown = await http.GetAsync("/errors/no_such_code");
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("application/problem+json", unknown.Content.Headers.ContentType!.MediaType);
    }
}
