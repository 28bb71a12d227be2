using System.Text;
using DevRift.Hsm.Crypto;
using DevRift.Hsm.Testing;

namespace DevRift.Hsm.Crypto.Tests;

[Collection(nameof(ModuleReinitialising))]
public sealed class HsmRecoveryTests
{
    [Fact]
    public void Operation_after_sessions_closed_behind_its_back_recovers()
    {
        using var hsm = SoftHsmTokens.CreateInitialisedToken();
        var mac = new HsmMac(hsm);
        var before = mac.Sign(KeyPurpose.Lookup, Encoding.ASCII.GetBytes("x"));

        // Given every session of the token is closed under the layer
        hsm.CloseAllSessionsForTesting();

        // When the next operation runs, then it reconnects and gives the same MAC
        var after = mac.Sign(KeyPurpose.Lookup, Encoding.ASCII.GetBytes("x"));
        Assert.Equal(before.Mac, after.Mac);
        Assert.True(hsm.IsAvailable);
    }

    [Fact]
    public void Closing_one_connection_leaves_another_connection_to_the_same_token_logged_in()
    {
        // Given two connections of this process to one token (a second node, or the command line beside the server)
        using var server = SoftHsmTokens.CreateInitialisedToken();
        var cli = HsmConnection.Open(SoftHsmTokens.Options(server.TokenLabel));
        Assert.Equal(Net.Pkcs11Interop.Common.CKS.CKS_RW_USER_FUNCTIONS, server.MainSessionStateForTesting());

        // When one of them is closed
        cli.Dispose();

        // Then the other is still logged in (C_Logout is per token and would have logged it out too)
        Assert.Equal(Net.Pkcs11Interop.Common.CKS.CKS_RW_USER_FUNCTIONS, server.MainSessionStateForTesting());
        using var again = HsmConnection.Open(SoftHsmTokens.Options(server.TokenLabel));
        Assert.Equal(server.KeyVersions()[KeyPurpose.SeedKek], again.KeyVersions()[KeyPurpose.SeedKek]);
    }

    [Fact]
    public async Task Connections_opened_while_another_reinitialises_the_module_find_their_tokens()
    {
        // Given a module being re-initialised over and over (as a connection recovering a lost token does)
        using var first = SoftHsmTokens.CreateInitialisedToken();
        var module = Pkcs11Module.Get(SoftHsmTokens.ModulePath, SoftHsmTokens.ConfigPath);
        using var stop = new CancellationTokenSource();
        var reinitialising = Task.Run(() =>
        {
            var rounds = 0;
            while (!stop.IsCancellationRequested)
            {
                module.Reinitialize(module.Epoch);
                rounds++;

                // A breath between rounds: a writer re-entering at once starves the openers' read locks
                // (ReaderWriterLockSlim prefers writers), which made this test take minutes on two cores, and a
                // recovering connection re-initialises at most once per reconnect interval anyway.
                Thread.Sleep(1);
            }

            return rounds;
        });

        // When other tokens are opened meanwhile
        var failures = new List<Exception>();
        var opened = 0;
        try
        {
            for (var i = 0; i < 12; i++)
            {
                try
                {
                    using var hsm = HsmConnection.Open(SoftHsmTokens.CreateToken());
                    opened++;
                }
                catch (HsmException e)
                {
                    failures.Add(e);
                }
            }
        }
        finally
        {
            await stop.CancelAsync();
        }

        // Then every one of them is found (none is reported missing because a C_Finalize ran under its lookup)
        Assert.True(await reinitialising > 0);
        Assert.Empty(failures);
        Assert.Equal(12, opened);
    }

