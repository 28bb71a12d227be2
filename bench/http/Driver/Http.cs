using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace DevRift.Hsm.Bench.Driver;

/// <summary>One HTTP/1.1 client to the appliance with the bench application's test key.</summary>
internal static class Http
{
    public static HttpClient Client(string baseUrl, string key, int connections)
    {
        var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = connections,
            PooledConnectionLifetime = TimeSpan.FromMinutes(10),
            AutomaticDecompression = DecompressionMethods.None,
        };
        var client = new HttpClient(handler) { BaseAddress = new Uri(baseUrl), Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    /// <summary>A body in the documented form (<c>User=…, Type=…, Code=…</c>), as <c>curl -d</c> sends it.</summary>
    public static StringContent Form(string body) =>
        new(body, Encoding.ASCII, "application/x-www-form-urlencoded");
}
