using System.Net;
using System.Text.RegularExpressions;
using DevRift.Hsm.Api.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace DevRift.Hsm.Api.Tests.Factors;

/// <summary>Test 8: the host's logs, at Debug and above, never carry a seed, a TOTP code or a backup code.</summary>
public sealed class LogSecrecyTests
{
    [Fact]
    public async Task Logs_at_debug_level_carry_no_seed_code_or_backup_code()
    {
        // Given a server whose every log message at Debug and above is captured
        var capture = new CapturingLoggerProvider();
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite, fakeClock: true, configure: builder =>
        {
            builder.Services.AddSingleton<ILoggerProvider>(capture);
            builder.Logging.AddFilter<CapturingLoggerProvider>(null, LogLevel.Debug);
        });

        // When a user enrols, verifies, generates backup codes, uses one and fails one of each
        var user = FactorApi.NewUser("logs");
        var e = await server.EnrolAsync(user);
        var totp = Rfc6238.CodeAt(e.Seed, server.Now());
        await server.VerifyAppAsync(user, totp).ExpectVerifiedAsync("APP");
        await server.VerifyAppAsync(user, totp).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        await server.GenerateBackupAsync(user);
        var codes = await server.LatestBackupCodesAsync(user);
        await server.VerifyBackupAsync(user, codes[0]).ExpectVerifiedAsync("BACKUP");
        await server.VerifyBackupAsync(user, codes[0]).ExpectProblemAsync(HttpStatusCode.Unauthorized, "invalid_code");
        server.Clock!.Advance(TimeSpan.FromSeconds(30));
        var next = Rfc6238.CodeAt(e.Seed, server.Now());
        await server.VerifyAppAsync(user, next).ExpectVerifiedAsync("APP");

        // Then something was logged at Debug level (the capture works) …
        var lines = capture.Lines.ToList();
        Assert.Contains(lines, l => l.StartsWith("Debug ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("/v1/mfa/verify", StringComparison.Ordinal));

        // … and no line holds a secret
        var secrets = new List<(string What, string Value)>
        {
            ("base32 seed", e.Secret),
            ("hex seed", Convert.ToHexString(e.Seed)),
            ("base64 seed", Convert.ToBase64String(e.Seed)),
            ("otpauth URI", e.OtpAuthUri),
            ("QR code", e.QrCodeBase64[..64]),
            ("TOTP code", totp),
            ("next TOTP code", next),
        };
        foreach (var code in codes)
        {
            secrets.Add(($"backup code {code[..2]}…", code));
            secrets.Add(($"normalised backup code {code[..2]}…", FactorApi.Normalised(code)));
        }

        foreach (var line in lines)
        {
            foreach (var (what, value) in secrets)
            {
                // Six-digit codes are matched as whole numbers, so that a timing like 1.123456 ms is not a false alarm.
                var found = value.All(char.IsAsciiDigit)
                    ? Regex.IsMatch(line, $"(?<![0-9.]){value}(?![0-9])")
                    : line.Contains(value, StringComparison.OrdinalIgnoreCase);
                Assert.False(found, $"{what} in log line: {line}");
            }
        }
    }
}
