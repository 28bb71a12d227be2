using System.Net;
using System.Text.Json;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests;

public sealed class AppSmokeTests
{
    [Fact]
    public async Task Enrolled_app_code_verifies_once_and_backup_code_once()
    {
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite, fakeClock: true);
        var enrol = await server.PostCurlAsync("/v1/mfa/app", "User=ada@example.com");
        Assert.Equal(HttpStatusCode.OK, enrol.StatusCode);
        using var doc = JsonDocument.Parse(await enrol.Content.ReadAsStringAsync());
        var secret = doc.RootElement.GetProperty("secret").GetString()!;
        var code = new OtpNet.Totp(OtpNet.Base32Encoding.ToBytes(secret)).ComputeTotp(server.Clock!.GetUtcNow().UtcDateTime);
        var ok = await server.PostCurlAsync("/v1/mfa/verify", $"User=ada@example.com, Type=APP, Code={code}");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        var replay = await server.PostCurlAsync("/v1/mfa/verify", $"User=ada@example.com, Type=APP, Code={code}");
        Assert.Equal(HttpStatusCode.Unauthorized, replay.StatusCode);

        var backup = await server.PostCurlAsync("/v1/mfa/backup", "User=ada@example.com, Type=EMAIL");
        Assert.Equal(HttpStatusCode.Accepted, backup.StatusCode);
        var messages = await server.Client.GetStringAsync("/v1/test/messages?user=ada@example.com");
        var first = System.Text.RegularExpressions.Regex.Match(messages, @"[0-9A-Z]{5}-[0-9A-Z]{4}-[0-9A-Z]{4}").Value;
        Assert.NotEmpty(first);
        Assert.Equal(HttpStatusCode.OK, (await server.PostCurlAsync("/v1/mfa/verify", $"User=ada@example.com, Type=BACKUP, Code={first.ToLowerInvariant()}")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await server.PostCurlAsync("/v1/mfa/verify", $"User=ada@example.com, Type=BACKUP, Code={first}")).StatusCode);
        var factors = await server.Client.GetStringAsync("/v1/mfa/factors?user=ada@example.com");
        Assert.Contains("\"remaining\":9", factors, StringComparison.Ordinal);
    }
}
