using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Payments;

namespace DevRift.Hsm.Api.V1;

/// <summary>
/// The fields of a <c>/v1</c> POST, from any of the three encodings of API.md: the documented
/// <c>User=…, Type=…, Code=…</c> form (as <c>curl -d</c> sends it, unencoded), an ordinary URL-encoded form, or
/// JSON. Field names are case-insensitive. A literal <c>+</c> is kept (it starts every E.164 number). A payment is the
/// JSON object <c>"transaction": {"amount", "currency", "payee", "reference"}</c>, or in both forms the top-level
/// fields <c>Amount</c>, <c>Currency</c>, <c>Payee</c> and <c>Reference</c>.
/// </summary>
public sealed partial class RequestBody
{
    public const int MaxBytes = 16 * 1024;

    private readonly Dictionary<string, string> _fields;

    private static readonly string[] s_transactionFields = ["amount", "currency", "payee", "reference"];

    private RequestBody(Dictionary<string, string> fields, JsonElement? credential, TransactionInput? transaction)
    {
        _fields = fields;
        Credential = credential;
        Transaction = transaction;
    }

    public string? User => Get("user");

    public string? Type => Get("type");

    public string? Code => Get("code");

    public string? Locale => Get("locale");

    /// <summary>The integrator's own name for the end user (<c>user_id</c>; <c>User_Id=</c> in the comma form), when given.</summary>
    public string? UserId => Get("user_id");

    /// <summary>The end user's IP address: <c>client_ip</c> (JSON and forms) or <c>Client-Ip</c> (the documented comma form).</summary>
    public string? ClientIp => Get("client_ip") is { } ip
        ? Get("client-ip") is null ? ip : throw new MfaException(ErrorCode.InvalidRequest, "give client_ip once (client_ip or Client-Ip)", "client_ip")
        : Get("client-ip");

    /// <summary>A WebAuthn response object (JSON bodies) or its JSON text (forms).</summary>
    public JsonElement? Credential { get; }

    /// <summary>The payment's fields as sent, or null when the body names none (validated by the service that uses it).</summary>
    public TransactionInput? Transaction { get; }

    public string? Get(string name) => _fields.GetValueOrDefault(name);

    public string Require(string name, ErrorCode? error = null) =>
        Get(name) is { Length: > 0 } v
            ? v
            : throw new MfaException(error ?? ErrorCode.InvalidRequest, $"'{name}' is required", name);

    public static async Task<RequestBody> ReadAsync(HttpRequest request, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.ContentLength > MaxBytes)
        {
            throw new MfaException(ErrorCode.PayloadTooLarge, $"the body is larger than {MaxBytes} bytes");
        }

