using System.Net;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests;

public sealed class SmokeTests
{
    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task Documented_email_send_then_verify_succeeds_once(Db db)
    {
        await using var server = await ApplianceServer.StartAsync(db);
        var send = await server.PostCurlAsync("/v1/mfa", "User=ada@example.com, Type=EMAIL");
        Assert.Equal(HttpStatusCode.Accepted, send.StatusCode);
        var code = await server.LatestCodeAsync("ada@example.com", "EMAIL");
        var ok = await server.PostCurlAsync("/v1/mfa/verify", $"User=ada@example.com, Type=EMAIL, Code={code}");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        var again = await server.PostCurlAsync("/v1/mfa/verify", $"User=ada@example.com, Type=EMAIL, Code={code}");
        Assert.Equal(HttpStatusCode.Unauthorized, again.StatusCode);
    }
}
