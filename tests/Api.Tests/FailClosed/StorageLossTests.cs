using System.Net;
using DevRift.Hsm.Api.Tests.Factors;
using DevRift.Hsm.Api.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using OtpNet;

namespace DevRift.Hsm.Api.Tests.FailClosed;

/// <summary>The database refuses service: every request answers 503 storage_unavailable, and service resumes by itself.</summary>
public sealed class StorageLossTests
{
    [Fact]
    public async Task Postgres_refusing_connections_fails_closed_and_recovers()
    {
        // Given a server on PostgreSQL with an active authenticator app and a pending email challenge
        var capture = new CapturingLoggerProvider();
        await using var server = await ApplianceServer.StartAsync(Db.Postgres, configure: builder =>
        {
            builder.Services.AddSingleton<ILoggerProvider>(capture);
            builder.Logging.AddFilter<CapturingLoggerProvider>(null, LogLevel.Debug);
        });
        var app = await server.EnrolActiveNowAsync(FactorApi.NewUser("pg-loss"));
        var probeUser = FactorApi.NewUser("pg-probe");
        var probe = await server.EnrolAsync(probeUser); // pending: its first valid code after the outage must verify
        var mailUser = TestUsers.NewEmail("pg-mail");
        var challenge = await server.SendAcceptedAsync(mailUser, "EMAIL");
        var mailCode = await server.LatestCodeAsync(mailUser, "EMAIL");
        Assert.Equal(new Readiness(HttpStatusCode.OK, "ready", "ok", "ok"), await server.ReadyAsync());
        var database = new NpgsqlConnectionStringBuilder(server.ConnectionString).Database!;
        var codes = new List<string> { mailCode };
        var load = new LoadLoops(server);

        // When the database stops accepting connections and the appliance's open ones are terminated
        await using var admin = new NpgsqlConnection(ApplianceServer.PostgresAdmin);
        await admin.OpenAsync();
        Readiness readyWhileDown;
        try
        {
            await ExecuteAsync(admin, $"ALTER DATABASE {database} ALLOW_CONNECTIONS false");
            await ExecuteAsync(admin, $"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}' AND pid <> pg_backend_pid()");

            // Then every kind of request answers 503 storage_unavailable: pooled connections that were cut, then refused opens
            for (var round = 0; round < 5; round++)
            {
                var code = new Totp(app.Seed).ComputeTotp(DateTime.UtcNow);
                codes.Add(code);
                await load.SendAsync("app", () => server.VerifyAppAsync(app.User, code));
                await load.SendAsync("email", () => server.VerifyCodeAsync(mailUser, "EMAIL", mailCode));
                await load.SendAsync("send", () => server.SendCodeAsync(TestUsers.NewEmail("pg-send"), "EMAIL"));
                await load.SendAsync("status", () => server.Client.GetAsync($"/v1/mfa/{challenge.GetProperty("id").GetString()}"));
            }

            readyWhileDown = await server.ReadyAsync();
        }
        finally
        {
            await ExecuteAsync(admin, $"ALTER DATABASE {database} ALLOW_CONNECTIONS true");
        }

        var whileDown = load.Exchanges.ToList();
        Assert.Equal(20, whileDown.Count);
        Assert.All(whileDown, x => Assert.True(x.Status == 503 && x.Code == "storage_unavailable", $"{x.Loop}: {x.Status} {x.Code} while the database refused"));
        Assert.Equal(new Readiness(HttpStatusCode.ServiceUnavailable, "unavailable", "ok", "unavailable"), readyWhileDown);

        // When connections are allowed again, then /readyz and verification recover by themselves within 30 s
        await FailClosedAssertions.EventuallyAsync("readiness after the database returned", TimeSpan.FromSeconds(30),
            async () => await server.ReadyAsync() == new Readiness(HttpStatusCode.OK, "ready", "ok", "ok"));
        await FailClosedAssertions.EventuallyAsync("APP verification after the database returned", TimeSpan.FromSeconds(30), async () =>
        {
            var code = new Totp(probe.Seed).ComputeTotp(DateTime.UtcNow);
            codes.Add(code);
            var answer = await load.SendAsync("app-after", () => server.VerifyAppAsync(probeUser, code));
            Assert.True(answer.Status is HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable, $"{answer.Status}: {answer.Body}");
            return answer.Status == HttpStatusCode.OK;
        });

        // … and nothing was lost or consumed by the outage: the email code sent before it still verifies
        await server.VerifyCodeAsync(mailUser, "EMAIL", mailCode).ExpectVerifiedAsync("EMAIL");

        // … and the logs hold no API key, TOTP secret or code
        var lines = capture.Lines.ToList();
        Assert.Contains(lines, l => l.Contains("storage_unavailable", StringComparison.Ordinal));
        var secrets = new List<(string What, string Value)> { ("test API key", server.TestKey), ("TOTP secret", app.Secret), ("TOTP secret", probe.Secret) };
        secrets.AddRange(codes.Select(c => ("code", c)));
        FailClosedAssertions.AssertNoSecretsIn(lines, secrets);
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}
