using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Reflection;
using System.Text;
using System.Text.Json;
using CsCheck;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Appliance.Errors;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace DevRift.Hsm.Api.Tests.Hardening;

/// <summary>One server for the malformed-request tests of a class.</summary>
public sealed class MalformedRequestServer : IAsyncLifetime
{
    public ApplianceServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await ApplianceServer.StartAsync(Db.Sqlite);

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>
/// Garbage never gets a 5xx: every /v1 and /admin/v1 route, in JSON, URL-encoded form and the comma form, answers a
/// request that is not well formed with a 4xx problem carrying one of the contract's codes. A property-based run over
/// generated bodies (CsCheck), and the cases a fuzzer found as named regressions.
/// </summary>
public sealed class MalformedRequestTests(MalformedRequestServer fixture) : IClassFixture<MalformedRequestServer>
{
    /// <summary>The contract's 4xx codes (every code of <see cref="ErrorCode"/> but the 5xx ones).</summary>
    private static readonly HashSet<string> s_clientCodes = typeof(ErrorCode).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(f => f.FieldType == typeof(ErrorCode))
        .Select(f => (ErrorCode)f.GetValue(null)!)
        .Where(c => c.Kind is not (ErrorKind.Internal or ErrorKind.Unavailable))
        .Select(c => c.Code)
        .ToHashSet(StringComparer.Ordinal);

    private static readonly string[] s_fields =
    [
        "user", "type", "code", "locale", "credential", "name", "plan", "mode", "purpose", "version", "thumbprint", "pem",
        "enabled_methods", "webauthn_origins", "webauthn_rp_id", "code_length", "totp_issuer", "totp_algorithm", "lockout_threshold",
        "backup_code_count", "User", "TYPE", "",
        // issue 15: payments, the end user's address and identity, the fraud guard, lockout profiles, event endpoints
        "transaction", "amount", "currency", "payee", "reference", "client_ip", "Client-Ip", "user_id", "User_Id",
        "allowed_countries", "blocked_ranges", "fraud_guard_mode", "lockout_profile", "source_failure_threshold", "url", "events",
    ];

    private ApplianceServer Server => fixture.Server;

    public enum Encoding
    {
        Json,
        Form,
        Comma,
    }

    /// <summary>One generated request: a route, an encoding and the raw body bytes.</summary>
    public sealed record FuzzRequest(string Method, string Path, Encoding Encoding, byte[] Body)
    {
        public override string ToString() => $"{Method} {Path} ({Encoding}) {Convert.ToHexString(Body.AsSpan(0, Math.Min(Body.Length, 200)))}";
    }

