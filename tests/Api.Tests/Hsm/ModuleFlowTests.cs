using System.Net;
using System.Net.Http.Json;
using DevRift.Hsm.Api.Tests.Factors;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Crypto;
using DevRift.Hsm.Testing;

namespace DevRift.Hsm.Api.Tests.Hsm;

/// <summary>The p11-kit server is one per process: the classes that use it run one at a time.</summary>
[CollectionDefinition(nameof(ForwardedModuleServers), DisableParallelization = true)]
public sealed class ForwardedModuleServers;

/// <summary>
/// The whole flow over HTTP on each PKCS#11 implementation, in the configuration that works there (README's table):
/// init, an email code, an authenticator app enrolled and verified, backup codes, every purpose's key rotated, and
/// all of it again on the new keys, with the old app seed still verifying and the audit chain intact.
/// </summary>
[Collection(nameof(ForwardedModuleServers))]
public sealed class ModuleFlowTests
{
    public static TheoryData<string> Modules => new() { "softhsm2", "opencryptoki", "p11-kit" };

    [Theory]
    [MemberData(nameof(Modules))]
    public async Task Init_codes_app_backup_and_rotation_of_every_purpose_work_end_to_end(string module)
    {
        HsmOptions options = module switch
        {
            "softhsm2" => SoftHsmTokens.CreateToken(),
            "opencryptoki" => HsmModules.OpenCryptoki('B'),
            _ => P11KitServer.Shared.Options(),
        };
        await using var server = await ApplianceServer.StartAsync(hsmOptions: options);
        var app = await FlowAsync(server, module);

        using var admin = server.NewClient(server.OperatorToken);
        foreach (var purpose in new[] { "seed-kek", "code", "lookup", "seal", "audit" })
        {
            using var rotated = await admin.PostAsJsonAsync("/admin/v1/hsm/rotate", new { purpose });
            Assert.True(rotated.StatusCode == HttpStatusCode.Created, $"{module}: rotate {purpose}: {await rotated.Content.ReadAsStringAsync()}");
        }

        // The seed enrolled before the rotation still verifies (at the next step: the current one is used)
        var next = new OtpNet.Totp(OtpNet.Base32Encoding.ToBytes(app.Secret)).ComputeTotp(DateTime.UtcNow.AddSeconds(30));
        using (var again = await server.PostCurlAsync("/v1/mfa/verify", $"User={app.User}, Type=APP, Code={next}"))
        {
            Assert.True((await again.AssertJsonAsync(HttpStatusCode.OK, "verification")).GetProperty("valid").GetBoolean());
        }

        await FlowAsync(server, module);
        using var chain = await admin.GetAsync("/admin/v1/audit/verify");
        Assert.True((await chain.AssertJsonAsync(HttpStatusCode.OK)).GetProperty("valid").GetBoolean(), module);
    }

    private static async Task<(string User, string Secret)> FlowAsync(ApplianceServer server, string module)
    {
        var user = TestUsers.NewEmail(module.Replace("-", "", StringComparison.Ordinal));
        await server.SendAcceptedAsync(user, "EMAIL");
        using (var verified = await server.VerifyCodeAsync(user, "EMAIL", await server.LatestCodeAsync(user, "EMAIL")))
        {
            Assert.True((await verified.AssertJsonAsync(HttpStatusCode.OK, "verification")).GetProperty("valid").GetBoolean());
        }

        using var enrol = await server.PostCurlAsync("/v1/mfa/app", $"User={user}");
        var secret = (await enrol.AssertJsonAsync(HttpStatusCode.OK)).GetProperty("secret").GetString()!;
        var code = new OtpNet.Totp(OtpNet.Base32Encoding.ToBytes(secret)).ComputeTotp(DateTime.UtcNow);
        using (var app = await server.PostCurlAsync("/v1/mfa/verify", $"User={user}, Type=APP, Code={code}"))
        {
            Assert.True((await app.AssertJsonAsync(HttpStatusCode.OK, "verification")).GetProperty("valid").GetBoolean());
        }

        using (var backup = await server.PostCurlAsync("/v1/mfa/backup", $"User={user}, Type=EMAIL"))
        {
            Assert.Equal(HttpStatusCode.Accepted, backup.StatusCode);
        }

        var backupCode = (await server.LatestBackupCodesAsync(user))[0];
        using (var used = await server.PostCurlAsync("/v1/mfa/verify", $"User={user}, Type=BACKUP, Code={backupCode}"))
        {
            Assert.True((await used.AssertJsonAsync(HttpStatusCode.OK, "verification")).GetProperty("valid").GetBoolean());
        }

        return (user, secret);
    }
}
