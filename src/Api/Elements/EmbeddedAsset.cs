using System.Reflection;
using System.Security.Cryptography;
using Microsoft.Net.Http.Headers;

namespace DevRift.Hsm.Api.Elements;

/// <summary>
/// A browser file compiled into the assembly (so it ships with the executable, whatever the content root), read
/// once, served with a strong ETag of its content and answered 304 when the browser already has it.
/// </summary>
public sealed class EmbeddedAsset
{
    private readonly byte[] _content;

    private EmbeddedAsset(byte[] content, string contentType)
    {
        _content = content;
        ContentType = contentType;
        ETag = new EntityTagHeaderValue($"\"{Convert.ToHexStringLower(SHA256.HashData(content))[..32]}\"");
    }

    public string ContentType { get; }

    public EntityTagHeaderValue ETag { get; }

    /// <summary>Loads <paramref name="logicalName"/> (the csproj's <c>LogicalName</c>) from this assembly; throws at start if missing.</summary>
    public static EmbeddedAsset Load(string logicalName, string contentType)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(logicalName)
            ?? throw new InvalidOperationException($"embedded resource '{logicalName}' is missing from the build");
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        return new EmbeddedAsset(buffer.ToArray(), contentType);
    }

    /// <summary>The file with validators and the given cache policy (and any extra headers set by the caller).</summary>
    public IResult Serve(HttpContext http, string cacheControl)
    {
        ArgumentNullException.ThrowIfNull(http);
        var headers = http.Response.Headers;
        headers.CacheControl = cacheControl;
        headers.ETag = ETag.ToString();
        headers.XContentTypeOptions = "nosniff";
        var ifNoneMatch = http.Request.GetTypedHeaders().IfNoneMatch;
        if (ifNoneMatch.Any(t => t.Equals(EntityTagHeaderValue.Any) || t.Compare(ETag, useStrongComparison: false)))
        {
            return TypedResults.StatusCode(StatusCodes.Status304NotModified);
        }

        return TypedResults.Bytes(_content, ContentType);
    }
}
