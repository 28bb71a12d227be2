using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using DevRift.Hsm.Appliance.Applications;
using Microsoft.Extensions.Options;

namespace DevRift.Hsm.Api.Tls;

/// <summary>
/// The certificates of <see cref="TlsOptions"/>, read once at start: the server certificate with its key and chain,
/// the client CAs, the operator thumbprints, and the one client-certificate check that the TLS handshake uses.
/// </summary>
public sealed class TlsMaterial
{
    private static readonly Oid s_clientAuth = new("1.3.6.1.5.5.7.3.2");
    private static readonly Oid s_serverAuth = new("1.3.6.1.5.5.7.3.1");

    private readonly HashSet<string> _operatorThumbprints;

    private TlsMaterial(TlsOptions options, X509Certificate2? server, X509Certificate2Collection serverChain, X509Certificate2Collection clientCa)
    {
        Options = options;
        ServerCertificate = server;
        ServerChain = serverChain;
        ClientCa = clientCa;
        _operatorThumbprints = options.OperatorCertificateThumbprints
            .Select(ClientCertificates.NormaliseThumbprint).OfType<string>().ToHashSet(StringComparer.Ordinal);
        if (server is not null)
        {
            // The client CAs are named in the handshake (CertificateRequest), so that a client holding several
            // certificates offers the one that this server can trust.
            ServerContext = SslStreamCertificateContext.Create(server, serverChain, offline: true,
                clientCa.Count > 0 ? SslCertificateTrust.CreateForX509Collection(clientCa, sendTrustInHandshake: true) : null);
        }
    }

    public TlsOptions Options { get; }

    public X509Certificate2? ServerCertificate { get; }

    public X509Certificate2Collection ServerChain { get; }

    public SslStreamCertificateContext? ServerContext { get; }

    /// <summary>The only trust anchors of client certificates.</summary>
    public X509Certificate2Collection ClientCa { get; }

    public bool IsOperatorThumbprint(string thumbprint) => _operatorThumbprints.Contains(thumbprint);

    public static TlsMaterial Create(IOptions<TlsOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        return TryLoad(options.Value, failures) ?? throw new OptionsValidationException(TlsOptions.Section, typeof(TlsOptions), failures);
    }