    [Fact]
    public async Task Generated_malformed_bodies_on_every_route_get_a_4xx_problem_with_a_contract_code()
    {
        var iterations = Environment.GetEnvironmentVariable("DEVRIFT_FUZZ_ITERATIONS") is { Length: > 0 } n
            ? long.Parse(n, System.Globalization.CultureInfo.InvariantCulture)
            : 3000;
        // The chain check recomputes every audit record's MAC in the HSM, so its cost grows with the log the fuzzer
        // itself fills (refusals are audited): sampled like the others it made a long run quadratic. It takes no input
        // to garble; it runs once after the run instead, and must find the chain intact.
        var routes = Routes().Where(r => r.Path != "/admin/v1/audit/verify").ToList();
        Assert.True(routes.Count >= 20, $"only {routes.Count} routes found");
        var gen = Gen.Select(Gen.Int[0, routes.Count - 1], Gen.Enum<Encoding>(), Body(), (r, e, body) => (r, e, body))
            .Select(t => new FuzzRequest(routes[t.r].Method, routes[t.r].Path, t.e, t.e == Encoding.Json ? t.body.Json : t.e == Encoding.Form ? t.body.Form : t.body.Comma));
        using var v1 = Server.NewClient(Server.TestKey);
        using var admin = Server.NewClient(Server.OperatorToken);
        long sent = 0;
        // A long run (DEVRIFT_FUZZ_ITERATIONS=100000) says how far it is in the file DEVRIFT_FUZZ_PROGRESS names
        var progress = Environment.GetEnvironmentVariable("DEVRIFT_FUZZ_PROGRESS");
        var started = System.Diagnostics.Stopwatch.StartNew();
        await gen.SampleAsync(async c =>
        {
            var n = Interlocked.Increment(ref sent);
            if (progress is { Length: > 0 } && n % 1000 == 0)
            {
                lock (started)
                {
                    File.AppendAllText(progress, $"{n} requests, {started.Elapsed.TotalSeconds:F0} s, RSS {Environment.WorkingSet / 1048576} MB{Environment.NewLine}");
                }
            }

            await AssertClientProblemAsync(c.Path.StartsWith("/admin/", StringComparison.Ordinal) ? admin : v1, c);
        }, iter: iterations, threads: 2, seed: Environment.GetEnvironmentVariable("DEVRIFT_FUZZ_SEED") is { Length: > 0 } seed ? seed : null);

        // And the process is healthy after it: it answers, and a well-formed send on a fresh application works (the
        // generated bodies may have changed the demo application's settings, which is theirs to do)
        using var anonymous = Server.NewClient(null);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/healthz")).StatusCode);
        using var chain = await admin.GetAsync("/admin/v1/audit/verify");
        var verification = await chain.AssertJsonAsync(HttpStatusCode.OK);
        Assert.True(verification.GetProperty("valid").GetBoolean(), verification.ToString());
        using var created = await admin.PostAsync("/admin/v1/applications", new StringContent("""{"name":"after-fuzz"}""", System.Text.Encoding.UTF8, "application/json"));
        var app = (await created.AssertJsonAsync(HttpStatusCode.Created, "application")).GetProperty("id").GetString();
        using var keyed = await admin.PostAsync($"/admin/v1/applications/{app}/api-keys", new StringContent("""{"mode":"test"}""", System.Text.Encoding.UTF8, "application/json"));
        var key = (await keyed.AssertJsonAsync(HttpStatusCode.Created, "api_key")).GetProperty("secret").GetString();
        using var send = await Server.PostCurlAsync("/v1/mfa", "User=healthy-after-fuzz@example.com, Type=EMAIL", key);
        Assert.Equal(HttpStatusCode.Accepted, send.StatusCode);
        Assert.Equal(iterations, sent);
    }

    [Fact]
    public async Task A_lone_surrogate_escape_is_a_400_naming_the_field_on_every_v1_post_and_admin_create_and_patch()
    {
        var body = """{"user":"\ud800","type":"EMAIL","name":"\udfff","mode":"\ud800x"}""";
        // (not the Twilio status callback: like a key on the other routes, its signature is checked before the body is read,
        // and this body carries none: 403 invalid_signature, see DeliveryReceiptTests)
        foreach (var (method, path) in Routes().Where(r => r.Method is "POST" or "PATCH" && r.Path != "/v1/providers/twilio/status"))
        {
            using var client = Server.NewClient(path.StartsWith("/admin/", StringComparison.Ordinal) ? Server.OperatorToken : Server.TestKey);
            using var response = await client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path)
            {
                Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json"),
            });
            var problem = await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request");
            Assert.Contains("surrogate", problem.GetProperty("detail").GetString()!, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("/v1/mfa")]
    [InlineData("/v1/mfa/verify")]
    [InlineData("/admin/v1/applications")]
    public async Task A_json_body_that_is_not_utf8_is_a_400_like_the_same_bytes_in_a_form(string path)
    {
        byte[] bytes = [.. "{\"user\":\""u8, 0xC3, 0x28, .. "\",\"type\":\"EMAIL\",\"name\":\"x\"}"u8];
        using var client = Server.NewClient(path.StartsWith("/admin/", StringComparison.Ordinal) ? Server.OperatorToken : Server.TestKey);
        using var json = await client.PostAsync(path, Content(bytes, "application/json"));
        var problem = await json.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request");
        Assert.Equal("the body is not valid UTF-8", problem.GetProperty("detail").GetString());
        if (!path.StartsWith("/admin/", StringComparison.Ordinal))
        {
            using var form = await client.PostAsync(path, Content([.. "User="u8, 0xC3, 0x28, .. ", Type=EMAIL"u8], "application/x-www-form-urlencoded"));
            await form.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request");
        }
    }

