using System.Security.Cryptography.X509Certificates;

namespace DevRift.Hsm.Api.Tls;

/// <summary>
/// HTTPS and mutual TLS (section <c>Tls</c>). Off by default: the appliance then serves plain HTTP on loopback.
/// <list type="bullet">
/// <item><see cref="Certificate"/> and <see cref="Key"/> turn every configured URL into HTTPS.</item>
/// <item><see cref="ClientCa"/> turns on mutual TLS: a <c>/v1</c> request must then present a client certificate
/// that chains to one of these CAs (and to no other: the system's trust store is never consulted) and whose SHA-256
/// thumbprint is registered on the API key's application.</item>
/// </list>
/// Relative paths are resolved against the working directory. Every file is read and checked at start.
/// </summary>
public sealed class TlsOptions
{
    public const string Section = "Tls";

    /// <summary>Set when a value did not convert (the key and the expected type, never the value).</summary>
    internal string? BindError { get; set; }

    /// <summary>PEM file of the server certificate, optionally followed by its intermediate CA certificates.</summary>
    public string? Certificate { get; set; }

    /// <summary>PEM file of the server certificate's private key (PKCS#8, PKCS#1 or SEC1, unencrypted).</summary>
    public string? Key { get; set; }

    /// <summary>
    /// PEM file of the CA certificates that issue client certificates (one or several: roots and intermediates).
    /// They are the only trust anchors for client certificates.
    /// </summary>
    public string? ClientCa { get; set; }

    /// <summary>
    /// True: the TLS handshake itself refuses a client without a valid certificate from <see cref="ClientCa"/>
    /// (so health probes must present one too). False (default): the handshake asks for a certificate but lets
    /// the connection through, and a <c>/v1</c> request without a valid one gets <c>401 client_certificate_required</c>.
    /// </summary>
    public bool RequireClientCertificate { get; set; }

    /// <summary>
    /// Revocation checking of client certificates: <c>NoCheck</c> (default; a private CA usually publishes no CRL,
    /// and registration on the application is the revocation that counts), <c>Offline</c> (cached CRLs only) or
    /// <c>Online</c> (fetches the CRLs and OCSP answers the certificates name).
    /// </summary>
    public X509RevocationMode RevocationMode { get; set; } = X509RevocationMode.NoCheck;

    /// <summary>
    /// SHA-256 thumbprints of operator certificates (<c>Tls:OperatorCertificateThumbprints:0</c>, <c>:1</c>, …). A
    /// request to <c>/admin/v1</c> that presents one of them (valid and chained to <see cref="ClientCa"/>) needs no
    /// operator token.
    /// </summary>
    public List<string> OperatorCertificateThumbprints { get; set; } = [];

    /// <summary>HTTPS is on.</summary>
    public bool Enabled => !string.IsNullOrWhiteSpace(Certificate) || !string.IsNullOrWhiteSpace(Key);

    /// <summary>Client certificates are asked for and checked.</summary>
    public bool MutualTls => !string.IsNullOrWhiteSpace(ClientCa);
}
