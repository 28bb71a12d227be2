using System.Text;
using DevRift.Hsm.Testing;
using Net.Pkcs11Interop.Common;

namespace DevRift.Hsm.Crypto.Tests;

/// <summary>
/// Two connections on one token stand for two nodes sharing an HSM: a rotation or retirement on one reaches the other
/// when it meets data naming a version it has not seen, and through its periodic refresh.
/// </summary>
public sealed class KeyRingRefreshTests
{
    private static readonly byte[] s_body = Encoding.ASCII.GetBytes("sealed outbox body");

    [Fact]
    public void A_node_opens_data_made_under_a_version_it_has_not_seen_by_reading_the_token_once()
    {
        // Given node B connected before node A rotates the seal key
        var options = SoftHsmTokens.CreateToken();
        using var a = HsmConnection.Open(options);
        a.InitializeKeys();
        using var b = HsmConnection.Open(options);
        var changed = new ManualResetEventSlim();
        b.KeysChanged += (_, _) => changed.Set();
        Assert.Equal(1, b.CurrentVersion(KeyPurpose.Seal));
        a.RotateKey(KeyPurpose.Seal);
        var sealedOnA = new Sealer(a).Seal(s_body, "outbox:1");
        Assert.Equal(2, Sealer.VersionOf(sealedOnA));

        // When B opens it
        var opened = new Sealer(b).Open(sealedOnA, "outbox:1");

        // Then it opens, B now seals under v2 too, and B told its listeners the versions changed
        Assert.Equal(s_body, opened);
        Assert.Equal(2, Sealer.VersionOf(new Sealer(b).Seal(s_body, "outbox:2")));
        Assert.True(changed.Wait(TimeSpan.FromSeconds(10)));
        Assert.Equal([1, 2], b.KeyVersions()[KeyPurpose.Seal]);
    }

    [Fact]
    public void A_node_moves_its_new_data_to_another_nodes_rotation_after_the_refresh_interval()
    {
        // Given node B on a clock it controls, refreshing every 30 s
        var options = SoftHsmTokens.CreateToken();
        using var a = HsmConnection.Open(options);
        a.InitializeKeys();
        var clock = new ManualClock();
        options.KeyRefreshInterval = TimeSpan.FromSeconds(30);
        using var b = HsmConnection.Open(options, clock);
        var codesOnB = new OobCodes(new HsmMac(b));

        // When A rotates the code key
        a.RotateKey(KeyPurpose.Code);

        // Then B keeps v1 for new codes until 30 s have passed since it read the token, then uses v2
        Assert.Equal(1, codesOnB.CurrentVersion);
        clock.Advance(TimeSpan.FromSeconds(29));
        Assert.Equal(1, codesOnB.CurrentVersion);
        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(2, codesOnB.CurrentVersion);

        // and within the interval, operations do not read the token again
        var reads = b.KeyRingReads;
        for (var i = 0; i < 200; i++)
        {
            Assert.Equal(2, codesOnB.CurrentVersion);
        }

        Assert.Equal(reads, b.KeyRingReads);

        // and a code derived on B under v1 before still verifies on A
        byte[] nonce = [9, 8, 7];
        var code = codesOnB.Derive("ch_1", "email", nonce, 6, 1);
        Assert.True(new OobCodes(new HsmMac(a)).Verify("ch_1", "email", nonce, 6, 1, code));
    }

    [Fact]
    public void A_version_the_token_does_not_hold_is_refused_as_bad_data()
    {
        // Given a blob whose header names seal v99
        using var hsm = SoftHsmTokens.CreateInitialisedToken();
        var sealer = new Sealer(hsm);
        var blob = sealer.Seal(s_body, "outbox:1");
        blob[4] = 99;

        // Then opening it fails as bad data, every time, after one read of the token in all (not one per attempt)
        var reads = hsm.KeyRingReads;
        for (var i = 0; i < 20; i++)
        {
            Assert.Throws<HsmDataException>(() => sealer.Open(blob, "outbox:1"));
        }

        Assert.Equal(reads + 1, hsm.KeyRingReads);
        Assert.Equal([1], hsm.KeyVersions()[KeyPurpose.Seal]);
        Assert.True(hsm.IsAvailable);
    }

    [Fact]
    public void Retiring_destroys_an_old_version_only()
    {
        // Given seal v1 and v2, a blob under v1, and node B that last saw both
        var options = SoftHsmTokens.CreateToken();
        using var a = HsmConnection.Open(options);
        a.InitializeKeys();
        var oldBlob = new Sealer(a).Seal(s_body, "outbox:1");
        a.RotateKey(KeyPurpose.Seal);
        using var b = HsmConnection.Open(options);
        Assert.Equal([1, 2], b.KeyVersions()[KeyPurpose.Seal]);

        // When A retires v1
        Assert.Throws<InvalidOperationException>(() => a.RetireKey(KeyPurpose.Seal, 2));
        Assert.True(a.RetireKey(KeyPurpose.Seal, 1));
        Assert.False(a.RetireKey(KeyPurpose.Seal, 1));

        // Then the key object is gone from the token, and v1 data fails as bad data on A at once, and on B from its
        // next read of the token (until then B holds its session copy of v1, which no data needs: retirement refuses
        // a version anything still depends on)
        using (var inspector = new TokenInspector(a))
        {
            Assert.Equal(5, inspector.SecretKeys(token: true).Count);
        }

        Assert.Equal([2], a.KeyVersions()[KeyPurpose.Seal]);
        Assert.Throws<HsmDataException>(() => new Sealer(a).Open(oldBlob, "outbox:1"));
        b.ReloadKeys();
        Assert.Throws<HsmDataException>(() => new Sealer(b).Open(oldBlob, "outbox:1"));

        // and v2 goes on serving on B
        var fresh = new Sealer(b).Seal(s_body, "outbox:2");
        Assert.Equal(s_body, new Sealer(a).Open(fresh, "outbox:2"));
    }