    [Theory]
    [InlineData("enabled_methods")]
    [InlineData("webauthn_origins")]
    [InlineData("webauthn_user_verification")]
    [InlineData("code_length")]
    public async Task A_null_setting_is_a_400_naming_it_and_changes_nothing(string setting)
    {
        using var admin = Server.NewClient(Server.OperatorToken);
        var path = $"/admin/v1/applications/{Server.ApplicationId}/settings";
        var before = await (await admin.GetAsync(path)).Content.ReadAsStringAsync();
        using var response = await admin.PatchAsync(path, new StringContent($"{{\"{setting}\": null}}", System.Text.Encoding.UTF8, "application/json"));
        await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", setting);
        Assert.Equal(before, await (await admin.GetAsync(path)).Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_null_inside_a_list_setting_is_a_400_naming_it()
    {
        using var admin = Server.NewClient(Server.OperatorToken);
        using var response = await admin.PatchAsync($"/admin/v1/applications/{Server.ApplicationId}/settings",
            new StringContent("""{"enabled_methods": ["EMAIL", null]}""", System.Text.Encoding.UTF8, "application/json"));
        await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request", "enabled_methods");
    }

    [Theory]
    [InlineData("""{"user":"a@example.com","user":"b@example.com","type":"EMAIL"}""", "more than once")]
    [InlineData("""{"User":"a@example.com","user":"b@example.com","type":"EMAIL"}""", "more than once")]
    [InlineData("""{"user":["a@example.com"],"type":"EMAIL"}""", "must be a string")]
    public async Task Duplicate_and_mistyped_json_fields_are_a_400(string body, string detail)
    {
        using var response = await Server.NewClient(Server.TestKey).PostAsync("/v1/mfa", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        var problem = await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request");
        Assert.Contains(detail, problem.GetProperty("detail").GetString()!, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Deep_nesting_is_a_400_on_v1_and_admin()
    {
        var deep = "{\"user\":" + new string('[', 100) + new string(']', 100) + "}";
        using var v1 = await Server.NewClient(Server.TestKey).PostAsync("/v1/mfa", new StringContent(deep, System.Text.Encoding.UTF8, "application/json"));
        await v1.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request");
        using var admin = await Server.NewClient(Server.OperatorToken).PostAsync("/admin/v1/applications", new StringContent(deep, System.Text.Encoding.UTF8, "application/json"));
        await admin.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request");
    }

    [Fact]
    public async Task A_header_value_that_is_not_utf8_gets_a_problem_naming_the_header()
    {
        // HttpClient refuses to send such a header, so the request is written on a socket
        var response = await RawAsync("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Garbage: "u8.ToArray(), [0xFF, 0xFE, 0x41], "\r\nConnection: close\r\n\r\n"u8.ToArray());
        Assert.StartsWith("HTTP/1.1 400", response, StringComparison.Ordinal);
        Assert.Contains("application/problem+json", response, StringComparison.Ordinal);
        Assert.Contains("\"code\":\"invalid_request\"", response, StringComparison.Ordinal);
        Assert.Contains("X-Garbage", response, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_are_served_on_postgresql()
    {
        await using var server = await ApplianceServer.StartAsync(Db.Postgres);
        using var response = await server.NewClient(null).GetAsync("/metrics");
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        Assert.Contains("devrift_outbox_depth{status=\"queued\"} 0", text, StringComparison.Ordinal);
    }

    private async Task<string> RawAsync(params byte[][] parts)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(Server.BaseAddress.Host, Server.BaseAddress.Port);
        var stream = tcp.GetStream();
        foreach (var part in parts)
        {
            await stream.WriteAsync(part);
        }

        using var reader = new StreamReader(stream, System.Text.Encoding.UTF8);
        return await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(10));
    }

    private static async Task AssertClientProblemAsync(HttpClient client, FuzzRequest c)
    {
        using var request = new HttpRequestMessage(new HttpMethod(c.Method), c.Path);
        if (c.Method is "POST" or "PATCH" or "PUT")
        {
            request.Content = Content(c.Body, c.Encoding == Encoding.Json ? "application/json" : "application/x-www-form-urlencoded");
        }

        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        var status = (int)response.StatusCode;
        Assert.True(status < 500, $"{status} for {c}: {text}");
        if (status >= 400)
        {
            Assert.True(response.Content.Headers.ContentType?.MediaType == "application/problem+json", $"{status} without a problem for {c}: {text}");
            var code = JsonDocument.Parse(text).RootElement.GetProperty("code").GetString();
            Assert.True(code is not null && s_clientCodes.Contains(code), $"code '{code}' for {c}");
        }
    }

    private static ByteArrayContent Content(byte[] bytes, string mediaType)
    {
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
        return content;
    }

    /// <summary>Every /v1 and /admin/v1 route with a method, its parameters filled with real ids or garbage.</summary>
    private List<(string Method, string Path)> Routes()
    {
        var sources = Server.Services.GetRequiredService<IEnumerable<EndpointDataSource>>();
        var routes = new List<(string, string)>();
        foreach (var endpoint in sources.SelectMany(s => s.Endpoints).OfType<RouteEndpoint>())
        {
            var pattern = "/" + endpoint.RoutePattern.RawText!.TrimStart('/');
            if (!pattern.StartsWith("/v1/", StringComparison.Ordinal) && !pattern.StartsWith("/admin/v1/", StringComparison.Ordinal))
            {
                continue;
            }

            var path = System.Text.RegularExpressions.Regex.Replace(pattern, @"\{(\w+)[^}]*\}", m => m.Groups[1].Value == "id" && pattern.Contains("applications", StringComparison.Ordinal)
                ? Server.ApplicationId
                : "x%FF%C3%28" + m.Groups[1].Value);
            foreach (var method in endpoint.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods ?? ["GET"])
            {
                routes.Add((method, path));
                if (method == "GET")
                {
                    routes.Add((method, path + "?user=%C3%28&after=-1&limit=99999999999&id=%00"));
                }
            }
        }

        return routes;
    }

    /// <summary>A malformed body in all three encodings (JSON, form, comma), built from the same hostile pieces.</summary>
    private static Gen<(byte[] Json, byte[] Form, byte[] Comma)> Body()
    {
        var hostileText = Gen.OneOf(
            Gen.Const("\\ud800"), Gen.Const("\\udfff\\ud800"), Gen.Const("\\u0000"), Gen.Const("%00"), Gen.Const("%ED%A0%80"), Gen.Const("%C3%28"),
            Gen.Const("%ZZ"), Gen.Const("+447700900123"), Gen.Const("ada@example.com"), Gen.Const("EMAIL"), Gen.Const("KEY"), Gen.Const("standard"),
            Gen.Const("live"), Gen.Const("test"), Gen.Const("seal"), Gen.Const("123456"), Gen.Const("=,&"), Gen.Const("\\\""),
            Gen.String[Gen.Char.AlphaNumeric, 0, 20], Gen.String[0, 40], Gen.Const(new string('a', 20_000)));
        var field = Gen.OneOf(Gen.OneOf<string>(s_fields), Gen.String[Gen.Char.AlphaNumeric, 0, 8]);
        var jsonScalar = Gen.OneOf(
            hostileText.Select(t => "\"" + t + "\""),
            Gen.OneOf<string>("null", "true", "false", "0", "-1", "1e309", "1.5", "99999999999999999999", "[]", "{}", "[null]", "[\"EMAIL\",null]", "{\"a\":{}}"),
            Gen.Int[1, 80].Select(d => new string('[', d) + new string(']', d)));
        var jsonObject = Gen.Select(field, jsonScalar).Array[0, 6]
            .Select(pairs => "{" + string.Join(",", pairs.Select(p => $"\"{p.Item1}\":{p.Item2}")) + "}");
        var jsonText = Gen.Frequency((8, jsonObject), (1, jsonScalar), (1, jsonObject.Select(o => o[..(o.Length / 2)])));
        var rawBytes = Gen.Byte.Array[0, 64];
        var formPairs = Gen.Select(field, hostileText).Array[0, 6];
        return Gen.Select(jsonText, formPairs, rawBytes, Gen.Int[0, 9], (json, pairs, raw, mix) =>
        {
            var form = string.Join("&", pairs.Select(p => $"{p.Item1}={p.Item2}"));
            var comma = string.Join(", ", pairs.Select(p => $"{p.Item1}={p.Item2}"));
            // One body in ten has raw (often invalid UTF-8) bytes spliced in.
            return mix == 0
                ? ([.. System.Text.Encoding.UTF8.GetBytes(json), .. raw], [.. System.Text.Encoding.UTF8.GetBytes(form), .. raw], [.. raw, .. System.Text.Encoding.UTF8.GetBytes(comma)])
                : (System.Text.Encoding.UTF8.GetBytes(json), System.Text.Encoding.UTF8.GetBytes(form), System.Text.Encoding.UTF8.GetBytes(comma));
        });
    }
}
