using System.Net;
using System.Net.Sockets;
using DevRift.Hsm.Appliance.Errors;

namespace DevRift.Hsm.Appliance.Applications;

/// <summary>
/// The end user's IP address as the integrator asserts it (<c>client_ip</c>): nothing checks it, it is context for
/// throttling failed checks per source and for the audit log. <see cref="Address"/> is the normalised address
/// (an IPv4-mapped IPv6 address becomes IPv4); <see cref="Network"/> is what throttling counts by: the IPv4 address
/// itself, or the IPv6 /64 it belongs to (one end user's network usually hands out a whole /64).
/// </summary>
public sealed record ClientIp(string Address, string Network)
{
    /// <summary>The field's name in requests and problems.</summary>
    public const string Field = "client_ip";

    /// <summary>Longest accepted text (a full IPv6 address with an embedded IPv4 tail is 45 characters).</summary>
    public const int MaxLength = 45;

    /// <summary>Null when the caller gave none; a 400 naming <c>client_ip</c> for anything but one IPv4 or IPv6 address.</summary>
    public static ClientIp? Parse(string? value)
    {
        if (value is null)
        {
            return null;
        }

        var v6 = value.Contains(':', StringComparison.Ordinal);
        if (value.Length is 0 or > MaxLength || !IsAddressText(value, v6) || !IPAddress.TryParse(value, out var ip)
            || ip.AddressFamily != (v6 ? AddressFamily.InterNetworkV6 : AddressFamily.InterNetwork))
        {
            throw new MfaException(ErrorCode.InvalidRequest,
                "client_ip must be the end user's IPv4 or IPv6 address, such as 203.0.113.7 or 2001:db8::1 (no port, brackets or zone)", Field);
        }

        if (ip.IsIPv4MappedToIPv6)
        {
            ip = ip.MapToIPv4();
        }

        if (ip.AddressFamily == AddressFamily.InterNetwork)
        {
            return new ClientIp(ip.ToString(), ip.ToString());
        }

        var bytes = ip.GetAddressBytes();
        Array.Clear(bytes, 8, 8);
        return new ClientIp(ip.ToString(), new IPAddress(bytes) + "/64");
    }

    /// <summary>
    /// IPAddress.TryParse also takes "1", "1.2.3", "0x7f.1", brackets, ports and zones; only a dotted quad of decimal
    /// octets or an IPv6 text of hex groups (possibly ending in a dotted quad) is an address here.
    /// </summary>
    private static bool IsAddressText(string value, bool v6)
    {
        if (v6)
        {
            return value.All(c => char.IsAsciiHexDigit(c) || c is ':' or '.');
        }

        var octets = value.Split('.');
        return octets.Length == 4 && octets.All(o => o.Length is > 0 and <= 3 && o.All(char.IsAsciiDigit) && int.Parse(o, System.Globalization.CultureInfo.InvariantCulture) <= 255);
    }
}
