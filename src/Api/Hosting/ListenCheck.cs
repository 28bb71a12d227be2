using System.Net;
using System.Net.Sockets;

namespace DevRift.Hsm.Api.Hosting;

/// <summary>A listening address that cannot be bound; its message is the one line start-up prints.</summary>
public sealed class ListenException(string message, Exception inner) : Exception(message, inner);

/// <summary>
/// Binds each configured address for a moment before the host starts, so that a port in use or one the process may
/// not open is one line instead of Kestrel's logged stack trace (and no hosted service starts only to be torn down).
/// Kestrel binds again right after; the moment between is the only window in which another process can take the port,
/// and then Kestrel's own failure is still turned into one line by the entry point.
/// </summary>
public static class ListenCheck
{
    public static void Check(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var urls = app.Configuration["urls"] is { Length: > 0 } configured ? configured : ApplianceHost.DefaultUrls;
        foreach (var url in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            BindingAddress address;
            try
            {
                address = BindingAddress.Parse(url);
            }
            catch (FormatException)
            {
                throw new ListenException($"invalid configuration: urls: '{url}' is not a URL such as http://127.0.0.1:8080", new FormatException(url));
            }

            if (address.Port == 0 || address.IsUnixPipe)
            {
                continue;
            }

            foreach (var ip in Addresses(address.Host))
            {
                Probe(url, ip, address.Port);
            }
        }
    }

    private static IEnumerable<IPAddress> Addresses(string host) => host switch
    {
        "localhost" => [IPAddress.Loopback],
        "*" or "+" or "0.0.0.0" => [IPAddress.Any],
        _ when IPAddress.TryParse(host.Trim('[', ']'), out var ip) => [ip],
        _ => [IPAddress.Any],
    };

    private static void Probe(string url, IPAddress ip, int port)
    {
        using var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(new IPEndPoint(ip, port));
        }
        catch (SocketException e)
        {
            var reason = e.SocketErrorCode switch
            {
                SocketError.AddressAlreadyInUse => "the port is already in use by another process",
                SocketError.AccessDenied => "permission denied (ports below 1024 need privileges)",
                SocketError.AddressNotAvailable => "this machine has no such address",
                _ => e.SocketErrorCode.ToString(),
            };
            throw new ListenException($"cannot listen on {url}: {reason}", e);
        }
    }
}
