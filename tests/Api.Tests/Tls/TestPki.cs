using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace DevRift.Hsm.Api.Tests.Tls;

/// <summary>
/// A throw-away PKI made with <see cref="CertificateRequest"/>: CAs, a server certificate for 127.0.0.1 and
/// localhost, client certificates, their PEM files, and HTTP handlers that present a client certificate and trust
/// the server only through the test CA.
/// </summary>
public static class TestPki
{
    private static readonly Oid s_serverAuth = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid s_clientAuth = new("1.3.6.1.5.5.7.3.2");

    public static X509Certificate2 CreateCa(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}, O=DevRift Tests", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: true, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        var now = DateTimeOffset.UtcNow;
        return request.CreateSelfSigned(now.AddDays(-365), now.AddYears(5));
    }

    /// <summary>A server certificate for <c>localhost</c> and <c>127.0.0.1</c>.</summary>
    public static X509Certificate2 IssueServer(X509Certificate2 ca)
    {
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        var now = DateTimeOffset.UtcNow;
        return Issue(ca, "localhost", s_serverAuth, now.AddDays(-1), now.AddDays(30), names.Build());
    }

    /// <summary>A client certificate, valid from yesterday for 30 days unless told otherwise.</summary>
    public static X509Certificate2 IssueClient(X509Certificate2 ca, string name, DateTimeOffset? notBefore = null, DateTimeOffset? notAfter = null)
    {
        var now = DateTimeOffset.UtcNow;
        return Issue(ca, name, s_clientAuth, notBefore ?? now.AddDays(-1), notAfter ?? now.AddDays(30), null);
    }

    /// <summary>A self-signed client certificate (its own issuer, no CA behind it).</summary>
    public static X509Certificate2 SelfSignedClient(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([s_clientAuth], critical: false));
        var now = DateTimeOffset.UtcNow;
        return request.CreateSelfSigned(now.AddDays(-1), now.AddDays(30));
    }

    public static string Thumbprint(X509Certificate2 certificate) => certificate.GetCertHashString(HashAlgorithmName.SHA256);

    /// <summary>The certificate as a PEM block ending in a newline, as files made by openssl do (so that they concatenate).</summary>
    public static string Pem(X509Certificate2 certificate) => certificate.ExportCertificatePem() + "\n";

    public static string KeyPem(X509Certificate2 certificate) =>
        (certificate.GetECDsaPrivateKey() ?? throw new InvalidOperationException("no private key")).ExportPkcs8PrivateKeyPem() + "\n";

    /// <summary>
    /// A handler that trusts the server only if its certificate chains to <paramref name="serverCa"/> and names the
    /// host, and presents <paramref name="certificate"/> (null: none) whatever CA names the server sends, so that
    /// every refusal is the server's decision.
    /// </summary>
    public static SocketsHttpHandler Handler(X509Certificate2 serverCa, X509Certificate2? certificate)
    {
        var ssl = new SslClientAuthenticationOptions
        {
            RemoteCertificateValidationCallback = (_, server, _, errors) => IsTrustedServer(serverCa, server as X509Certificate2, errors),
        };
        if (certificate is not null)
        {
            ssl.ClientCertificates = [certificate];
            ssl.LocalCertificateSelectionCallback = (_, _, _, _, _) => certificate;
        }

        return new SocketsHttpHandler { SslOptions = ssl, PooledConnectionLifetime = TimeSpan.FromMinutes(1) };
    }

    private static bool IsTrustedServer(X509Certificate2 ca, X509Certificate2? server, SslPolicyErrors errors)
    {
        // A name mismatch or a missing certificate is never acceptable; chain errors are re-judged against the test CA.
        if (server is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ApplicationPolicy.Add(s_serverAuth);
        return chain.Build(server);
    }

    private static X509Certificate2 Issue(X509Certificate2 ca, string name, Oid usage, DateTimeOffset notBefore, DateTimeOffset notAfter, X509Extension? names)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}, O=DevRift Tests", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: false, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([usage], critical: false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        if (names is not null)
        {
            request.CertificateExtensions.Add(names);
        }

        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
        using var certificate = request.Create(ca, notBefore, notAfter, serial);
        return certificate.CopyWithPrivateKey(key);
    }
}
