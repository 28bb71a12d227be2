using System.Net.Sockets;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using Microsoft.Extensions.Options;
using MimeKit;

namespace DevRift.Hsm.Appliance.Outbox;

/// <summary>
/// EMAIL over SMTP with MailKit: one connection per message (connect, optional STARTTLS or implicit TLS,
/// optional authentication, send, quit). The Message-Id is derived from the outbox id, so a message sent twice
/// after a crash between "accepted" and "recorded" is recognisably the same one.
/// </summary>
public sealed class SmtpProvider(IOptions<SmtpOptions> options) : IDeliveryProvider
{
    public const string ProviderName = "smtp";

    public string Name => ProviderName;

    public bool IsConfigured => options.Value.IsConfigured;

    public bool Supports(string channel) => channel == "EMAIL";

    public async Task DeliverAsync(OutgoingMessage message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        var o = options.Value;
        using var mime = Build(o, message);
        using var client = new SmtpClient();
        try
        {
            await client.ConnectAsync(o.Host!, o.EffectivePort, SocketOptions(o.Security), cancellationToken);
            if (!string.IsNullOrEmpty(o.Username))
            {
                await client.AuthenticateAsync(o.Username, o.Password ?? "", cancellationToken);
            }

            await client.SendAsync(mime, cancellationToken);
            await client.DisconnectAsync(quit: true, CancellationToken.None);
        }
        catch (SmtpCommandException e)
        {
            // Reasons carry the status code only: server texts can quote the address or the message.
            var status = (int)e.StatusCode;
            throw e.ErrorCode switch
            {
                SmtpErrorCode.RecipientNotAccepted when status >= 500 =>
                    new DeliveryException($"the mail server rejected the recipient ({status})", permanent: true, e),
                SmtpErrorCode.MessageNotAccepted when status >= 500 =>
                    new DeliveryException($"the mail server refused the message ({status})", permanent: true, e),
                SmtpErrorCode.SenderNotAccepted =>
                    new DeliveryException($"the mail server refused the sender address ({status}); check Delivery:Smtp:From", permanent: false, e),
                _ => new DeliveryException($"the mail server answered {status}", permanent: false, e),
            };
        }
        catch (AuthenticationException e)
        {
            throw new DeliveryException("the mail server refused the credentials (Delivery:Smtp:Username/Password)", permanent: false, e);
        }
        catch (SslHandshakeException e)
        {
            throw new DeliveryException("the TLS handshake with the mail server failed", permanent: false, e);
        }
        catch (NotSupportedException e)
        {
            throw new DeliveryException("the mail server does not offer what Delivery:Smtp:Security asks (STARTTLS or authentication)", permanent: false, e);
        }
        catch (Exception e) when (e is SocketException or IOException or SmtpProtocolException or ServiceNotConnectedException or ServiceNotAuthenticatedException)
        {
            throw new DeliveryException($"the mail server could not be reached ({e.GetType().Name})", permanent: false, e);
        }
    }

    private static MimeMessage Build(SmtpOptions o, OutgoingMessage message)
    {
        var from = MailboxAddress.Parse(o.From!);
        var domain = from.Address[(from.Address.IndexOf('@', StringComparison.Ordinal) + 1)..];
        var mime = new MimeMessage
        {
            Subject = message.Subject ?? "",
            Date = message.CreatedAt,
            MessageId = $"{message.Id}@{domain}",
            Body = new TextPart("plain") { Text = message.Body },
        };
        mime.From.Add(from);
        mime.To.Add(MailboxAddress.Parse(message.To));
        mime.Headers.Add("Auto-Submitted", "auto-generated");
        mime.Headers.Add(HeaderId.ContentLanguage, message.Locale);
        return mime;
    }

    private static SecureSocketOptions SocketOptions(string security) => security.ToUpperInvariant() switch
    {
        "NONE" => SecureSocketOptions.None,
        "SSLONCONNECT" => SecureSocketOptions.SslOnConnect,
        _ => SecureSocketOptions.StartTls,
    };
}
