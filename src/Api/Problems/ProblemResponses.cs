using System.Text.Json;
using DevRift.Hsm.Api.V1;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Crypto;
using Microsoft.AspNetCore.Diagnostics;

namespace DevRift.Hsm.Api.Problems;

/// <summary>
/// The one mapping from failures to RFC 9457 problem responses with the stable codes of API.md. Details name
/// fields and formats; they never carry a secret or an exception's text from below.
/// </summary>
public static class ProblemResponses
{
    public static int StatusOf(ErrorKind kind) => kind switch
    {
        ErrorKind.InvalidRequest => StatusCodes.Status400BadRequest,
        ErrorKind.Unauthenticated or ErrorKind.VerificationFailed => StatusCodes.Status401Unauthorized,
        ErrorKind.Forbidden => StatusCodes.Status403Forbidden,
        ErrorKind.NotFound => StatusCodes.Status404NotFound,
        ErrorKind.Conflict => StatusCodes.Status409Conflict,
        ErrorKind.PayloadTooLarge => StatusCodes.Status413PayloadTooLarge,
        ErrorKind.UnsupportedMediaType => StatusCodes.Status415UnsupportedMediaType,
        ErrorKind.TooManyAttempts or ErrorKind.RateLimited => StatusCodes.Status429TooManyRequests,
        ErrorKind.Unavailable => StatusCodes.Status503ServiceUnavailable,
        _ => StatusCodes.Status500InternalServerError,
    };

    /// <summary>The problem for an exception, or null for one that is a bug (answered as a bare 500).</summary>
    public static MfaException? Translate(Exception exception) => exception switch
    {
        MfaException m => m,
        HsmUnavailableException or HsmConfigurationException => new MfaException(ErrorCode.HsmUnavailable, "the HSM cannot serve this request now; try again shortly"),
        // Stored data the HSM refuses (a wrapped seed that fails its check, a key version no longer on the token) is the
        // appliance's to fix, not the caller's: 503 like any other HSM failure, never a bare 500; the log names it.
        HsmDataException => new MfaException(ErrorCode.HsmUnavailable, "the HSM refused data stored for this request; the operator's log names it"),
        StorageUnavailableException => new MfaException(ErrorCode.StorageUnavailable, "the database cannot serve this request now; try again shortly"),
        BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } => new MfaException(ErrorCode.PayloadTooLarge, $"the body is larger than {RequestBody.MaxBytes} bytes"),
        BadHttpRequestException => new MfaException(ErrorCode.InvalidRequest, "the request could not be read"),
        _ => null,
    };

    public static async Task WriteAsync(HttpContext context, MfaException problem, int? statusOverride = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(problem);
        var status = statusOverride ?? StatusOf(problem.Error.Kind);
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/problem+json";
        context.Response.Headers.CacheControl = "no-store";
        if (problem.RetryAfterSeconds is { } retry)
        {
            context.Response.Headers.RetryAfter = retry.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        await using var writer = new Utf8JsonWriter(context.Response.Body, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        writer.WriteStartObject();
        // A page this appliance serves (GET /errors/{code}), as a reference relative to the appliance's own address.
        writer.WriteString("type", $"/errors/{problem.Error.Code}");
        writer.WriteString("title", problem.Error.Title);
        writer.WriteNumber("status", status);
        writer.WriteString("detail", problem.Message);
        writer.WriteString("code", problem.Error.Code);
        if (problem.Param is not null)
        {
            writer.WriteString("param", problem.Param);
        }

        if (problem.AttemptsRemaining is { } remaining)
        {
            writer.WriteNumber("attempts_remaining", remaining);
        }

        if (problem.RetryAfterSeconds is { } r)
        {
            writer.WriteNumber("retry_after", r);
        }

        writer.WriteEndObject();
        await writer.FlushAsync();
    }
}

/// <summary>Turns every exception that escapes an endpoint into a problem response.</summary>
public sealed partial class ProblemExceptionHandler(ILogger<ProblemExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        var problem = ProblemResponses.Translate(exception);
        if (problem is null)
        {
            // Only the type: messages of lower layers are not trusted to be free of request data.
            LogUnhandled(logger, exception.GetType().FullName ?? "?", httpContext.Request.Path);
            problem = new MfaException(ErrorCode.InternalError, "an internal error occurred");
        }
        else if (problem.Error.Kind == ErrorKind.Unavailable)
        {
            // Messages of the storage and HSM layers name the operation and the driver's or module's code, never data.
            LogUnavailable(logger, problem.Error.Code, exception is StorageUnavailableException or HsmException ? $"{exception.GetType().Name}: {exception.Message}" : exception.GetType().Name);
        }

        await ProblemResponses.WriteAsync(httpContext, problem);
        return true;
    }

    [LoggerMessage(EventId = 2001, Level = LogLevel.Error, Message = "Unhandled {ExceptionType} on {Path}")]
    private static partial void LogUnhandled(ILogger logger, string exceptionType, string path);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Warning, Message = "Failing closed: {Code} ({Reason})")]
    private static partial void LogUnavailable(ILogger logger, string code, string reason);
}
