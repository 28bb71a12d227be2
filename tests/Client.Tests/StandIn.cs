using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace DevRift.Client.Tests;

/// <summary>What the stand-in does with the n-th request (1-based).</summary>
public enum StandInAction
{
    /// <summary>Pass it to the appliance and its answer back.</summary>
    Forward,

    /// <summary>Answer 503 with <c>Retry-After: 1</c> and a problem body, without forwarding.</summary>
    Unavailable,

    /// <summary>Pass it to the appliance, then cut the connection instead of answering.</summary>
    ForwardThenDrop,

    /// <summary>Never answer (until the caller gives up).</summary>
    Hang,
}

/// <summary>
/// A reverse proxy on 127.0.0.1 in front of the real appliance that misbehaves as told per request and records each
/// request's method, path and <c>Idempotency-Key</c>.
/// </summary>
public sealed class StandIn : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly HttpClient _upstream;
    private int _count;

    private StandIn(WebApplication app, HttpClient upstream)
    {
        _app = app;
        _upstream = upstream;
        BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
    }

    public Uri BaseAddress { get; }

    public ConcurrentQueue<(string Method, string Path, string? IdempotencyKey)> Requests { get; } = new();

    public static async Task<StandIn> StartAsync(Uri appliance, Func<int, StandInAction> plan)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var upstream = new HttpClient { BaseAddress = appliance };
        StandIn? self = null;
        app.Run(async http =>
        {
            var n = Interlocked.Increment(ref self!._count);
            self.Requests.Enqueue((http.Request.Method, http.Request.Path + http.Request.QueryString,
                http.Request.Headers["Idempotency-Key"].FirstOrDefault()));
            switch (plan(n))
            {
                case StandInAction.Unavailable:
                    http.Response.StatusCode = 503;
                    http.Response.Headers.RetryAfter = "1";
                    http.Response.ContentType = "application/problem+json";
                    await http.Response.WriteAsync("""{"type":"about:blank","title":"HSM unavailable","status":503,"detail":"stand-in","code":"hsm_unavailable"}""");
                    return;
                case StandInAction.Hang:
                    await Task.Delay(Timeout.Infinite, http.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
                    return;
            }

            using var forwarded = new HttpRequestMessage(new HttpMethod(http.Request.Method), http.Request.Path + http.Request.QueryString);
            using var body = new MemoryStream();
            await http.Request.Body.CopyToAsync(body);
            if (body.Length > 0)
            {
                forwarded.Content = new ByteArrayContent(body.ToArray());
                forwarded.Content.Headers.TryAddWithoutValidation("Content-Type", http.Request.ContentType);
            }

            foreach (var name in new[] { "Authorization", "Idempotency-Key", "Accept" })
            {
                if (http.Request.Headers.TryGetValue(name, out var value))
                {
                    forwarded.Headers.TryAddWithoutValidation(name, value.ToArray());
                }
            }

            using var answer = await upstream.SendAsync(forwarded);
            var bytes = await answer.Content.ReadAsByteArrayAsync();
            if (plan(n) == StandInAction.ForwardThenDrop)
            {
                http.Abort();
                return;
            }

            http.Response.StatusCode = (int)answer.StatusCode;
            if (answer.Content.Headers.ContentType is { } type)
            {
                http.Response.ContentType = type.ToString();
            }

            if (answer.Headers.RetryAfter is { } retry)
            {
                http.Response.Headers.RetryAfter = retry.ToString();
            }

            await http.Response.Body.WriteAsync(bytes);
        });
        await app.StartAsync();
        self = new StandIn(app, upstream);
        return self;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        _upstream.Dispose();
    }
}
