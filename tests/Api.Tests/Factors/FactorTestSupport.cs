using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using DevRift.Hsm.Api.Tests.Infrastructure;
using Microsoft.Extensions.Logging;

namespace DevRift.Hsm.Api.Tests.Factors;

/// <summary>RFC 6238 TOTP written from the RFC with the framework's HMAC-SHA1: independent of the product's code.</summary>
public static class Rfc6238
{
    public const int Period = 30;

    public static long Step(DateTimeOffset at) => at.ToUnixTimeSeconds() / Period;

    public static string Code(byte[] key, long step, int digits = 6)
    {
        Span<byte> counter = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(counter, step);
#pragma warning disable CA5350 // RFC 6238's default (and the appliance's) TOTP algorithm is HMAC-SHA1.
        using var hmac = new HMACSHA1(key);
#pragma warning restore CA5350
        var mac = hmac.ComputeHash(counter.ToArray());
        var offset = mac[^1] & 0x0f;
        var binary = ((mac[offset] & 0x7f) << 24) | (mac[offset + 1] << 16) | (mac[offset + 2] << 8) | mac[offset + 3];
        var modulo = (int)Math.Pow(10, digits);
        return (binary % modulo).ToString(CultureInfo.InvariantCulture).PadLeft(digits, '0');
    }

    public static string CodeAt(byte[] key, DateTimeOffset at, int stepOffset = 0) => Code(key, Step(at) + stepOffset);

    /// <summary>A six-digit code that is none of the codes of steps now−5 … now+5.</summary>
    public static string WrongCode(byte[] key, DateTimeOffset at)
    {
        var valid = Enumerable.Range(-5, 11).Select(i => CodeAt(key, at, i)).ToHashSet(StringComparer.Ordinal);
        for (var n = 123456; ; n++)
        {
            var candidate = (n % 1_000_000).ToString("D6", CultureInfo.InvariantCulture);
            if (!valid.Contains(candidate))
            {
                return candidate;
            }
        }
    }
}

/// <summary>RFC 4648 base32 decoding (no padding required), written for the tests.</summary>
public static class Base32Text
{
    private const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

    public static byte[] Decode(string text)
    {
        var bytes = new List<byte>();
        int buffer = 0, bits = 0;
        foreach (var c in text.TrimEnd('='))
        {
            var v = Alphabet.IndexOf(c, StringComparison.Ordinal);
            if (v < 0)
            {
                throw new FormatException($"'{c}' is not base32");
            }

            buffer = (buffer << 5) | v;
            bits += 5;
            if (bits >= 8)
            {
                bits -= 8;
                bytes.Add((byte)((buffer >> bits) & 0xff));
            }
        }

        return [.. bytes];
    }
}

/// <summary>
/// A small PNG reader (non-interlaced; grayscale, palette, RGB and RGBA; bit depths 1–8) that yields one luminance
/// byte a pixel — enough for QRCoder's <c>PngByteQRCode</c> output, without System.Drawing.
/// </summary>
public static class PngLuminance
{
    public static (int Width, int Height, byte[] Luminance) Read(byte[] png)
    {
        ReadOnlySpan<byte> signature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];
        if (!png.AsSpan(0, 8).SequenceEqual(signature))
        {
            throw new FormatException("not a PNG");
        }