    [Fact]
    public void Keys_generated_while_other_threads_read_the_token_are_seen_by_every_connection()
    {
        // Given threads of this process asking the token about itself and signing with its keys without pause (another
        // connection looking for its slot, /admin/v1/hsm, verify traffic): in SoftHSM2 each of these may re-index the
        // token's objects, and a re-index racing a key generation drops the new key from the process's view
        var options = SoftHsmTokens.CreateToken();
        using var a = HsmConnection.Open(options);
        a.InitializeKeys();
        using var reader = HsmConnection.Open(options);
        var mac = new HsmMac(reader);
        using var stop = new CancellationTokenSource();
        var readers = Enumerable.Range(0, 3).Select(i => Task.Run(() =>
        {
            var calls = 0;
            while (!stop.IsCancellationRequested)
            {
                _ = i % 2 == 0 ? reader.DescribeToken().Label : mac.Sign(KeyPurpose.Lookup, s_body).Mac.Length.ToString(System.Globalization.CultureInfo.InvariantCulture);
                calls++;
            }

            return calls;
        })).ToArray();

        // When A rotates the seal key again and again meanwhile
        var missing = new List<int>();
        try
        {
            for (var version = 2; version <= 81; version++)
            {
                Assert.Equal(KeyLabels.Label(KeyPurpose.Seal, version), a.RotateKey(KeyPurpose.Seal));
                reader.ReloadKeys();
                if (!reader.KeyVersions()[KeyPurpose.Seal].Contains(version))
                {
                    missing.Add(version);
                }
            }
        }
        finally
        {
            stop.Cancel();
        }

        // Then every new version was visible to the other connection right away, and is to a fresh one
        Assert.All(readers, r => Assert.True(r.Result > 0));
        Assert.Empty(missing);
        using var fresh = HsmConnection.Open(options);
        Assert.Equal(Enumerable.Range(1, 81), fresh.KeyVersions()[KeyPurpose.Seal]);
        Assert.Equal(Enumerable.Range(1, 81), a.KeyVersions()[KeyPurpose.Seal]);
    }

    [Theory]
    [InlineData(KeyPurpose.SeedKek)]
    [InlineData(KeyPurpose.Code)]
    [InlineData(KeyPurpose.Lookup)]
    [InlineData(KeyPurpose.Seal)]
    [InlineData(KeyPurpose.Audit)]
    public void Every_rotated_key_is_generated_like_its_first_version(KeyPurpose purpose)
    {
        // Given a token whose key for this purpose was rotated
        using var hsm = SoftHsmTokens.CreateInitialisedToken();
        var label = hsm.RotateKey(purpose);
        Assert.Equal(KeyLabels.Label(purpose, 2), label);

        // When v1 and v2 are read from outside the layer
        using var inspector = new TokenInspector(hsm);
        var v1 = inspector.KeyByLabel(KeyLabels.Label(purpose, 1));
        var v2 = inspector.KeyByLabel(label);

        // Then v2 is a sensitive, never-extractable token object generated on the token, with v1's type and usage
        Assert.True(inspector.Bool(v2, CKA.CKA_TOKEN));
        Assert.True(inspector.Bool(v2, CKA.CKA_SENSITIVE));
        Assert.True(inspector.Bool(v2, CKA.CKA_ALWAYS_SENSITIVE));
        Assert.False(inspector.Bool(v2, CKA.CKA_EXTRACTABLE));
        Assert.True(inspector.Bool(v2, CKA.CKA_NEVER_EXTRACTABLE));
        Assert.True(inspector.Bool(v2, CKA.CKA_LOCAL));
        Assert.Equal(CKR.CKR_ATTRIBUTE_SENSITIVE, inspector.ReadValue(v2).Rv);
        Assert.Equal(inspector.ULong(v1, CKA.CKA_KEY_TYPE), inspector.ULong(v2, CKA.CKA_KEY_TYPE));
        Assert.Equal(inspector.ULong(v1, CKA.CKA_VALUE_LEN), inspector.ULong(v2, CKA.CKA_VALUE_LEN));
        foreach (var usage in (CKA[])[CKA.CKA_SIGN, CKA.CKA_VERIFY, CKA.CKA_ENCRYPT, CKA.CKA_DECRYPT, CKA.CKA_WRAP, CKA.CKA_UNWRAP, CKA.CKA_DERIVE])
        {
            Assert.Equal(inspector.Bool(v1, usage), inspector.Bool(v2, usage));
        }
    }

    private sealed class ManualClock : TimeProvider
    {
        private DateTimeOffset _now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() => _now;

        public void Advance(TimeSpan by) => _now += by;
    }
}
