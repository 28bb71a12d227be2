using System.Globalization;
using System.Text;
using Dapper;
using DevRift.Hsm.Api.Tests.Factors;
using DevRift.Hsm.Api.Tests.Infrastructure;

namespace DevRift.Hsm.Api.Tests.Audit;

/// <summary>No secret reaches audit_log, whichever event recorded it.</summary>
public sealed class AuditSecrecyTests
{
    [Theory]
    [InlineData(Db.Sqlite)]
    [InlineData(Db.Postgres)]
    public async Task No_key_token_code_backup_code_or_totp_secret_appears_in_any_column(Db db)
    {
        // Given every kind of event, each carrying secrets in its request or response
        await using var server = await ApplianceServer.StartAsync(db, fakeClock: true);
        var secrets = new List<string> { server.TestKey, server.OperatorToken };
        var user = FactorApi.NewUser("secrecy");

        await server.SendAcceptedAsync(user, "EMAIL");
        var code = await server.LatestCodeAsync(user, "EMAIL");
        secrets.Add(code);
        (await server.VerifyCodeAsync(user, "EMAIL", ApiTestExtensions.WrongCode(code))).Dispose();
        (await server.VerifyCodeAsync(user, "EMAIL", code)).Dispose();

        var e = await server.EnrolActiveAsync(user);
        secrets.AddRange([e.Secret, e.OtpAuthUri, Rfc6238.CodeAt(e.Seed, server.Now())]);
        server.Clock!.Advance(TimeSpan.FromSeconds(30));
        var wrongTotp = Rfc6238.WrongCode(e.Seed, server.Now());
        secrets.Add(wrongTotp);
        for (var i = 0; i < 5; i++)
        {
            (await server.VerifyAppAsync(user, wrongTotp)).Dispose();
        }

        await server.GenerateBackupAsync(user);
        var backups = await server.LatestBackupCodesAsync(user);
        secrets.AddRange(backups);
        secrets.AddRange(backups.Select(FactorApi.Normalised));
        (await server.VerifyBackupAsync(user, backups[0])).Dispose();
        (await server.VerifyBackupAsync(user, "0000-0000-0000")).Dispose();

        var key = await server.CreateApiKeyAsync(server.ApplicationId, "live");
        secrets.Add(key.Secret);
        using (var admin = server.AdminClient())
        {
            (await admin.DeleteAsync($"/admin/v1/applications/{server.ApplicationId}/api-keys/{key.Id}")).Dispose();
        }

        const string wrongKey = "sk_test_ZZZZZZZZZZabcdefghijklmnopqrstuvwxyz012345";
        const string wrongToken = "adm_ZZZZZZZZZZabcdefghijklmnopqrstuvwxyz012345";
        secrets.AddRange([wrongKey, wrongToken, key.Secret[^32..], server.TestKey[^32..], server.OperatorToken[^32..]]);
        foreach (var bearer in (string[])[wrongKey, key.Secret, wrongToken])
        {
            using var client = server.NewClient(bearer);
            (await client.GetAsync(bearer.StartsWith("adm_", StringComparison.Ordinal) ? "/admin/v1/applications" : "/v1/mfa/factors?user=a@example.com")).Dispose();
        }

        // When every column of every audit row is read as text (once what is pending is chained)
        await server.ChainAuditAsync();
        await using var c = await server.OpenDatabaseAsync();
        var rows = (await c.QueryAsync("SELECT * FROM audit_log")).Cast<IDictionary<string, object?>>().ToList();
        var events = rows.Select(r => (string)r["event"]!).ToHashSet();
        Assert.Superset(new HashSet<string>
        {
            "challenge.send", "verification", "app_factor.enrol", "app_factor.confirm", "lockout.engaged", "backup_codes.generate",
            "api_key.create", "api_key.revoke", "api_key.failed", "operator.auth_failed",
        }, events);

        // Then none of the secrets is there, in any column
        foreach (var row in rows)
        {
            foreach (var (column, value) in row)
            {
                var text = value switch
                {
                    null => "",
                    byte[] bytes => Convert.ToHexString(bytes) + " " + Encoding.UTF8.GetString(bytes),
                    IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
                    _ => value.ToString() ?? "",
                };
                foreach (var secret in secrets)
                {
                    Assert.False(text.Contains(secret, StringComparison.OrdinalIgnoreCase), $"audit_log.{column} of seq {row["seq"]} contains a secret");
                }
            }
        }
    }
}
