using System.Diagnostics;
using System.Net;
using DevRift.Hsm.Api.Tests.Factors;
using DevRift.Hsm.Api.Tests.Infrastructure;
using DevRift.Hsm.Crypto;
using DevRift.Hsm.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OtpNet;
using Xunit.Abstractions;

namespace DevRift.Hsm.Api.Tests.FailClosed;

/// <summary>The HSM goes away under load: every request answers 503 hsm_unavailable, and service resumes by itself.</summary>
public sealed class HsmLossTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Hsm_loss_and_return_under_concurrent_load()
    {
        // Given a server (SQLite) whose logs are captured, with lockouts relaxed so that replayed codes do not lock
        var capture = new CapturingLoggerProvider();
        await using var server = await ApplianceServer.StartAsync(Db.Sqlite, configure: builder =>
        {
            builder.Services.AddSingleton<ILoggerProvider>(capture);
            builder.Logging.AddFilter<CapturingLoggerProvider>(null, LogLevel.Debug);
        });
        await server.PatchSettingsAsync("""{"lockout_threshold":100,"lockout_seconds":1,"hard_lock_threshold":100000}""");
        var tokenDirectory = SoftHsmTokens.TokenDirectory(server.Services.GetRequiredService<HsmConnection>().TokenLabel);

        // … users with an active authenticator app, one with a pending enrolment kept aside to probe recovery, and an email challenge
        var appUsers = new List<AppUser>();
        for (var i = 0; i < 4; i++)
        {
            appUsers.Add(await server.EnrolActiveNowAsync(FactorApi.NewUser("hsm-loss")));
        }

        var probeUser = FactorApi.NewUser("hsm-probe");
        var probeEnrolment = await server.EnrolAsync(probeUser);
        var probe = new AppUser(probeUser, probeEnrolment.Seed, probeEnrolment.Secret);
        var mailUser = TestUsers.NewEmail("hsm-mail");
        await server.SendAcceptedAsync(mailUser, "EMAIL");
        var mailCode = await server.LatestCodeAsync(mailUser, "EMAIL");

        // … and concurrent client loops: valid APP codes, email send/read/verify cycles, a wrong email code, factor reads
        var load = new LoadLoops(server);
        load.Codes.Add(mailCode);
        var appIteration = 0;
        load.Start("app", _ => load.AppVerifyAsync("app", appUsers, Interlocked.Increment(ref appIteration)));
        load.Start("email-cycle-1", _ => load.EmailCycleAsync("email-cycle-1"));
        load.Start("email-cycle-2", _ => load.EmailCycleAsync("email-cycle-2"));
        load.Start("email-wrong", _ => load.SendAsync("email-wrong", () => server.VerifyCodeAsync(mailUser, "EMAIL", ApiTestExtensions.WrongCode(mailCode))));
        load.Start("factors", _ => load.SendAsync("factors", () => server.Client.GetAsync($"/v1/mfa/factors?user={Uri.EscapeDataString(appUsers[0].User)}")));
        await FailClosedAssertions.EventuallyAsync("a verification served under load", TimeSpan.FromSeconds(30),
            () => Task.FromResult(load.Exchanges.Any(x => x.Status == 200 && x.Loop.StartsWith("email-cycle", StringComparison.Ordinal))));

        output.WriteLine($"{DateTime.UtcNow:O} load running: {load.Exchanges.Count} exchanges");
        // When the token's directory is moved away
        var away = tokenDirectory + ".away";
        long movedAway, movingBack;
        Readiness readyWhileAway;
        Directory.Move(tokenDirectory, away);
        try
        {
            movedAway = Stopwatch.GetTimestamp();

            // Then /readyz says the HSM is down (storage is fine) …
            readyWhileAway = await server.ReadyAsync();

            // … while the loops keep going: wait until every loop has had exchanges that began after the move
            await FailClosedAssertions.EventuallyAsync("load during the outage", TimeSpan.FromSeconds(30), () => Task.FromResult(
                load.Exchanges.Where(x => x.Started > movedAway).GroupBy(x => x.Loop).Count(g => g.Count() >= 10) == 5));
            movingBack = Stopwatch.GetTimestamp();
            output.WriteLine($"{DateTime.UtcNow:O} moving back after {Stopwatch.GetElapsedTime(movedAway, movingBack).TotalMilliseconds:F0} ms: {load.Exchanges.Count} exchanges");
        }
        finally
        {
            Directory.Move(away, tokenDirectory);
        }

        var movedBack = Stopwatch.GetTimestamp();
        Assert.Equal(new Readiness(HttpStatusCode.ServiceUnavailable, "unavailable", "unavailable", "ok"), readyWhileAway);

        // When it is back, then verification and /readyz recover by themselves within 30 s
        var recoveredIn = await FailClosedAssertions.EventuallyAsync("verification after the HSM returned", TimeSpan.FromSeconds(30), async () =>
        {
            var code = new Totp(probe.Seed).ComputeTotp(DateTime.UtcNow);
            load.Codes.Add(code);
            var answer = await load.SendAsync("probe", () => server.VerifyAppAsync(probe.User, code));
            return answer.Status == HttpStatusCode.OK;
        });
        output.WriteLine($"{DateTime.UtcNow:O} verification recovered in {recoveredIn.TotalMilliseconds:F0} ms");
        await FailClosedAssertions.EventuallyAsync("readiness after the HSM returned", TimeSpan.FromSeconds(30),
            async () => await server.ReadyAsync() == new Readiness(HttpStatusCode.OK, "ready", "ok", "ok"));

        // … and the loops are served again (an email cycle completes after the return)
        await FailClosedAssertions.EventuallyAsync("an email cycle after the HSM returned", TimeSpan.FromSeconds(30),
            () => Task.FromResult(load.Exchanges.Any(x => x.Started > movedBack && x.Status == 200 && x.Loop.StartsWith("email-cycle", StringComparison.Ordinal))));
        await load.StopAsync();
        output.WriteLine($"{DateTime.UtcNow:O} stopped: {load.Exchanges.Count} exchanges");

        // Then every exchange that began after the move and ended before the move back was 503 hsm_unavailable: no 200, no 500
        var whileAway = load.Exchanges.Where(x => x.Started > movedAway && x.Ended < movingBack).ToList();
        output.WriteLine($"{whileAway.Count} exchanges while the token was away: {string.Join(", ", whileAway.GroupBy(x => $"{x.Status} {x.Code}").Select(g => $"{g.Count()} × {g.Key}"))}");
        Assert.True(whileAway.Count >= 25, $"only {whileAway.Count} exchanges while the token was away");
        Assert.All(whileAway, x => Assert.True(x.Status == 503 && x.Code == "hsm_unavailable", $"{x.Loop}: {x.Status} {x.Code} while the HSM was away"));

        // … no exchange of the whole run was a 500, and every 503 named the HSM
        var all = load.Exchanges.ToList();
        Assert.DoesNotContain(all, x => x.Status >= 500 && x.Status != 503);
        Assert.All(all.Where(x => x.Status == 503), x => Assert.Equal("hsm_unavailable", x.Code));
        Assert.Contains(all, x => x.Status == 200 && x.Started > movedBack);
        Assert.True(recoveredIn < TimeSpan.FromSeconds(30));

        // … and the logs of the whole episode hold no API key, TOTP secret or code
        var secrets = new List<(string What, string Value)> { ("test API key", server.TestKey), ("test API key secret part", server.TestKey[8..]) };
        secrets.AddRange(appUsers.Append(probe).Select(u => ("TOTP secret", u.Secret)));
        secrets.AddRange(load.Codes.Select(c => ("code", c)));
        var lines = capture.Lines.ToList();
        Assert.Contains(lines, l => l.Contains("hsm_unavailable", StringComparison.Ordinal));
        FailClosedAssertions.AssertNoSecretsIn(lines, secrets);
    }
}
