using System.Diagnostics;
using System.Net.Sockets;
using System.Security.Cryptography;
using DevRift.Hsm.Testing;

namespace DevRift.Hsm.Crypto.Tests;

/// <summary>
/// A network HSM that misbehaves, played by the p11-kit server forwarding a SoftHSM2 token: it goes away, it stops
/// answering, an endpoint accepts connections and drops them. Every operation fails as <see cref="HsmUnavailableException"/>
/// within the deadline (never another exception, never a hang), and the connection serves again by itself once the
/// module does — no restart.
/// </summary>
[Collection(nameof(ForwardedModule))]
public sealed class FlakyHsmTests
{
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(1);

    [Fact]
    public void A_module_that_goes_away_fails_closed_and_serves_again_when_it_is_back()
    {
        var server = P11KitServer.Shared;
        using var hsm = Open(server);
        var sealer = new Sealer(hsm);
        Assert.Equal([7], sealer.Open(sealer.Seal([7], "c"), "c"));

        server.Kill();
        try
        {
            AssertFailsClosedWithin(() => sealer.Seal([7], "c"), TimeSpan.FromSeconds(3));
            AssertFailsClosedWithin(() => sealer.Seal([7], "c"), TimeSpan.FromSeconds(3));
        }
        finally
        {
            server.Start();
        }

        AssertServesAgain(() => sealer.Open(sealer.Seal([8], "c"), "c"));
    }

    [Fact]
    public void A_module_that_stops_answering_gets_503_within_the_deadline_and_fails_fast_until_it_answers()
    {
        var server = P11KitServer.Shared;
        using var hsm = Open(server);
        var vault = new SeedVault(hsm);
        var wrapped = vault.Wrap(RandomNumberGenerator.GetBytes(20));
        vault.ComputeHmac(wrapped, OtpNet.OtpHashMode.Sha1, [1]);

        server.Pause(true);
        try
        {
            // The first call waits out the deadline; the next ones do not wait at all
            AssertFailsClosedWithin(() => new Sealer(hsm).Seal([1], "c"), s_deadline + TimeSpan.FromSeconds(1));
            var fast = Stopwatch.StartNew();
            Assert.Throws<HsmUnavailableException>(() => vault.ComputeHmac(wrapped, OtpNet.OtpHashMode.Sha1, [2]));
            Assert.True(fast.Elapsed < s_deadline, $"the second call waited {fast.Elapsed}");
        }
        finally
        {
            server.Pause(false);
        }

        AssertServesAgain(() => vault.ComputeHmac(wrapped, OtpNet.OtpHashMode.Sha1, [3]));
    }

    [Fact]
    public async Task An_endpoint_that_accepts_and_drops_connections_fails_closed_and_the_real_one_is_picked_up_after()
    {
        var server = P11KitServer.Shared;
        using var hsm = Open(server);
        var sealer = new Sealer(hsm);
        Assert.Equal([5], sealer.Open(sealer.Seal([5], "c"), "c"));

        server.Kill();
        using (var dropper = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            dropper.Bind(new UnixDomainSocketEndPoint(server.SocketPath));
            dropper.Listen(16);
            using var stop = new CancellationTokenSource();
            var accepting = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    try
                    {
                        using var accepted = await dropper.AcceptAsync(stop.Token);
                        accepted.Close();
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                }
            });
            var until = DateTime.UtcNow.AddSeconds(2);
            while (DateTime.UtcNow < until)
            {
                AssertFailsClosedWithin(() => sealer.Seal([5], "c"), TimeSpan.FromSeconds(3));
                await Task.Delay(100);
            }

            await stop.CancelAsync();
            await accepting.WaitAsync(TimeSpan.FromSeconds(5));
        }

        File.Delete(server.SocketPath);
        server.Start();
        AssertServesAgain(() => sealer.Open(sealer.Seal([6], "c"), "c"));
    }

    private static HsmConnection Open(P11KitServer server)
    {
        var hsm = HsmConnection.Open(server.Options(s_deadline));
        hsm.InitializeKeys();
        return hsm;
    }

    private static void AssertFailsClosedWithin(Action operation, TimeSpan limit)
    {
        var watch = Stopwatch.StartNew();
        var e = Record.Exception(operation);
        Assert.True(e is HsmUnavailableException, $"expected HsmUnavailableException, got {e?.GetType().Name ?? "success"}: {e}");
        Assert.True(watch.Elapsed < limit, $"failing took {watch.Elapsed}");
    }

    private static void AssertServesAgain(Action operation)
    {
        var until = DateTime.UtcNow.AddSeconds(15);
        while (true)
        {
            try
            {
                operation();
                return;
            }
            catch (HsmUnavailableException) when (DateTime.UtcNow < until)
            {
                Thread.Sleep(100);
            }
        }
    }
}
