using System.Security.Cryptography.X509Certificates;
using DevRift.Hsm.Api.Problems;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Errors;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Certificate;
using Microsoft.Extensions.Options;

namespace DevRift.Hsm.Api.Tls;

/// <summary>
/// The per-request half of mutual TLS, run by the bearer filters once the key (or token) is known:
/// <list type="bullet">
/// <item><c>/v1</c>: the connection's client certificate must pass the certificate handler (chain to
/// <c>Tls:ClientCa</c>, client-authentication usage, valid now) — else <c>401 client_certificate_required</c> — and
/// its SHA-256 thumbprint must be registered on the key's application — else <c>403 client_certificate_mismatch</c>.</item>
/// <item><c>/admin/v1</c>: a valid certificate whose thumbprint is in <c>Tls:OperatorCertificateThumbprints</c>
/// stands in for the operator token.</item>
/// </list>
/// Without <c>Tls:ClientCa</c> both are no-ops.
/// </summary>
public static partial class ClientCertificateChecks
{
    /// <summary>True when the request may go on; otherwise the problem response has been written.</summary>
    public static async Task<bool> AdmitAsync(HttpContext http, ApiCaller caller)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(caller);
        if (!http.RequestServices.GetRequiredService<IOptions<TlsOptions>>().Value.MutualTls)
        {
            return true;
        }

        var logger = http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(ClientCertificateChecks).FullName!);
        var certificate = await ValidatedCertificateAsync(http);
        if (certificate is null)
        {
            LogRequired(logger, caller.Application.Id, http.Connection.ClientCertificate is null ? "none presented" : "not trusted or not valid now");
            http.Response.Headers.WWWAuthenticate = "Bearer realm=\"devrift\"";
            await ProblemResponses.WriteAsync(http, new MfaException(ErrorCode.ClientCertificateRequired,
                "this deployment requires a valid client certificate issued by its client CA, presented in the TLS handshake"));
            return false;
        }

        var thumbprint = ClientCertificates.ThumbprintOf(certificate);
        var registry = http.RequestServices.GetRequiredService<ClientCertificates>();
        if (!await registry.IsRegisteredAsync(caller.Application.Id, thumbprint, http.RequestAborted))
        {
            LogMismatch(logger, thumbprint, caller.Application.Id);
            await ProblemResponses.WriteAsync(http, new MfaException(ErrorCode.ClientCertificateMismatch,
                "the client certificate is trusted but not registered on this API key's application"));
            return false;
        }

        return true;
    }

    /// <summary>The operator id (<c>cert_</c> and the thumbprint) when the request presents an operator certificate, else null.</summary>
    public static async Task<string?> OperatorAsync(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        var options = http.RequestServices.GetRequiredService<IOptions<TlsOptions>>().Value;
        if (!options.MutualTls || options.OperatorCertificateThumbprints.Count == 0)
        {
            return null;
        }

        var certificate = await ValidatedCertificateAsync(http);
        if (certificate is null)
        {
            return null;
        }

        var thumbprint = ClientCertificates.ThumbprintOf(certificate);
        return http.RequestServices.GetRequiredService<TlsMaterial>().IsOperatorThumbprint(thumbprint) ? "cert_" + thumbprint : null;
    }

    /// <summary>The connection's client certificate once the certificate handler has accepted it (once per request).</summary>
    private static async Task<X509Certificate2?> ValidatedCertificateAsync(HttpContext http)
    {
        if (!http.Request.IsHttps)
        {
            return null;
        }

        var result = await http.AuthenticateAsync(CertificateAuthenticationDefaults.AuthenticationScheme);
        return result.Succeeded ? http.Connection.ClientCertificate : null;
    }

    [LoggerMessage(EventId = 3002, Level = LogLevel.Information, Message = "Client certificate required for application {ApplicationId}: {Reason}")]
    private static partial void LogRequired(ILogger logger, string applicationId, string reason);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Information, Message = "Client certificate {Thumbprint} is not registered on application {ApplicationId}")]
    private static partial void LogMismatch(ILogger logger, string thumbprint, string applicationId);
}