        int width = 0, height = 0, bitDepth = 0, colorType = -1;
        byte[] palette = [];
        using var idat = new MemoryStream();
        var pos = 8;
        while (pos < png.Length)
        {
            var length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(pos));
            var type = Encoding.ASCII.GetString(png, pos + 4, 4);
            var data = png.AsSpan(pos + 8, length);
            pos += 12 + length;
            switch (type)
            {
                case "IHDR":
                    width = BinaryPrimitives.ReadInt32BigEndian(data);
                    height = BinaryPrimitives.ReadInt32BigEndian(data[4..]);
                    bitDepth = data[8];
                    colorType = data[9];
                    if (data[12] != 0)
                    {
                        throw new FormatException("interlaced PNGs are not supported by this reader");
                    }

                    break;
                case "PLTE":
                    palette = data.ToArray();
                    break;
                case "IDAT":
                    idat.Write(data);
                    break;
                case "IEND":
                    pos = png.Length;
                    break;
            }
        }

        var channels = colorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4, _ => throw new FormatException($"colour type {colorType}") };
        if (bitDepth > 8)
        {
            throw new FormatException("16-bit PNGs are not supported by this reader");
        }

        var bitsPerPixel = channels * bitDepth;
        var stride = ((width * bitsPerPixel) + 7) / 8;
        var filterUnit = Math.Max(1, bitsPerPixel / 8);
        idat.Position = 0;
        using var inflated = new MemoryStream();
        using (var z = new ZLibStream(idat, CompressionMode.Decompress))
        {
            z.CopyTo(inflated);
        }

        var raw = inflated.ToArray();
        var pixels = new byte[stride * height];
        var previous = new byte[stride];
        for (var y = 0; y < height; y++)
        {
            var filter = raw[y * (stride + 1)];
            var line = raw.AsSpan((y * (stride + 1)) + 1, stride);
            var current = pixels.AsSpan(y * stride, stride);
            for (var i = 0; i < stride; i++)
            {
                int a = i >= filterUnit ? current[i - filterUnit] : 0, b = previous[i], c = i >= filterUnit ? previous[i - filterUnit] : 0;
                current[i] = (byte)(line[i] + filter switch
                {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => (a + b) / 2,
                    4 => Paeth(a, b, c),
                    _ => throw new FormatException($"filter {filter}"),
                });
            }

            current.CopyTo(previous);
        }

        var luminance = new byte[width * height];
        var maxSample = (1 << bitDepth) - 1;
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                int Sample(int channel)
                {
                    var bit = (x * bitsPerPixel) + (channel * bitDepth);
                    var octet = pixels[(y * stride) + (bit / 8)];
                    return (octet >> (8 - bitDepth - (bit % 8))) & maxSample;
                }

                luminance[(y * width) + x] = colorType switch
                {
                    0 or 4 => (byte)(Sample(0) * 255 / maxSample),
                    3 => Luma(palette[Sample(0) * 3], palette[(Sample(0) * 3) + 1], palette[(Sample(0) * 3) + 2]),
                    _ => Luma(Sample(0), Sample(1), Sample(2)),
                };
            }
        }

        return (width, height, luminance);
    }

    private static byte Luma(int r, int g, int b) => (byte)(((r * 299) + (g * 587) + (b * 114)) / 1000);

    private static int Paeth(int a, int b, int c)
    {
        var p = a + b - c;
        int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }
}

/// <summary>Two independent QR decoders: ZXing.Net on pixels from <see cref="PngLuminance"/>, and the zbarimg command.</summary>
public static class QrDecoders
{
    public static string ZXingDecode(byte[] png)
    {
        var (width, height, luminance) = PngLuminance.Read(png);
        var source = new ZXing.RGBLuminanceSource(luminance, width, height, ZXing.RGBLuminanceSource.BitmapFormat.Gray8);
        // ZXing's finder-pattern detector misses some well-formed codes (about one in twenty here, all of which zbarimg
        // reads); the PNG is a pure code, square to the pixel grid, so its pure-barcode mode is the fallback.
        var bitmap = new ZXing.BinaryBitmap(new ZXing.Common.HybridBinarizer(source));
        var result = new ZXing.QrCode.QRCodeReader().decode(bitmap, new Dictionary<ZXing.DecodeHintType, object> { [ZXing.DecodeHintType.TRY_HARDER] = true })
            ?? new ZXing.QrCode.QRCodeReader().decode(bitmap, new Dictionary<ZXing.DecodeHintType, object> { [ZXing.DecodeHintType.PURE_BARCODE] = true })
            ?? throw new InvalidOperationException("ZXing found no QR code in the PNG");
        return result.Text;
    }

