using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Authentication.Certificate;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Options;

namespace DevRift.Hsm.Api.Tls;

/// <summary>Wires <see cref="TlsOptions"/> into the host: Kestrel's HTTPS endpoints, the client-certificate handshake and the certificate authentication handler.</summary>
public static partial class TlsHosting
{
    /// <summary>
    /// Call after the URLs are set. With <c>Tls:Certificate</c>, every configured <c>http://</c> URL becomes
    /// <c>https://</c> (no plain-text listener is left beside it); with <c>Tls:ClientCa</c>, clients are asked for a
    /// certificate. Without a <c>Tls</c> section nothing changes.
    /// </summary>
    public static WebApplicationBuilder AddTls(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.AddOptions<TlsOptions>().Configure<IConfiguration>(BindSafely).ValidateOnStart();
        services.AddSingleton<IValidateOptions<TlsOptions>, TlsOptionsValidator>();
        services.AddSingleton(sp => TlsMaterial.Create(sp.GetRequiredService<IOptions<TlsOptions>>()));

        var section = builder.Configuration.GetSection(TlsOptions.Section);
        if (!string.IsNullOrWhiteSpace(section["ClientCa"]))
        {
            AddCertificateAuthentication(services);
        }

        if (string.IsNullOrWhiteSpace(section["Certificate"]) && string.IsNullOrWhiteSpace(section["Key"]))
        {
            return builder;
        }

        if (builder.Configuration["urls"] is { Length: > 0 } urls)
        {
            builder.WebHost.UseUrls(urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(u => u.StartsWith("http://", StringComparison.OrdinalIgnoreCase) ? "https://" + u["http://".Length..] : u)
                .ToArray());
        }

        // The files are read when the endpoints are bound (serve), not when the host is built (operator commands).
        services.AddOptions<KestrelServerOptions>().Configure<IServiceProvider>((kestrel, sp) =>
            kestrel.ConfigureHttpsDefaults(https => ConfigureHttps(https, sp.GetRequiredService<TlsMaterial>(), sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<ILoggerFactory>().CreateLogger("DevRift.Hsm.Api.Tls"))));
        return builder;
    }

    private static void ConfigureHttps(HttpsConnectionAdapterOptions https, TlsMaterial material, TimeProvider time, ILogger logger)
    {
        var options = material.Options;
        https.ServerCertificate = material.ServerCertificate;
        https.ServerCertificateChain = material.ServerChain;
        https.SslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13;
        https.CheckCertificateRevocation = options.RevocationMode != X509RevocationMode.NoCheck;
        if (options.MutualTls)
        {
            https.ClientCertificateMode = options.RequireClientCertificate ? ClientCertificateMode.RequireCertificate : ClientCertificateMode.AllowCertificate;

            // Required: the handshake fails for a certificate that does not chain to Tls:ClientCa or is not valid now.
            // Allowed: any certificate passes the handshake, and the request is judged (401) by the certificate handler.
            https.ClientCertificateValidation = (certificate, _, _) =>
            {
                if (!options.RequireClientCertificate)
                {
                    return true;
                }

                if (material.IsTrustedClient(certificate, time.GetUtcNow(), out var reason))
                {
                    return true;
                }

                LogHandshakeRefused(logger, ThumbprintOf(certificate), reason);
                return false;
            };
        }

        https.OnAuthenticate = (_, ssl) =>
        {
            // Names the client CAs in the handshake, and keeps the system trust store out of client validation.
            ssl.ServerCertificateContext = material.ServerContext;
            if (options.MutualTls)
            {
                ssl.CertificateChainPolicy = material.ClientChainPolicy(time.GetUtcNow());
            }
        };
    }

    private static void AddCertificateAuthentication(IServiceCollection services)
    {
        services.AddAuthentication().AddCertificate();
        services.AddOptions<CertificateAuthenticationOptions>(CertificateAuthenticationDefaults.AuthenticationScheme)
            .Configure<TlsMaterial, TimeProvider>((o, material, time) =>
            {
                // Only certificates issued by Tls:ClientCa: self-signed ones are never accepted, and the system's
                // trust store is never consulted.
                o.AllowedCertificateTypes = CertificateTypes.Chained;
                o.ChainTrustValidationMode = X509ChainTrustMode.CustomRootTrust;
                o.CustomTrustStore = material.ClientCa;
                o.RevocationMode = material.Options.RevocationMode;
                o.RevocationFlag = X509RevocationFlag.ExcludeRoot;
                o.ValidateCertificateUse = true;
                o.ValidateValidityPeriod = true;
                o.Events = new CertificateAuthenticationEvents
                {
                    // The handler's chain is built at the platform clock; the appliance's clock decides too.
                    OnCertificateValidated = context =>
                    {
                        var now = time.GetUtcNow();
                        if (now < context.ClientCertificate.NotBefore.ToUniversalTime() || now > context.ClientCertificate.NotAfter.ToUniversalTime())
                        {
                            context.Fail("the client certificate is not valid now");
                        }

                        return Task.CompletedTask;
                    },
                };
            });
    }

    private static void BindSafely(TlsOptions options, IConfiguration configuration)
    {
        try
        {
            configuration.GetSection(TlsOptions.Section).Bind(options);
        }
        catch (InvalidOperationException e)
        {
            // The binder's message quotes the value: keep only the key and the type.
            var match = System.Text.RegularExpressions.Regex.Match(e.Message, "at '([^']+)' to type '([^']+)'");
            options.BindError = !match.Success ? $"{TlsOptions.Section} cannot be read"
                : match.Groups[1].Value.EndsWith(":RevocationMode", StringComparison.OrdinalIgnoreCase) ? "Tls:RevocationMode must be NoCheck, Offline or Online"
                : $"{match.Groups[1].Value} is not a valid {match.Groups[2].Value.Split('.')[^1]}";
        }
    }

    internal static string ThumbprintOf(X509Certificate2 certificate) => Appliance.Applications.ClientCertificates.ThumbprintOf(certificate);

    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "TLS handshake refused client certificate {Thumbprint}: {Reason}")]
    private static partial void LogHandshakeRefused(ILogger logger, string thumbprint, string reason);
}
