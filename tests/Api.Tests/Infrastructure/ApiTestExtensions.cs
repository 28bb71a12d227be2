using System.Collections.Concurrent;
using System.Data.Common;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Dapper;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace DevRift.Hsm.Api.Tests.Infrastructure;

/// <summary>Fresh end users: every test talks to its own identities, so tests can share one server.</summary>
public static class TestUsers
{
    private static int s_phone = 1000;

    public static string NewEmail(string hint = "user") => $"{hint}-{Guid.NewGuid():N}"[..(hint.Length + 13)] + "@example.com";

    /// <summary>A valid, distinct US number +1 415 555 NNNN (never +14155550123, which the documented examples use).</summary>
    public static string NewPhone() => "+1415555" + Interlocked.Increment(ref s_phone).ToString("D4", System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>An API key made through the operator API.</summary>
public sealed record CreatedKey(string Id, string Secret);

/// <summary>Requests and assertions the API tests share.</summary>
public static class ApiTestExtensions
{
    public static Task<HttpResponseMessage> SendCodeAsync(this ApplianceServer server, string user, string type, string? bearer = null) =>
        server.PostCurlAsync("/v1/mfa", $"User={user}, Type={type}", bearer);

    public static Task<HttpResponseMessage> VerifyCodeAsync(this ApplianceServer server, string user, string type, string code, string? bearer = null) =>
        server.PostCurlAsync("/v1/mfa/verify", $"User={user}, Type={type}, Code={code}", bearer);

    /// <summary>Sends a code and returns the challenge object (asserting 202).</summary>
    public static async Task<JsonElement> SendAcceptedAsync(this ApplianceServer server, string user, string type, string? bearer = null)
    {
        using var response = await server.SendCodeAsync(user, type, bearer);
        return await response.AssertJsonAsync(HttpStatusCode.Accepted, "challenge");
    }

    /// <summary>A code that is certainly not <paramref name="code"/> (same length, last digit changed).</summary>
    public static string WrongCode(string code) => code[..^1] + (char)('0' + ((code[^1] - '0' + 1) % 10));

    public static async Task<JsonElement> AssertJsonAsync(this HttpResponseMessage response, HttpStatusCode status, string? objectType = null)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        var root = JsonDocument.Parse(text).RootElement.Clone();
        if (objectType is not null)
        {
            Assert.Equal(objectType, root.GetProperty("object").GetString());
        }

        return root;
    }

    /// <summary>Asserts an RFC 9457 problem with this status, <c>code</c> and (when given) <c>param</c>.</summary>
    public static async Task<JsonElement> AssertProblemAsync(this HttpResponseMessage response, HttpStatusCode status, string code, string? param = null)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status} {code}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var root = JsonDocument.Parse(text).RootElement.Clone();
        Assert.Equal(code, root.GetProperty("code").GetString());
        Assert.Equal((int)status, root.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(root.GetProperty("title").GetString()));
        Assert.False(string.IsNullOrWhiteSpace(root.GetProperty("detail").GetString()));
        if (param is not null)
        {
            Assert.Equal(param, root.GetProperty("param").GetString());
        }

        return root;
    }

    // ---- operator API ----

    public static HttpClient AdminClient(this ApplianceServer server, string? token = null) => server.NewClient(token ?? server.OperatorToken);

    public static async Task<string> CreateApplicationAsync(this ApplianceServer server, string name, string plan)
    {
        using var admin = server.AdminClient();
        using var response = await admin.PostAsJsonAsync("/admin/v1/applications", new { name, plan });
        var app = await response.AssertJsonAsync(HttpStatusCode.Created, "application");
        return app.GetProperty("id").GetString()!;
    }

    public static async Task<CreatedKey> CreateApiKeyAsync(this ApplianceServer server, string applicationId, string mode)
    {
        using var admin = server.AdminClient();
        using var response = await admin.PostAsJsonAsync($"/admin/v1/applications/{applicationId}/api-keys", new { mode });
        var key = await response.AssertJsonAsync(HttpStatusCode.Created, "api_key");
        var secret = key.GetProperty("secret").GetString()!;
        Assert.StartsWith($"sk_{mode}_", secret, StringComparison.Ordinal);
        return new CreatedKey(key.GetProperty("id").GetString()!, secret);
    }

    public static async Task<HttpResponseMessage> PatchSettingsAsync(this ApplianceServer server, string applicationId, object patch, string? token = null)
    {
        using var admin = server.AdminClient(token);
        return await admin.PatchAsync($"/admin/v1/applications/{applicationId}/settings", JsonContent.Create(patch));
    }

    /// <summary>A new application with a test key and these settings applied.</summary>
    public static async Task<(string ApplicationId, string TestKey)> CreateApplicationWithKeyAsync(this ApplianceServer server, string name, string plan, object? settings = null)
    {
        var id = await server.CreateApplicationAsync(name, plan);
        var key = await server.CreateApiKeyAsync(id, "test");
        if (settings is not null)
        {
            using var patched = await server.PatchSettingsAsync(id, settings);
            await patched.AssertJsonAsync(HttpStatusCode.OK, "settings");
        }

        return (id, key.Secret);
    }

    // ---- the database, read directly ----

    public static async Task<DbConnection> OpenDatabaseAsync(this ApplianceServer server)
    {
        DbConnection connection = server.ConnectionString.StartsWith("Data Source=", StringComparison.OrdinalIgnoreCase)
            ? new SqliteConnection(server.ConnectionString)
            : new NpgsqlConnection(server.ConnectionString);
        await connection.OpenAsync();
        return connection;
    }

    public static async Task<long> CountAsync(this ApplianceServer server, string sql, object? parameters = null)
    {
        await using var connection = await server.OpenDatabaseAsync();
        return await connection.ExecuteScalarAsync<long>(sql, parameters);
    }

    /// <summary>Row counts of the tables a send writes to.</summary>
    public static async Task<IReadOnlyDictionary<string, long>> SendTableCountsAsync(this ApplianceServer server)
    {
        var counts = new Dictionary<string, long>();
        foreach (var table in (string[])["challenges", "challenge_channels", "outbox", "destinations", "idempotency_keys"])
        {
            counts[table] = await server.CountAsync($"SELECT COUNT(*) FROM {table}");
        }

        return counts;
    }
}

