using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Dapper;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Appliance.Users;

namespace DevRift.Hsm.Appliance.Applications;

/// <summary>A client certificate registered on an application: its SHA-256 thumbprint, and its subject and expiry when known.</summary>
public sealed record ClientCertificate(string Id, string ApplicationId, string Thumbprint, string? Subject, DateTimeOffset? NotAfter, DateTimeOffset CreatedAt);

/// <summary>
/// The client certificates each application accepts under mutual TLS, by SHA-256 thumbprint. A certificate may be
/// registered from its PEM (subject and expiry are then kept for the operator) or from its thumbprint alone. Trust
/// in the certificate (its chain to the deployment's client CA) is checked by the HTTP layer; this store only says
/// which of the trusted certificates speak for which application. Removal takes effect on the next request.
/// </summary>
public sealed class ClientCertificates(Database db, ApplicationStore applications, TimeProvider time)
{
    /// <summary>Hex characters of a SHA-256 thumbprint.</summary>
    public const int ThumbprintLength = 64;

    public async Task<ClientCertificate> AddAsync(string applicationId, string? pem, string? thumbprint, CancellationToken ct = default)
    {
        var (print, subject, notAfter) = (pem, thumbprint) switch
        {
            (not null, not null) => throw new MfaException(ErrorCode.InvalidRequest, "give either pem or thumbprint, not both", "thumbprint"),
            (not null, null) => FromPem(pem),
            (null, not null) => (ParseThumbprint(thumbprint), null, null),
            _ => throw new MfaException(ErrorCode.InvalidRequest, "pem (the certificate, PEM-encoded) or thumbprint (its SHA-256, 64 hex characters) is required", "pem"),
        };

        await applications.GetAsync(applicationId, ct);
        // Stored to the millisecond: the same instant whether read back or returned now.
        var now = DateTimeOffset.FromUnixTimeMilliseconds(time.GetUtcNow().ToUnixTimeMilliseconds());
        var registered = new ClientCertificate(Ids.New("cc_"), applicationId, print, subject, notAfter, now);
        var inserted = await db.WithConnectionAsync(c => c.ExecuteAsync(
            """
            INSERT INTO client_certificates (id, application_id, thumbprint, subject, not_after, created_at)
            VALUES (@Id, @ApplicationId, @Thumbprint, @Subject, @NotAfter, @CreatedAt)
            ON CONFLICT (application_id, thumbprint) DO NOTHING
            """,
            new
            {
                registered.Id, registered.ApplicationId, registered.Thumbprint, registered.Subject,
                NotAfter = registered.NotAfter?.ToUnixTimeMilliseconds(), CreatedAt = registered.CreatedAt.ToUnixTimeMilliseconds(),
            }), ct);
        if (inserted == 0)
        {
            var existing = (await ListAsync(applicationId, ct)).First(c => c.Thumbprint == print);
            throw new MfaException(ErrorCode.InvalidRequest,
                $"this certificate is already registered on application '{applicationId}' as {existing.Id}", pem is null ? "thumbprint" : "pem");
        }

        return registered;
    }

    public async Task<IReadOnlyList<ClientCertificate>> ListAsync(string applicationId, CancellationToken ct = default)
    {
        await applications.GetAsync(applicationId, ct);
        var rows = await db.WithConnectionAsync(c => c.QueryAsync<Row>(
            """
            SELECT id, application_id AS ApplicationId, thumbprint, subject, not_after AS NotAfter, created_at AS CreatedAt
            FROM client_certificates WHERE application_id = @applicationId ORDER BY created_at, id
            """,
            new { applicationId }), ct);
        return rows.Select(r => r.ToCertificate()).ToList();
    }

    /// <summary>Removes a registration and returns what it was (for the audit record: id and thumbprint).</summary>
    public async Task<ClientCertificate> RemoveAsync(string applicationId, string certificateId, CancellationToken ct = default)
    {
        var existing = (await ListAsync(applicationId, ct)).FirstOrDefault(c => c.Id == certificateId);
        var removed = existing is null ? 0 : await db.WithConnectionAsync(c => c.ExecuteAsync(
            "DELETE FROM client_certificates WHERE id = @certificateId AND application_id = @applicationId",
            new { certificateId, applicationId }), ct);
        return removed == 0 || existing is null
            ? throw new MfaException(ErrorCode.NotFound, $"no client certificate '{certificateId}' on application '{applicationId}'", "certificate_id")
            : existing;
    }

    /// <summary>True when <paramref name="thumbprint"/> (as <see cref="ThumbprintOf"/> gives it) is registered on the application.</summary>
    public async Task<bool> IsRegisteredAsync(string applicationId, string thumbprint, CancellationToken ct = default) =>
        await db.WithConnectionAsync(c => c.ExecuteScalarAsync<long>(
            "SELECT COUNT(*) FROM client_certificates WHERE application_id = @applicationId AND thumbprint = @thumbprint",
            new { applicationId, thumbprint }), ct) > 0;

