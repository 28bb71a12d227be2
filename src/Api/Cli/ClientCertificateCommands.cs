using DevRift.Hsm.Api.Admin;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Errors;

namespace DevRift.Hsm.Api.Cli;

/// <summary>
/// The client certificates of an application on the command line:
/// <code>
/// client-certificates list APP
/// client-certificates add APP FILE.pem|THUMBPRINT
/// client-certificates remove APP CERT_ID
/// </code>
/// </summary>
public static class ClientCertificateCommands
{
    private const string Usage = "usage: client-certificates list APP | client-certificates add APP FILE.pem|SHA256_THUMBPRINT | client-certificates remove APP CERT_ID";

    public sealed record Removed(string Object, string Id, bool Deleted)
    {
        /// <summary>What was removed, for the audit record only.</summary>
        [System.Text.Json.Serialization.JsonIgnore]
        public ClientCertificateResponse? Certificate { get; init; }
    }

    public static async Task<object> RunAsync(IServiceProvider services, string[] words)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(words);
        var certificates = services.GetRequiredService<ClientCertificates>();
        switch (words)
        {
            case ["list", var app]:
                return (await certificates.ListAsync(app)).Select(ClientCertificateResponse.From).ToList();
            case ["add", var app, var value]:
                var (pem, thumbprint) = PemOrThumbprint(value);
                return ClientCertificateResponse.From(await certificates.AddAsync(app, pem, thumbprint));
            case ["remove", var app, var id]:
                var removed = await certificates.RemoveAsync(app, id);
                return new Removed("client_certificate", id, true) { Certificate = ClientCertificateResponse.From(removed) };
            default:
                throw new MfaException(ErrorCode.InvalidRequest, Usage);
        }
    }

    /// <summary>A PEM file's path, a PEM text, or a thumbprint.</summary>
    private static (string? Pem, string? Thumbprint) PemOrThumbprint(string value)
    {
        if (value.StartsWith("-----BEGIN", StringComparison.Ordinal))
        {
            return (value, null);
        }

        if (ClientCertificates.NormaliseThumbprint(value) is not null)
        {
            return (null, value);
        }

        if (File.Exists(value))
        {
            try
            {
                return (File.ReadAllText(value), null);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new MfaException(ErrorCode.InvalidRequest, $"'{value}' cannot be read", "pem");
            }
        }

        // Neither a file nor a thumbprint: let the thumbprint check say what is expected.
        return (null, value);
    }
}