    public static async Task<string> ZbarDecodeAsync(byte[] png)
    {
        var file = Path.Combine(Path.GetTempPath(), $"devrift-qr-{Guid.NewGuid():N}.png");
        await File.WriteAllBytesAsync(file, png);
        try
        {
            var (exit, stdout, stderr) = await RunAsync("zbarimg", "--raw", "-q", file);
            Assert.True(exit == 0, $"zbarimg failed ({exit}): {stderr}");
            return stdout.TrimEnd('\r', '\n');
        }
        finally
        {
            File.Delete(file);
        }
    }

    public static async Task<(int Exit, string Stdout, string Stderr)> RunAsync(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, await stdout, await stderr);
    }
}

/// <summary>What an enrolment response carried.</summary>
public sealed record Enrolment(string Secret, byte[] Seed, string OtpAuthUri, string QrCodeBase64, JsonElement Body, HttpResponseHeaders Headers);

/// <summary>A message from the test outbox.</summary>
public sealed record OutboxMessage(string Channel, string To, string? Subject, string Body, DateTime CreatedAt);

/// <summary>Requests and assertions for the factor tests (JSON shapes per API.md).</summary>
public static class FactorApi
{
    public const string Ada = "ada@example.com";
    public const string AdaPhone = "+14155550123";

    private static readonly Regex s_backupCodeLine = new("^[0-9A-HJKMNP-TV-Z]{1,5}(?:-[0-9A-HJKMNP-TV-Z]{1,5})+$", RegexOptions.Multiline);

    private static int s_user;

    /// <summary>A fresh email address, so tests sharing a server never share an identity.</summary>
    public static string NewUser(string hint) =>
        $"{hint}-{Interlocked.Increment(ref s_user)}-{Guid.NewGuid().ToString("N")[..6]}@example.com";

    public static DateTimeOffset Now(this ApplianceServer server) => server.Clock!.GetUtcNow();

    public static async Task<Enrolment> EnrolAsync(this ApplianceServer server, string user, string? bearer = null)
    {
        using var response = await server.PostCurlAsync("/v1/mfa/app", $"User={user}", bearer);
        var body = await response.AssertJsonAsync(HttpStatusCode.OK, "app_enrollment");
        var secret = body.GetProperty("secret").GetString()!;
        return new Enrolment(secret, Base32Text.Decode(secret), body.GetProperty("otpauth_uri").GetString()!,
            body.GetProperty("qr_code").GetString()!, body, response.Headers);
    }

    /// <summary>Enrols and confirms with the code of the current step.</summary>
    public static async Task<Enrolment> EnrolActiveAsync(this ApplianceServer server, string user, string? bearer = null)
    {
        var e = await server.EnrolAsync(user, bearer);
        using var ok = await server.VerifyAppAsync(user, Rfc6238.CodeAt(e.Seed, server.Now()), bearer);
        await ok.AssertJsonAsync(HttpStatusCode.OK, "verification");
        return e;
    }

    public static Task<HttpResponseMessage> VerifyAppAsync(this ApplianceServer server, string user, string code, string? bearer = null) =>
        server.PostCurlAsync("/v1/mfa/verify", $"User={user}, Type=APP, Code={code}", bearer);

    public static Task<HttpResponseMessage> VerifyBackupAsync(this ApplianceServer server, string user, string code, string? bearer = null) =>
        server.PostCurlAsync("/v1/mfa/verify", $"User={user}, Type=BACKUP, Code={code}", bearer);

    public static async Task<JsonElement> GenerateBackupAsync(this ApplianceServer server, string user, string type = "EMAIL", string? bearer = null)
    {
        using var response = await server.PostCurlAsync("/v1/mfa/backup", $"User={user}, Type={type}", bearer);
        return await response.AssertJsonAsync(HttpStatusCode.Accepted, "backup_set");
    }

    public static async Task<List<OutboxMessage>> MessagesAsync(this ApplianceServer server, string user)
    {
        var text = await server.Client.GetStringAsync($"/v1/test/messages?user={Uri.EscapeDataString(user)}");
        using var doc = JsonDocument.Parse(text);
        return doc.RootElement.GetProperty("data").EnumerateArray().Select(m => new OutboxMessage(
            m.GetProperty("channel").GetString()!, m.GetProperty("to").GetString()!,
            m.TryGetProperty("subject", out var s) ? s.GetString() : null,
            m.GetProperty("body").GetString()!, m.GetProperty("created_at").GetDateTime())).ToList();
    }

