using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using MimeKit;
using SmtpServer;
using SmtpServer.Mail;
using SmtpServer.Protocol;
using SmtpServer.Storage;

namespace DevRift.Hsm.Api.Tests.Delivery;

public static class FreePort
{
    /// <summary>A TCP port on 127.0.0.1 that was free a moment ago (to start, stop and restart a stand-in on it).</summary>
    public static int Next()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}

/// <summary>
/// A real SMTP server in the test process (the SmtpServer library) on 127.0.0.1: keeps every message it accepts,
/// refuses recipients whose local part starts with <c>reject</c> (550), and with a user name set, requires AUTH
/// with that user and password. It can be stopped and started again on the same port.
/// </summary>
public sealed class SmtpStandIn : IAsyncDisposable
{
    private readonly string? _user;
    private readonly string? _password;
    private CancellationTokenSource? _stop;
    private SmtpServer.SmtpServer? _server;
    private Task? _running;

    public SmtpStandIn(int? port = null, string? user = null, string? password = null)
    {
        Port = port ?? FreePort.Next();
        _user = user;
        _password = password;
    }

    public int Port { get; }

    public ConcurrentQueue<MimeMessage> Messages { get; } = new();

    private int _authentications;

    public int Authentications => Volatile.Read(ref _authentications);

    public bool IsRunning => _server is not null;

    public static async Task<SmtpStandIn> StartAsync(string? user = null, string? password = null)
    {
        var smtp = new SmtpStandIn(user: user, password: password);
        await smtp.StartAsync();
        return smtp;
    }

    public async Task StartAsync()
    {
        var options = new SmtpServerOptionsBuilder()
            .ServerName("smtp.stand-in.test")
            .Endpoint(b =>
            {
                b.Endpoint(new IPEndPoint(IPAddress.Loopback, Port));
                if (_user is not null)
                {
                    b.AllowUnsecureAuthentication(true).AuthenticationRequired(true);
                }
            })
            .Build();
        var services = new SmtpServer.ComponentModel.ServiceProvider();
        services.Add(new Store(this));
        services.Add(new Filter());
        if (_user is not null)
        {
            services.Add(new Authenticator(this));
        }

        _stop = new CancellationTokenSource();
        _server = new SmtpServer.SmtpServer(options, services);
        _running = _server.StartAsync(_stop.Token);
        // Listening once a client can connect.
        for (var i = 0; i < 100; i++)
        {
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(20);
            }
        }

        throw new InvalidOperationException($"the SMTP stand-in did not listen on {Port}");
    }

    public async Task StopAsync()
    {
        if (_server is null)
        {
            return;
        }

        _server.Shutdown();
        await _stop!.CancelAsync();
        try
        {
            await _running!.WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (OperationCanceledException)
        {
        }

        _stop.Dispose();
        _server = null;
    }

    public async Task<MimeMessage> WaitForAsync(string to, TimeSpan? timeout = null)
    {
        var until = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (DateTime.UtcNow < until)
        {
            var found = Messages.FirstOrDefault(m => m.To.Mailboxes.Any(a => a.Address.Equals(to, StringComparison.OrdinalIgnoreCase)));
            if (found is not null)
            {
                return found;
            }

            await Task.Delay(25);
        }

        throw new TimeoutException($"no mail reached the SMTP stand-in for {to}");
    }

    public int CountTo(string to) => Messages.Count(m => m.To.Mailboxes.Any(a => a.Address.Equals(to, StringComparison.OrdinalIgnoreCase)));

    public ValueTask DisposeAsync() => new(StopAsync());

    private sealed class Store(SmtpStandIn owner) : MessageStore
    {
        public override async Task<SmtpResponse> SaveAsync(ISessionContext context, IMessageTransaction transaction, ReadOnlySequence<byte> buffer, CancellationToken cancellationToken)
        {
            using var stream = new MemoryStream(buffer.ToArray());
            owner.Messages.Enqueue(await MimeMessage.LoadAsync(stream, cancellationToken));
            return SmtpResponse.Ok;
        }
    }

    private sealed class Filter : MailboxFilter
    {
        public override Task<bool> CanDeliverToAsync(ISessionContext context, IMailbox to, IMailbox from, CancellationToken cancellationToken) =>
            Task.FromResult(!to.User.StartsWith("reject", StringComparison.OrdinalIgnoreCase));
    }

    private sealed class Authenticator(SmtpStandIn owner) : SmtpServer.Authentication.IUserAuthenticator
    {
        public Task<bool> AuthenticateAsync(ISessionContext context, string user, string password, CancellationToken cancellationToken)
        {
            var ok = user == owner._user && password == owner._password;
            if (ok)
            {
                Interlocked.Increment(ref owner._authentications);
            }

            return Task.FromResult(ok);
        }
    }
}

