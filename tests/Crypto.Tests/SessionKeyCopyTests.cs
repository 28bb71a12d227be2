using System.Security.Cryptography;
using System.Text;
using DevRift.Hsm.Testing;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using OtpNet;

namespace DevRift.Hsm.Crypto.Tests;

/// <summary>
/// The connection computes with session copies of the token's keys (SoftHSM2 re-reads a token object's file on every
/// use): each copy is made inside the HSM, as protected as the key it copies, made once per key (not per reload), and
/// destroyed when its key leaves the token, here or on another node. One token per test.
/// </summary>
public sealed class SessionKeyCopyTests
{
    private static readonly byte[] s_data = Encoding.ASCII.GetBytes("counter!");

    [Fact]
    public void Every_token_key_is_used_through_a_session_copy_as_protected_as_the_key()
    {
        // Given an initialised token
        using var hsm = SoftHsmTokens.CreateInitialisedToken();
        using var inspector = new TokenInspector(hsm);

        // When its token keys and the session copies of this process are listed
        var tokenLabels = inspector.SecretKeys(token: true).Select(inspector.Label).Where(l => l.StartsWith("devrift.", StringComparison.Ordinal)).Order().ToList();
        var copies = inspector.KeyCopies();

        // Then every token key has exactly one copy, with its label, private, sensitive and never extractable
        Assert.NotEmpty(tokenLabels);
        Assert.Equal(tokenLabels, copies.Select(c => c.Label).Order().ToList());
        foreach (var (label, copy) in copies)
        {
            Assert.False(inspector.Bool(copy, CKA.CKA_TOKEN), label);
            Assert.True(inspector.Bool(copy, CKA.CKA_PRIVATE), label);
            Assert.True(inspector.Bool(copy, CKA.CKA_SENSITIVE), label);
            Assert.False(inspector.Bool(copy, CKA.CKA_EXTRACTABLE), label);
            Assert.Equal(CKR.CKR_ATTRIBUTE_SENSITIVE, inspector.ReadValue(copy).Rv);
            Assert.Equal(inspector.Bool(inspector.KeyByLabel(label), CKA.CKA_SIGN), inspector.Bool(copy, CKA.CKA_SIGN));
        }

        // And the ring's keys are those copies, not the token objects
        var copyIds = copies.Select(c => c.Handle.ObjectId).ToHashSet();
        foreach (var purpose in KeyLabels.All)
        {
            var (version, entry) = hsm.Execute(ctx => ctx.Keys.CurrentEntry(purpose));
            Assert.Contains(entry.Handle.ObjectId, copyIds);
            Assert.Equal(inspector.KeyByLabel(KeyLabels.Label(purpose, version)).ObjectId, entry.TokenHandle.ObjectId);
        }

        Assert.Equal(copies.Count, hsm.Execute(ctx => ctx.Keys.SessionCopies));
    }

    [Fact]
    public void A_reload_keeps_the_copies_it_has_and_makes_none()
    {
        // Given a connection and the copies it made
        using var hsm = SoftHsmTokens.CreateInitialisedToken();
        using var inspector = new TokenInspector(hsm);
        var before = inspector.KeyCopies().Select(c => c.Handle.ObjectId).Order().ToList();
        Assert.NotEmpty(before);
        var seedKek = hsm.Execute(ctx => ctx.Keys.Current(KeyPurpose.SeedKek).Handle.ObjectId);

        // When the key ring is read from the token again, many times
        for (var i = 0; i < 20; i++)
        {
            hsm.ReloadKeys();
        }

        // Then the HSM holds the same copies, and the ring still uses them
        Assert.Equal(before, inspector.KeyCopies().Select(c => c.Handle.ObjectId).Order().ToList());
        Assert.Equal(seedKek, hsm.Execute(ctx => ctx.Keys.Current(KeyPurpose.SeedKek).Handle.ObjectId));
        var vault = new SeedVault(hsm);
        var seed = RandomNumberGenerator.GetBytes(20);
        Assert.Equal(ReferenceOtp.Hmac(OtpHashMode.Sha1, seed, s_data), vault.ComputeHmac(vault.Wrap(seed), OtpHashMode.Sha1, s_data));
    }

