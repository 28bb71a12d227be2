using System.Text;
using DevRift.Hsm.Api.Problems;
using DevRift.Hsm.Appliance.Errors;

namespace DevRift.Hsm.Api.Hosting;

/// <summary>
/// Header values that are not UTF-8. Kestrel's own decoder refuses them before any middleware runs (a bare 400 with
/// no body); decoded instead with replacement characters they reach <see cref="Middleware"/>, which answers a 400
/// problem naming the header. Nothing else reads a header that carries a replacement character.
/// </summary>
public static class HeaderEncoding
{
    private static readonly Encoding s_lenient = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    public static Encoding Selector(string headerName) => s_lenient;

    public static Task Middleware(HttpContext context, RequestDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        foreach (var (name, values) in context.Request.Headers)
        {
            foreach (var value in values)
            {
                if (value is not null && value.Contains('\uFFFD', StringComparison.Ordinal))
                {
                    var shown = name.Length > 40 ? name[..40] + "…" : name;
                    return ProblemResponses.WriteAsync(context, new MfaException(ErrorCode.InvalidRequest, $"the value of the header '{shown}' is not valid UTF-8", shown));
                }
            }
        }

        return next(context);
    }
}