/// <summary>
/// One server per database, started on first use and shared by the tests of a class (each test uses its own users).
/// </summary>
public abstract class ServersByDatabase : IAsyncLifetime
{
    private readonly ConcurrentDictionary<Db, Lazy<Task<ApplianceServer>>> _servers = new();

    protected abstract bool FakeClock { get; }

    public Task<ApplianceServer> GetAsync(Db db) =>
        _servers.GetOrAdd(db, d => new Lazy<Task<ApplianceServer>>(() => ApplianceServer.StartAsync(d, FakeClock))).Value;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var server in _servers.Values)
        {
            await (await server.Value).DisposeAsync();
        }
    }
}

/// <summary>SQLite and PostgreSQL servers on a <see cref="Microsoft.Extensions.Time.Testing.FakeTimeProvider"/>.</summary>
public sealed class FakeClockServers : ServersByDatabase
{
    protected override bool FakeClock => true;
}

/// <summary>SQLite and PostgreSQL servers on the system clock.</summary>
public sealed class SystemClockServers : ServersByDatabase
{
    protected override bool FakeClock => false;
}

/// <summary>Raw HTTP/1.1 over a <see cref="System.Net.Sockets.TcpClient"/>: the exact bytes a client such as curl sends.</summary>
public static class RawHttp
{
    public sealed record Response(int Status, IReadOnlyDictionary<string, string> Headers, string Body);

    public static async Task<Response> SendAsync(Uri server, byte[] request)
    {
        using var tcp = new System.Net.Sockets.TcpClient();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await tcp.ConnectAsync(server.Host, server.Port, timeout.Token);
        var stream = tcp.GetStream();
        await stream.WriteAsync(request, timeout.Token);
        await stream.FlushAsync(timeout.Token);

        var buffer = new List<byte>();
        var chunk = new byte[4096];
        int headerEnd;
        while ((headerEnd = IndexOf(buffer, "\r\n\r\n"u8)) < 0)
        {
            var n = await stream.ReadAsync(chunk, timeout.Token);
            Assert.True(n > 0, "connection closed before the response headers");
            buffer.AddRange(chunk.AsSpan(0, n));
        }

        var head = Encoding.ASCII.GetString([.. buffer.Take(headerEnd)]).Split("\r\n");
        var status = int.Parse(head[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in head.Skip(1))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }

        var rest = buffer.Skip(headerEnd + 4).ToList();
        async Task Need(int count)
        {
            while (rest.Count < count)
            {
                var n = await stream.ReadAsync(chunk, timeout.Token);
                Assert.True(n > 0, "connection closed inside the response body");
                rest.AddRange(chunk.AsSpan(0, n));
            }
        }

        byte[] body;
        if (headers.TryGetValue("Content-Length", out var length))
        {
            var n = int.Parse(length, System.Globalization.CultureInfo.InvariantCulture);
            await Need(n);
            body = [.. rest.Take(n)];
        }
        else
        {
            Assert.Equal("chunked", headers.GetValueOrDefault("Transfer-Encoding"));
            using var decoded = new MemoryStream();
            var at = 0;
            while (true)
            {
                int lineEnd;
                while ((lineEnd = IndexOf(rest.Skip(at).ToList(), "\r\n"u8)) < 0)
                {
                    await Need(rest.Count + 1);
                }

                var size = Convert.ToInt32(Encoding.ASCII.GetString([.. rest.Skip(at).Take(lineEnd)]).Split(';')[0], 16);
                at += lineEnd + 2;
                await Need(at + size + 2);
                if (size == 0)
                {
                    break;
                }

                decoded.Write([.. rest.Skip(at).Take(size)]);
                at += size + 2;
            }

            body = decoded.ToArray();
        }

        return new Response(status, headers, Encoding.UTF8.GetString(body));
    }

    private static int IndexOf(List<byte> haystack, ReadOnlySpan<byte> needle) =>
        System.Runtime.InteropServices.CollectionsMarshal.AsSpan(haystack).IndexOf(needle);
}

/// <summary>Request bodies with exactly the media type a test names (or none).</summary>
public static class Content
{
    public static ByteArrayContent Bytes(string body, string? mediaType)
    {
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
        if (mediaType is not null)
        {
            content.Headers.ContentType = MediaTypeHeaderValue.Parse(mediaType);
        }

        return content;
    }
}