    /// <summary>The grouped codes of the newest backup-code message to <paramref name="destination"/>.</summary>
    public static async Task<List<string>> LatestBackupCodesAsync(this ApplianceServer server, string destination, string channel = "EMAIL")
    {
        var message = (await server.MessagesAsync(destination)).First(m => m.Channel == channel && m.Body.Contains("backup codes", StringComparison.Ordinal));
        return BackupCodesIn(message.Body);
    }

    public static List<string> BackupCodesIn(string body) => s_backupCodeLine.Matches(body).Select(m => m.Value).ToList();

    public static string Normalised(string grouped) => grouped.Replace("-", "", StringComparison.Ordinal);

    public static async Task<JsonElement> FactorsAsync(this ApplianceServer server, string user, string? bearer = null)
    {
        using var response = await server.NewClient(bearer ?? server.TestKey).GetAsync($"/v1/mfa/factors?user={Uri.EscapeDataString(user)}");
        return await response.AssertJsonAsync(HttpStatusCode.OK, "factors");
    }

    /// <summary>A second test-mode API key of the demo application, made with the operator token.</summary>
    public static async Task<string> CreateTestKeyAsync(this ApplianceServer server)
    {
        using var client = server.NewClient(server.OperatorToken);
        using var response = await client.PostAsync($"/admin/v1/applications/{server.ApplicationId}/api-keys",
            new StringContent("{\"mode\":\"test\"}", Encoding.UTF8, "application/json"));
        var body = await response.AssertJsonAsync(HttpStatusCode.Created, "api_key");
        return body.GetProperty("secret").GetString()!;
    }

    public static async Task<JsonElement> PatchSettingsAsync(this ApplianceServer server, string json)
    {
        using var client = server.NewClient(server.OperatorToken);
        using var request = new HttpRequestMessage(HttpMethod.Patch, $"/admin/v1/applications/{server.ApplicationId}/settings")
        {
            Content = new StringContent(json, Encoding.UTF8, "application/json"),
        };
        using var response = await client.SendAsync(request);
        return await response.AssertJsonAsync(HttpStatusCode.OK, "settings");
    }

    /// <summary>Asserts an RFC 9457 problem with this status and <c>code</c>; disposes the response.</summary>
    public static async Task<JsonElement> ExpectProblemAsync(this Task<HttpResponseMessage> pending, HttpStatusCode status, string code)
    {
        using var response = await pending;
        return await response.AssertProblemAsync(status, code);
    }

    /// <summary>Asserts a 200 verification of <paramref name="type"/>; disposes the response.</summary>
    public static async Task ExpectVerifiedAsync(this Task<HttpResponseMessage> pending, string type)
    {
        using var response = await pending;
        var body = await response.AssertJsonAsync(HttpStatusCode.OK, "verification");
        Assert.True(body.GetProperty("valid").GetBoolean());
        Assert.Equal(type, body.GetProperty("type").GetString());
    }
}

/// <summary>A logging provider that keeps every formatted message (and exception text and structured values).</summary>
public sealed class CapturingLoggerProvider : ILoggerProvider
{
    public ConcurrentQueue<string> Lines { get; } = new();

    public ILogger CreateLogger(string categoryName) => new CapturingLogger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class CapturingLogger(CapturingLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull
        {
            owner.Lines.Enqueue($"{category} scope: {state}");
            return null;
        }

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Debug;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var line = new StringBuilder().Append(logLevel).Append(' ').Append(category).Append(": ").Append(formatter(state, exception));
            if (state is IEnumerable<KeyValuePair<string, object?>> values)
            {
                foreach (var (k, v) in values)
                {
                    line.Append(" | ").Append(k).Append('=').Append(v);
                }
            }

            if (exception is not null)
            {
                line.Append(" | ").Append(exception);
            }

            owner.Lines.Enqueue(line.ToString());
        }
    }
}