    [Fact]
    public void A_rotated_key_gets_a_copy_and_a_retired_key_loses_it()
    {
        // Given MACs made under lookup v1
        using var hsm = SoftHsmTokens.CreateInitialisedToken();
        using var inspector = new TokenInspector(hsm);
        var mac = new HsmMac(hsm);
        var v1 = mac.Sign(KeyPurpose.Lookup, s_data);

        // When the lookup key is rotated
        hsm.RotateKey(KeyPurpose.Lookup);

        // Then v2 has its copy, new MACs use it, and v1 still verifies through its own
        Assert.Single(inspector.KeyCopies(), c => c.Label == "devrift.lookup.v2");
        Assert.Single(inspector.KeyCopies(), c => c.Label == "devrift.lookup.v1");
        Assert.Equal(2, mac.Sign(KeyPurpose.Lookup, s_data).Version);
        Assert.Equal(v1.Mac, mac.Sign(KeyPurpose.Lookup, 1, s_data));

        // When v1 is retired
        Assert.True(hsm.RetireKey(KeyPurpose.Lookup, 1));

        // Then neither its token object nor its copy exists, and v2's copy is untouched
        Assert.DoesNotContain(inspector.KeyCopies(), c => c.Label == "devrift.lookup.v1");
        Assert.DoesNotContain(inspector.SecretKeys(token: true), h => inspector.Label(h) == "devrift.lookup.v1");
        Assert.Single(inspector.KeyCopies(), c => c.Label == "devrift.lookup.v2");
        Assert.Throws<HsmDataException>(() => mac.Sign(KeyPurpose.Lookup, 1, s_data));
    }

    [Fact]
    public void A_key_another_node_retires_loses_this_nodes_copy_at_the_next_reload()
    {
        // Given two connections on one token (two nodes), both with lookup v1 and v2
        var options = SoftHsmTokens.CreateToken();
        using var a = HsmConnection.Open(options);
        a.InitializeKeys();
        a.RotateKey(KeyPurpose.Lookup);
        using var b = HsmConnection.Open(options);
        a.ReloadKeys();
        var aCopyOfV1 = a.Execute(ctx => ctx.Keys.Handle(KeyPurpose.Lookup, 1));
        using var inspector = new TokenInspector(a);
        Assert.False(inspector.Bool(aCopyOfV1, CKA.CKA_TOKEN));

        // When b retires v1 and a reads the token again
        Assert.True(b.RetireKey(KeyPurpose.Lookup, 1));
        a.ReloadKeys();

        // Then a's copy of v1 is gone from the HSM, and a knows v1 no more
        Assert.Equal(CKR.CKR_OBJECT_HANDLE_INVALID, Assert.Throws<Pkcs11Exception>(() => inspector.Session.GetAttributeValue(aCopyOfV1, [CKA.CKA_LABEL])).RV);
        Assert.Equal([2], a.KeyVersions()[KeyPurpose.Lookup]);
        Assert.Equal(2, new HsmMac(a).Sign(KeyPurpose.Lookup, s_data).Version);
    }

    [Fact]
    public void The_copies_end_with_the_connection()
    {
        // Given a connection with its copies, and a second connection on the same token
        var options = SoftHsmTokens.CreateToken();
        using var b = HsmConnection.Open(options);
        b.InitializeKeys();
        using var inspector = new TokenInspector(b);
        var bCopies = inspector.KeyCopies().Count;
        Assert.NotEqual(0, bCopies);
        var a = HsmConnection.Open(options);
        Assert.Equal(2 * bCopies, inspector.KeyCopies().Count);

        // When the first is disposed
        a.Dispose();

        // Then its copies are gone with its sessions, and the other's remain
        Assert.Equal(bCopies, inspector.KeyCopies().Count);
    }
}
