using System.Security.Cryptography.X509Certificates;

namespace DevRift.Client;

/// <summary>
/// How a <see cref="DevRiftClient"/> reaches the appliance: its address, the secret key, the API version, timeouts,
/// retries and, for an appliance that requires mutual TLS, the client certificate.
/// </summary>
public sealed class DevRiftClientOptions
{
    /// <summary>The versions of the appliance's HTTP API this library speaks.</summary>
    public enum ServiceVersion
    {
        /// <summary>The <c>/v1</c> API.</summary>
        V1 = 1,
    }

    /// <summary>The newest version this library speaks.</summary>
    public const ServiceVersion LatestVersion = ServiceVersion.V1;

    /// <summary>Creates options for the newest API version.</summary>
    public DevRiftClientOptions() : this(LatestVersion)
    {
    }

    /// <summary>Creates options for <paramref name="version"/>.</summary>
    /// <param name="version">The API version the client calls.</param>
    public DevRiftClientOptions(ServiceVersion version)
    {
        if (version != ServiceVersion.V1)
        {
            throw new ArgumentOutOfRangeException(nameof(version), version, "this library speaks API version V1 only");
        }

        Version = version;
    }

    /// <summary>The API version the client calls.</summary>
    public ServiceVersion Version { get; }

    /// <summary>The appliance's address, e.g. <c>https://mfa.internal.example</c> (a path, if any, is kept as a prefix).</summary>
    public Uri? BaseAddress { get; set; }

    /// <summary>The secret key, <c>sk_test_…</c> or <c>sk_live_…</c>; sent as <c>Authorization: Bearer</c> and never logged.</summary>
    public string? ApiKey { get; set; }

    /// <summary>How long one HTTP attempt may take before it is abandoned (and retried when that is safe). Default 30 seconds.</summary>
    public TimeSpan NetworkTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>When and how often failed requests are tried again.</summary>
    public DevRiftRetryOptions Retry { get; } = new();

    /// <summary>
    /// Region used to read phone numbers typed without a country code, as an ISO 3166 code such as <c>US</c> or
    /// <c>GB</c>; null accepts international numbers (<c>+…</c>) only. See <see cref="PhoneNumberFormatter"/>.
    /// </summary>
    public string? DefaultRegion { get; set; }

    /// <summary>The client certificate presented in the TLS handshake (mutual TLS); it must have its private key.</summary>
    public X509Certificate2? ClientCertificate { get; set; }

    /// <summary>
    /// Loads the client certificate from PEM files (certificate and unencrypted private key) or, when
    /// <paramref name="keyPemPath"/> is null, from a PKCS#12 file opened with <paramref name="password"/>.
    /// </summary>
    /// <param name="certificatePath">PEM certificate, or a <c>.pfx</c>/<c>.p12</c> file.</param>
    /// <param name="keyPemPath">The PEM private key of a PEM certificate; null for PKCS#12.</param>
    /// <param name="password">The PKCS#12 password, if any.</param>
    /// <returns>These options.</returns>
    public DevRiftClientOptions UseClientCertificateFile(string certificatePath, string? keyPemPath = null, string? password = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(certificatePath);
        ClientCertificate = keyPemPath is not null
            ? X509Certificate2.CreateFromPemFile(certificatePath, keyPemPath)
            : X509CertificateLoader.LoadPkcs12FromFile(certificatePath, password);
        return this;
    }

    /// <summary>Finds the client certificate with this SHA-1 or SHA-256 thumbprint in a certificate store.</summary>
    /// <param name="thumbprint">Hexadecimal thumbprint (colons and spaces are ignored).</param>
    /// <param name="location">The store's location, the current user's by default.</param>
    /// <param name="storeName">The store, <c>My</c> by default.</param>
    /// <returns>These options.</returns>
    /// <exception cref="InvalidOperationException">No certificate with a private key has that thumbprint.</exception>
    public DevRiftClientOptions UseClientCertificateFromStore(string thumbprint, StoreLocation location = StoreLocation.CurrentUser, StoreName storeName = StoreName.My)
    {
        ArgumentException.ThrowIfNullOrEmpty(thumbprint);
        var wanted = thumbprint.Replace(":", "", StringComparison.Ordinal).Replace(" ", "", StringComparison.Ordinal);
        using var store = new X509Store(storeName, location);
        store.Open(OpenFlags.ReadOnly | OpenFlags.OpenExistingOnly);
        foreach (var candidate in store.Certificates)
        {
            var sha256 = candidate.GetCertHashString(System.Security.Cryptography.HashAlgorithmName.SHA256);
            if ((string.Equals(sha256, wanted, StringComparison.OrdinalIgnoreCase) || string.Equals(candidate.Thumbprint, wanted, StringComparison.OrdinalIgnoreCase))
                && candidate.HasPrivateKey)
            {
                ClientCertificate = candidate;
                return this;
            }

            candidate.Dispose();
        }

        throw new InvalidOperationException($"no certificate with a private key and thumbprint {wanted} in {location}/{storeName}");
    }

    /// <summary>
    /// Optional check of the appliance's server certificate, for a private CA the system does not trust
    /// (return true to accept). Null uses the system's trust store.
    /// </summary>
    public Func<X509Certificate2, X509Chain, System.Net.Security.SslPolicyErrors, bool>? ServerCertificateValidation { get; set; }

    internal void Validate()
    {
        if (BaseAddress is null || !BaseAddress.IsAbsoluteUri)
        {
            throw new InvalidOperationException("DevRiftClientOptions.BaseAddress must be an absolute URI, e.g. https://mfa.internal.example");
        }

        if (string.IsNullOrWhiteSpace(ApiKey) || !(ApiKey.StartsWith("sk_test_", StringComparison.Ordinal) || ApiKey.StartsWith("sk_live_", StringComparison.Ordinal)))
        {
            throw new InvalidOperationException("DevRiftClientOptions.ApiKey must be a secret key starting with sk_test_ or sk_live_");
        }

        if (NetworkTimeout <= TimeSpan.Zero && NetworkTimeout != Timeout.InfiniteTimeSpan)
        {
            throw new InvalidOperationException("DevRiftClientOptions.NetworkTimeout must be positive");
        }

        Retry.Validate();
    }
}

/// <summary>
/// Retries: connection failures, 429 and 503 are tried again after <c>Retry-After</c> when the appliance sends one,
/// otherwise after an exponential delay with jitter.
/// </summary>
public sealed class DevRiftRetryOptions
{
    /// <summary>Attempts after the first; 0 turns retries off. Default 3.</summary>
    public int MaxRetries { get; set; } = 3;

    /// <summary>The first back-off delay, doubled per attempt. Default 0.5 seconds.</summary>
    public TimeSpan Delay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// The longest wait between attempts. A <c>Retry-After</c> longer than this is not waited for: the
    /// <see cref="DevRiftException"/> is thrown at once, with <see cref="DevRiftException.RetryAfter"/> set. Default 30 seconds.
    /// </summary>
    public TimeSpan MaxDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The clock against which a dated <c>Retry-After</c> is read. Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    internal void Validate()
    {
        if (MaxRetries < 0 || Delay < TimeSpan.Zero || MaxDelay < TimeSpan.Zero)
        {
            throw new InvalidOperationException("DevRiftRetryOptions: MaxRetries, Delay and MaxDelay must not be negative");
        }
    }
}