        var bytes = await ReadLimitedAsync(request.Body, ct);
        var mediaType = (request.ContentType ?? "").Split(';')[0].Trim().ToLowerInvariant();
        return mediaType switch
        {
            "application/json" or "text/json" => ParseJson(bytes),
            "application/x-www-form-urlencoded" or "" or "text/plain" => ParseForm(Decode(bytes)),
            _ => throw new MfaException(ErrorCode.UnsupportedMediaType,
                "send application/x-www-form-urlencoded (User=…, Type=…) or application/json"),
        };
    }

    private static async Task<byte[]> ReadLimitedAsync(Stream body, CancellationToken ct)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[4096];
        int n;
        while ((n = await body.ReadAsync(chunk, ct)) > 0)
        {
            if (buffer.Length + n > MaxBytes)
            {
                throw new MfaException(ErrorCode.PayloadTooLarge, $"the body is larger than {MaxBytes} bytes");
            }

            buffer.Write(chunk, 0, n);
        }

        return buffer.ToArray();
    }

    private static string Decode(byte[] bytes)
    {
        try
        {
            return new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw new MfaException(ErrorCode.InvalidRequest, "the body is not valid UTF-8");
        }
    }

    internal static RequestBody ParseForm(string text)
    {
        var fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        // '&' separates an ordinary form; otherwise the documented ", "-separated pairs, split only where a comma starts a
        // new Name= pair, so a JSON value (Credential={"id":"…","rawId":"…",…}) keeps its own commas.
        var pairs = text.Contains('&', StringComparison.Ordinal) ? text.Split('&') : PairSeparator().Split(text);
        foreach (var raw in pairs)
        {
            var pair = raw.Trim(' ', '\t', '\r', '\n');
            if (pair.Length == 0)
            {
                continue;
            }

            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new MfaException(ErrorCode.InvalidRequest, "expected Name=value pairs such as 'User=ada@example.com, Type=EMAIL'");
            }

            var name = Unescape(pair[..eq]).Trim();
            var value = Unescape(pair[(eq + 1)..]).Trim();
            if (!fields.TryAdd(name, value))
            {
                throw new MfaException(ErrorCode.InvalidRequest, $"'{Truncate(name.ToLowerInvariant())}' is given more than once", name.ToLowerInvariant());
            }
        }

        var transaction = new TransactionInput(
            fields.GetValueOrDefault("amount"), fields.GetValueOrDefault("currency"), fields.GetValueOrDefault("payee"), fields.GetValueOrDefault("reference"));
        return new RequestBody(fields, null, transaction.IsEmpty ? null : transaction);
    }

    private static RequestBody ParseJson(byte[] bytes)
    {
        using var doc = ParseJsonDocument(bytes);
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            throw new MfaException(ErrorCode.InvalidRequest, "the JSON body must be an object such as {\"user\": \"…\", \"type\": \"…\"}");
        }

        var fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        JsonElement? credential = null;
        TransactionInput? transaction = null;
        foreach (var property in doc.RootElement.EnumerateObject())
        {
            var name = property.Name.ToLowerInvariant();
            if (name == "credential")
            {
                credential = property.Value.Clone();
                continue;
            }

            if (name == "transaction")
            {
                transaction = property.Value.ValueKind == JsonValueKind.Null ? null : TransactionOf(property.Value);
                continue;
            }

            var value = property.Value.ValueKind switch
            {
                JsonValueKind.String => property.Value.GetString()!,
                JsonValueKind.Number => property.Value.GetRawText(),
                JsonValueKind.Null => null,
                _ => throw new MfaException(ErrorCode.InvalidRequest, $"'{Truncate(name)}' must be a string", Truncate(name)),
            };
            if (value is not null && !fields.TryAdd(name, value.Trim()))
            {
                throw new MfaException(ErrorCode.InvalidRequest, $"'{Truncate(name)}' is given more than once", Truncate(name));
            }
        }

        return new RequestBody(fields, credential, transaction is { IsEmpty: false } ? transaction : null);
    }

    /// <summary>The JSON <c>transaction</c> object: string (or number) fields amount, currency, payee, reference, nothing else.</summary>
    private static TransactionInput TransactionOf(JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new MfaException(ErrorCode.InvalidRequest, "'transaction' must be an object such as {\"amount\": \"12.34\", \"currency\": \"EUR\", \"payee\": \"ACME Ltd\"}", "transaction");
        }

        var values = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var property in element.EnumerateObject())
        {
            var name = property.Name.ToLowerInvariant();
            var param = "transaction." + Truncate(name);
            if (!s_transactionFields.Contains(name, StringComparer.Ordinal))
            {
                throw new MfaException(ErrorCode.InvalidRequest, $"'{param}' is not a transaction field (amount, currency, payee, reference)", param);
            }

            var value = property.Value.ValueKind switch
            {
                JsonValueKind.String => property.Value.GetString(),
                JsonValueKind.Number => property.Value.GetRawText(),
                JsonValueKind.Null => null,
                _ => throw new MfaException(ErrorCode.InvalidRequest, $"'{param}' must be a string", param),
            };
            if (!values.TryAdd(name, value))
            {
                throw new MfaException(ErrorCode.InvalidRequest, $"'{param}' is given more than once", param);
            }
        }

        return new TransactionInput(values.GetValueOrDefault("amount"), values.GetValueOrDefault("currency"), values.GetValueOrDefault("payee"), values.GetValueOrDefault("reference"));
    }

    /// <summary>
    /// Parses a JSON body that every later reader can use without failing: valid UTF-8, at most 32 levels deep, no
    /// property given twice in one object, and no string (name or value) holding a lone UTF-16 surrogate escape such
    /// as <c>"\ud800"</c>, which System.Text.Json accepts when parsing but refuses to turn into a .NET string.
    /// Each fault is a 400 <c>invalid_request</c>; the document is the caller's to dispose.
    /// </summary>
    public static JsonDocument ParseJsonDocument(byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        _ = Decode(bytes);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 32, AllowDuplicateProperties = false });
        }
        catch (JsonException e)
        {
            throw new MfaException(ErrorCode.InvalidRequest, e.Message.Contains("depth", StringComparison.OrdinalIgnoreCase)
                ? "the JSON body is nested deeper than 32 levels"
                : e.Message.Contains("duplicate", StringComparison.OrdinalIgnoreCase)
                    ? "the JSON body gives a property more than once"
                    : "the body is not valid JSON");
        }

        try
        {
            CheckStrings(doc.RootElement, "");
            return doc;
        }
        catch
        {
            doc.Dispose();
            throw;
        }
    }

    private static void CheckStrings(JsonElement element, string field)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    var name = Readable(() => property.Name, field);
                    CheckStrings(property.Value, field.Length == 0 ? name.ToLowerInvariant() : field);
                }

                break;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                {
                    CheckStrings(item, field);
                }

                break;
            case JsonValueKind.String:
                _ = Readable(element.GetString, field);
                break;
        }
    }

    private static string Readable(Func<string?> read, string field)
    {
        try
        {
            return read() ?? "";
        }
        catch (InvalidOperationException)
        {
            throw new MfaException(ErrorCode.InvalidRequest,
                $"{(field.Length > 0 ? $"'{Truncate(field)}'" : "a property name")} holds a lone UTF-16 surrogate escape (such as \\ud800), which is not text",
                field.Length > 0 ? Truncate(field) : null);
        }
    }

    /// <summary>Percent-decoding that keeps '+' literal (never a space), so +14155550123 survives unencoded.</summary>
    private static string Unescape(string s)
    {
        if (!s.Contains('%', StringComparison.Ordinal))
        {
            return s;
        }

        var bytes = new List<byte>(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '%' && i + 2 < s.Length
                && byte.TryParse(s.AsSpan(i + 1, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var b))
            {
                bytes.Add(b);
                i += 2;
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(s[i].ToString()));
            }
        }

        try
        {
            return new UTF8Encoding(false, true).GetString(bytes.ToArray());
        }
        catch (DecoderFallbackException)
        {
            throw new MfaException(ErrorCode.InvalidRequest, "a percent-encoded value is not valid UTF-8");
        }
    }

    [GeneratedRegex(@",(?=\s*[A-Za-z][A-Za-z0-9_-]*\s*=)", RegexOptions.CultureInvariant)]
    private static partial Regex PairSeparator();

    private static string Truncate(string s) => s.Length > 40 ? s[..40] + "…" : s;
}