    /// <summary>
    /// The chain policy for client certificates at <paramref name="now"/>: custom root trust in <see cref="ClientCa"/>
    /// only, the client-authentication usage, the configured revocation mode, no downloads of missing issuers.
    /// </summary>
    public X509ChainPolicy ClientChainPolicy(DateTimeOffset now)
    {
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = Options.RevocationMode,
            RevocationFlag = X509RevocationFlag.ExcludeRoot,
            VerificationTime = now.UtcDateTime,
            DisableCertificateDownloads = true,
        };
        policy.CustomTrustStore.AddRange(ClientCa);
        policy.ApplicationPolicy.Add(s_clientAuth);
        return policy;
    }

    /// <summary>
    /// Whether <paramref name="certificate"/> is a client certificate issued (directly or through an intermediate
    /// in <see cref="ClientCa"/>) by a configured CA and valid at <paramref name="now"/>. A self-signed certificate
    /// never is, even one that sits in the CA file.
    /// </summary>
    public bool IsTrustedClient(X509Certificate2 certificate, DateTimeOffset now, out string reason)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        if (certificate.SubjectName.RawData.AsSpan().SequenceEqual(certificate.IssuerName.RawData))
        {
            reason = "self-signed";
            return false;
        }

        using var chain = new X509Chain { ChainPolicy = ClientChainPolicy(now) };
        if (chain.Build(certificate))
        {
            reason = "";
            return true;
        }

        reason = string.Join(", ", chain.ChainStatus.Select(s => s.Status.ToString()).Distinct());
        return false;
    }

    /// <summary>Reads and checks every file; adds one failure per problem and returns null when there is any.</summary>
    internal static TlsMaterial? TryLoad(TlsOptions options, List<string> failures)
    {
        if (options.BindError is { } bindError)
        {
            failures.Add(bindError);
            return null;
        }

        if (!Enum.IsDefined(options.RevocationMode))
        {
            failures.Add("Tls:RevocationMode must be NoCheck, Offline or Online");
        }

        if (options.Enabled && (string.IsNullOrWhiteSpace(options.Certificate) || string.IsNullOrWhiteSpace(options.Key)))
        {
            failures.Add("Tls:Certificate and Tls:Key go together: set both (PEM files) or neither");
        }

        if (options.MutualTls && !options.Enabled)
        {
            failures.Add("Tls:ClientCa needs HTTPS: set Tls:Certificate and Tls:Key too");
        }

        if (options.RequireClientCertificate && !options.MutualTls)
        {
            failures.Add("Tls:RequireClientCertificate needs Tls:ClientCa (the CA that issues client certificates)");
        }

        if (options.OperatorCertificateThumbprints.Count > 0 && !options.MutualTls)
        {
            failures.Add("Tls:OperatorCertificateThumbprints needs Tls:ClientCa (operator certificates must chain to it)");
        }

        for (var i = 0; i < options.OperatorCertificateThumbprints.Count; i++)
        {
            if (ClientCertificates.NormaliseThumbprint(options.OperatorCertificateThumbprints[i]) is null)
            {
                failures.Add($"Tls:OperatorCertificateThumbprints:{i} is not a SHA-256 thumbprint (64 hex characters)");
            }
        }

        X509Certificate2? server = null;
        var serverChain = new X509Certificate2Collection();
        var clientCa = new X509Certificate2Collection();
        if (options.Enabled && !string.IsNullOrWhiteSpace(options.Certificate) && !string.IsNullOrWhiteSpace(options.Key))
        {
            server = LoadServerCertificate(options.Certificate, options.Key, serverChain, failures);
        }

        if (options.MutualTls)
        {
            LoadClientCa(options.ClientCa!, clientCa, failures);
        }

        if (failures.Count > 0)
        {
            server?.Dispose();
            return null;
        }

        return new TlsMaterial(options, server, serverChain, clientCa);
    }

    private static X509Certificate2? LoadServerCertificate(string certificatePath, string keyPath, X509Certificate2Collection chain, List<string> failures)
    {
        var certificateText = ReadPem("Tls:Certificate", certificatePath, failures);
        var keyText = ReadPem("Tls:Key", keyPath, failures);
        if (certificateText is null || keyText is null)
        {
            return null;
        }

        var all = new X509Certificate2Collection();
        try
        {
            all.ImportFromPem(certificateText);
        }
        catch (CryptographicException)
        {
            failures.Add($"Tls:Certificate '{certificatePath}' holds a PEM certificate that cannot be read");
            return null;
        }

        if (all.Count == 0)
        {
            failures.Add(NoCertificate("Tls:Certificate", certificatePath, certificateText));
            return null;
        }

        if (!keyText.Contains("PRIVATE KEY-----", StringComparison.Ordinal))
        {
            failures.Add($"Tls:Key '{keyPath}' holds no PEM private key (-----BEGIN PRIVATE KEY-----, or an RSA or EC key)");
            return null;
        }

        X509Certificate2 server;
        try
        {
            server = X509Certificate2.CreateFromPem(certificateText, keyText);
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            failures.Add(keyText.Contains("ENCRYPTED PRIVATE KEY", StringComparison.Ordinal)
                ? $"Tls:Key '{keyPath}' is encrypted; give the key unencrypted (e.g. 'openssl pkey -in KEY -out KEY.plain') and protect the file"
                : $"Tls:Key '{keyPath}' does not match the first certificate of Tls:Certificate '{certificatePath}'");
            return null;
        }

        var usages = server.Extensions.OfType<X509EnhancedKeyUsageExtension>().FirstOrDefault();
        if (usages is not null && !usages.EnhancedKeyUsages.Cast<Oid>().Any(o => o.Value == s_serverAuth.Value))
        {
            failures.Add($"Tls:Certificate '{certificatePath}' is not valid for TLS servers (its extended key usage lacks serverAuth)");
            server.Dispose();
            return null;
        }

        for (var i = 1; i < all.Count; i++)
        {
            chain.Add(all[i]);
        }

        return server;
    }

    private static void LoadClientCa(string path, X509Certificate2Collection clientCa, List<string> failures)
    {
        var text = ReadPem("Tls:ClientCa", path, failures);
        if (text is null)
        {
            return;
        }

        try
        {
            clientCa.ImportFromPem(text);
        }
        catch (CryptographicException)
        {
            failures.Add($"Tls:ClientCa '{path}' holds a PEM certificate that cannot be read");
            return;
        }

        if (clientCa.Count == 0)
        {
            failures.Add(NoCertificate("Tls:ClientCa", path, text));
        }
    }

    // The PEM reader skips blocks it cannot decode: say which of the two it was.
    private static string NoCertificate(string key, string path, string text) =>
        text.Contains("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal)
            ? $"{key} '{path}' holds a PEM certificate that cannot be read"
            : $"{key} '{path}' holds no PEM certificate (-----BEGIN CERTIFICATE-----)";

    private static string? ReadPem(string key, string path, List<string> failures)
    {
        var full = Path.GetFullPath(path);
        try
        {
            var text = File.ReadAllText(full);
            if (!text.Contains("-----BEGIN ", StringComparison.Ordinal))
            {
                failures.Add($"{key} '{full}' is not a PEM file");
                return null;
            }

            return text;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            failures.Add($"{key} '{full}' cannot be read ({(e is FileNotFoundException or DirectoryNotFoundException ? "no such file" : e is UnauthorizedAccessException ? "permission denied" : e.GetType().Name)})");
            return null;
        }
    }
}

/// <summary>Checks <see cref="TlsOptions"/> at start by loading every file, so that a bad one stops start-up with one line.</summary>
internal sealed class TlsOptionsValidator : IValidateOptions<TlsOptions>
{
    public ValidateOptionsResult Validate(string? name, TlsOptions options)
    {
        var failures = new List<string>();
        TlsMaterial.TryLoad(options, failures)?.ServerCertificate?.Dispose();
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