    [Fact]
    public void Token_directory_moved_away_reports_unavailable_and_recovers_when_back()
    {
        using var hsm = SoftHsmTokens.CreateInitialisedToken();
        var label = hsm.TokenLabel;
        var mac = new HsmMac(hsm);
        var data = Encoding.ASCII.GetBytes("payload");
        var expected = mac.Sign(KeyPurpose.Audit, data).Mac;
        var dir = SoftHsmTokens.TokenDirectory(label);
        var away = dir + ".away";

        Directory.Move(dir, away);
        try
        {
            // The connection computes with session copies of the keys, which SoftHSM2 keeps in memory: what notices
            // the store is gone is the watch on its directory, which looks at most every 250 ms.
            var until = DateTime.UtcNow.AddSeconds(5);
            Exception? e;
            while ((e = Record.Exception(() => mac.Sign(KeyPurpose.Audit, data))) is null && DateTime.UtcNow < until)
            {
                Thread.Sleep(50);
            }

            Assert.IsType<HsmUnavailableException>(e);
            Assert.False(hsm.Probe());
        }
        finally
        {
            Directory.Move(away, dir);
        }

        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!hsm.Probe() && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(100);
        }

        Assert.Equal(expected, mac.Sign(KeyPurpose.Audit, data).Mac);
    }
}

[CollectionDefinition(nameof(ModuleReinitialising), DisableParallelization = true)]
public sealed class ModuleReinitialising;

/// <summary>High availability: a replica of the token (the same keys under another label) takes over when the token in use stops serving.</summary>
[Collection(nameof(ModuleReinitialising))]
public sealed class HsmFailoverTests
{
    [Fact]
    public void When_the_token_in_use_goes_away_the_node_fails_over_to_its_replica_and_old_data_still_opens()
    {
        // Given a token, data made under its keys, and a replica of it configured as the failover token
        var options = SoftHsmTokens.CreateToken();
        var replica = options.TokenLabel + "-r";
        options.FailoverTokenLabels.Add(replica);
        using var hsm = HsmConnection.Open(options);
        hsm.InitializeKeys();
        var sealer = new Sealer(hsm);
        var vault = new SeedVault(hsm);
        var seed = System.Security.Cryptography.RandomNumberGenerator.GetBytes(20);
        var wrapped = vault.Wrap(seed);
        var sealedBlob = sealer.Seal([9, 9], "ctx");
        SoftHsmTokens.CloneToken(options.TokenLabel, replica);
        Assert.Equal(options.TokenLabel, hsm.ActiveTokenLabel);

        // When the token in use stops serving (its store is gone)
        // (out of the token directory: SoftHSM2 would still find it in any folder there)
        var dir = SoftHsmTokens.TokenDirectory(options.TokenLabel);
        var away = Path.Combine(SoftHsmTokens.Root, "away-" + Path.GetFileName(dir));
        Directory.Move(dir, away);
        try
        {
            // Then the node serves from the replica, by itself: the old data opens there, new data is made there
            var deadline = DateTime.UtcNow.AddSeconds(15);
            var seen = new HashSet<string>();
            hsm.StateChanged += (_, e) => { lock (seen) { seen.Add($"{e.Available}:{e.Reason}"); } };
            while (DateTime.UtcNow < deadline)
            {
                if (Record.Exception(() => sealer.Seal([1], "x")) is { } failure)
                {
                    lock (seen)
                    {
                        seen.Add(failure.Message);
                    }
                }
                else if (hsm.ActiveTokenLabel == replica)
                {
                    break;
                }

                Thread.Sleep(100);
            }

            Assert.True(replica == hsm.ActiveTokenLabel, string.Join(" | ", seen));

            Assert.True(replica == hsm.ActiveTokenLabel, $"serving {hsm.ActiveTokenLabel}: {Record.Exception(() => sealer.Open(sealedBlob, "ctx"))}");
            Assert.Equal([9, 9], sealer.Open(sealedBlob, "ctx"));
            Assert.Equal(ReferenceOtp.Hmac(OtpNet.OtpHashMode.Sha1, seed, [1]), vault.ComputeHmac(wrapped, OtpNet.OtpHashMode.Sha1, [1]));
            Assert.Equal([7], sealer.Open(sealer.Seal([7], "new"), "new"));
        }
        finally
        {
            Directory.Move(away, dir);
        }
    }
}