/// <summary>One request an <see cref="HttpStandIn"/> received.</summary>
public sealed record RecordedRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers, byte[] Body, DateTimeOffset At)
{
    public string Text => Encoding.UTF8.GetString(Body);

    /// <summary>The body as an URL-encoded form.</summary>
    public IReadOnlyDictionary<string, string> Form =>
        Text.Split('&', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('=', 2))
            .ToDictionary(p => Uri.UnescapeDataString(p[0].Replace('+', ' ')), p => Uri.UnescapeDataString(p.Length > 1 ? p[1].Replace('+', ' ') : ""));

    public string Header(string name) => Headers.TryGetValue(name, out var v) ? v : "";
}

/// <summary>What an <see cref="HttpStandIn"/> answers: a status and a JSON body, after an optional wait.</summary>
public sealed record StandInAnswer(int Status, string Body = "{}", bool Hang = false);

/// <summary>
/// A local HTTP server on 127.0.0.1 (Kestrel) standing in for the Twilio API or a webhook gateway: records every
/// request (raw body included) and answers with <see cref="Answer"/>. A <c>Hang</c> answer never completes
/// (until the client goes away), like a provider that stalls mid-delivery.
/// </summary>
public sealed class HttpStandIn : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _inFlight;

    private HttpStandIn(WebApplication app, Uri baseUrl)
    {
        _app = app;
        BaseUrl = baseUrl;
    }

    public Uri BaseUrl { get; }

    public ConcurrentQueue<RecordedRequest> Requests { get; } = new();

    /// <summary>Decides each answer (default 201 with a Twilio-like body).</summary>
    public Func<RecordedRequest, StandInAnswer> Answer { get; set; } = _ => new StandInAnswer(201, """{"sid":"SM00000000000000000000000000000000","status":"queued"}""");

    /// <summary>Delay before answering (to widen race windows).</summary>
    public TimeSpan Delay { get; set; } = TimeSpan.Zero;

    private int _maxInFlight;

    /// <summary>Most requests seen in flight at once.</summary>
    public int MaxInFlight => Volatile.Read(ref _maxInFlight);

    public static async Task<HttpStandIn> StartAsync(int port = 0)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        var app = builder.Build();
        HttpStandIn? self = null;
        app.Run(async context =>
        {
            await self!.HandleAsync(context);
        });
        await app.StartAsync();
        var address = app.Urls.First();
        self = new HttpStandIn(app, new Uri(address));
        return self;
    }

    public async Task<RecordedRequest> WaitForAsync(Func<RecordedRequest, bool> match, TimeSpan? timeout = null)
    {
        var until = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(30));
        while (DateTime.UtcNow < until)
        {
            var found = Requests.FirstOrDefault(match);
            if (found is not null)
            {
                return found;
            }

            await Task.Delay(25);
        }

        throw new TimeoutException("the expected request did not reach the HTTP stand-in");
    }

    public ValueTask DisposeAsync() => _app.DisposeAsync();

    private async Task HandleAsync(HttpContext context)
    {
        using var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body);
        var headers = context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);
        var request = new RecordedRequest(context.Request.Method, context.Request.Path.Value ?? "", headers, body.ToArray(), DateTimeOffset.UtcNow);
        Requests.Enqueue(request);
        var now = Interlocked.Increment(ref _inFlight);
        try
        {
            int seen;
            while ((seen = Volatile.Read(ref _maxInFlight)) < now && Interlocked.CompareExchange(ref _maxInFlight, now, seen) != seen)
            {
            }

            var answer = Answer(request);
            if (answer.Hang)
            {
                try
                {
                    await Task.Delay(Timeout.Infinite, context.RequestAborted);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }

            if (Delay > TimeSpan.Zero)
            {
                await Task.Delay(Delay);
            }

            context.Response.StatusCode = answer.Status;
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(answer.Body);
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }
}