    /// <summary>The SHA-256 thumbprint of the whole DER certificate, 64 upper-case hex characters.</summary>
    public static string ThumbprintOf(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return certificate.GetCertHashString(HashAlgorithmName.SHA256);
    }

    /// <summary>
    /// A SHA-256 thumbprint as an operator may write it (any case; colons or spaces between bytes as
    /// <c>openssl x509 -fingerprint -sha256</c> prints them), normalised; null when it is not one.
    /// </summary>
    public static string? NormaliseThumbprint(string? value)
    {
        var hex = HexOf(value);
        return hex?.Length == ThumbprintLength ? hex : null;
    }

    private static string? HexOf(string? value)
    {
        if (value is null || value.Length > 3 * ThumbprintLength)
        {
            return null;
        }

        var hex = value.Trim().Replace(":", "", StringComparison.Ordinal).Replace(" ", "", StringComparison.Ordinal);
        return hex.Length > 0 && hex.All(char.IsAsciiHexDigit) ? hex.ToUpperInvariant() : null;
    }

    private static string ParseThumbprint(string value) =>
        NormaliseThumbprint(value) ?? throw new MfaException(ErrorCode.InvalidRequest, HexOf(value)?.Length == 40
            ? "thumbprint looks like a SHA-1 thumbprint (40 hex characters); give the SHA-256 one (64 hex characters, from 'openssl x509 -noout -fingerprint -sha256')"
            : "thumbprint must be the certificate's SHA-256 thumbprint: 64 hex characters (colons between bytes allowed)",
            "thumbprint");

    private static (string Thumbprint, string? Subject, DateTimeOffset? NotAfter) FromPem(string pem)
    {
        if (pem.Contains("PRIVATE KEY", StringComparison.Ordinal))
        {
            // Not echoed: the caller pasted a secret by mistake.
            throw new MfaException(ErrorCode.InvalidRequest, "pem must hold only the certificate, never its private key", "pem");
        }

        var begin = CountOf(pem, "-----BEGIN CERTIFICATE-----");
        if (begin != 1)
        {
            throw new MfaException(ErrorCode.InvalidRequest, begin == 0
                ? "pem must be one PEM certificate (-----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----)"
                : "pem must hold exactly one certificate (the client's own, without its chain)", "pem");
        }

        try
        {
            using var certificate = X509Certificate2.CreateFromPem(pem);
            CheckClientUsage(certificate);
            return (ThumbprintOf(certificate), certificate.Subject, new DateTimeOffset(certificate.NotAfter.ToUniversalTime(), TimeSpan.Zero));
        }
        catch (CryptographicException)
        {
            throw new MfaException(ErrorCode.InvalidRequest, "pem is not a readable X.509 certificate", "pem");
        }
    }

    /// <summary>The TLS client-authentication extended key usage (RFC 5280 §4.2.1.12).</summary>
    public const string ClientAuthenticationOid = "1.3.6.1.5.5.7.3.2";

    /// <summary>
    /// A client certificate is an end entity made for client authentication: a CA certificate (basic constraints
    /// CA:TRUE) is refused, and so is one whose extended key usage is missing or lacks <c>clientAuth</c>.
    /// </summary>
    public static void CheckClientUsage(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        if (certificate.Extensions.OfType<X509BasicConstraintsExtension>().Any(b => b.CertificateAuthority))
        {
            throw new MfaException(ErrorCode.InvalidRequest, "pem is a CA certificate (basic constraints CA:TRUE); register the client's own certificate", "pem");
        }

        var usages = certificate.Extensions.OfType<X509EnhancedKeyUsageExtension>().SelectMany(e => e.EnhancedKeyUsages.Cast<Oid>()).Select(o => o.Value).ToList();
        if (!usages.Contains(ClientAuthenticationOid, StringComparer.Ordinal))
        {
            throw new MfaException(ErrorCode.InvalidRequest,
                "pem has no clientAuth extended key usage (1.3.6.1.5.5.7.3.2); a client certificate must be issued for TLS client authentication", "pem");
        }
    }

    private static int CountOf(string text, string marker)
    {
        var count = 0;
        for (var at = text.IndexOf(marker, StringComparison.Ordinal); at >= 0; at = text.IndexOf(marker, at + marker.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }

    private sealed class Row
    {
        public string Id { get; init; } = "";

        public string ApplicationId { get; init; } = "";

        public string Thumbprint { get; init; } = "";

        public string? Subject { get; init; }

        public long? NotAfter { get; init; }

        public long CreatedAt { get; init; }

        public ClientCertificate ToCertificate() => new(Id, ApplicationId, Thumbprint, Subject,
            NotAfter is { } n ? DateTimeOffset.FromUnixTimeMilliseconds(n) : null,
            DateTimeOffset.FromUnixTimeMilliseconds(CreatedAt));
    }
}
