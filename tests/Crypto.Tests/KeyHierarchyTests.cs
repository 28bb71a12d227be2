using System.Text;
using DevRift.Hsm.Testing;
using Net.Pkcs11Interop.Common;

namespace DevRift.Hsm.Crypto.Tests;

/// <summary>The five keys <c>InitializeKeys</c> makes, looked at from a session of the test's own.</summary>
public sealed class KeyHierarchyTests(InitialisedToken token) : IClassFixture<InitialisedToken>
{
    private static readonly string[] s_labels =
        ["devrift.seed-kek.v1", "devrift.code.v1", "devrift.lookup.v1", "devrift.seal.v1", "devrift.audit.v1"];

    public static TheoryData<string> Labels => new(s_labels);

    [Fact]
    public void InitializeKeys_creates_exactly_the_five_version_1_labels_as_token_objects()
    {
        // Given a token initialised by the fixture
        using var inspector = new TokenInspector(token.Hsm);

        // When the token's secret keys are listed
        var labels = inspector.SecretKeys(token: true).Select(inspector.Label).Order(StringComparer.Ordinal).ToArray();

        // Then they are the five labels of the hierarchy and the layer reports version 1 of each
        Assert.Equal(s_labels.Order(StringComparer.Ordinal), labels);
        Assert.All(KeyLabels.All, p => Assert.Equal([1], token.Hsm.KeyVersions()[p]));
    }

    [Theory]
    [MemberData(nameof(Labels))]
    public void Key_is_sensitive_and_never_extractable(string label)
    {
        // Given the key as the token holds it
        using var inspector = new TokenInspector(token.Hsm);
        var key = inspector.KeyByLabel(label);

        // When its protection attributes are read
        // Then it is a sensitive token object that never was and never can be extractable
        Assert.True(inspector.Bool(key, CKA.CKA_TOKEN));
        Assert.True(inspector.Bool(key, CKA.CKA_PRIVATE));
        Assert.True(inspector.Bool(key, CKA.CKA_SENSITIVE));
        Assert.True(inspector.Bool(key, CKA.CKA_ALWAYS_SENSITIVE));
        Assert.False(inspector.Bool(key, CKA.CKA_EXTRACTABLE));
        Assert.True(inspector.Bool(key, CKA.CKA_NEVER_EXTRACTABLE));
        Assert.True(inspector.Bool(key, CKA.CKA_LOCAL));
        Assert.Equal(32UL, inspector.ULong(key, CKA.CKA_VALUE_LEN));
        Assert.Equal(Encoding.ASCII.GetBytes(label), inspector.Id(key));
    }

    [Theory]
    [InlineData("devrift.seed-kek.v1", CKK.CKK_AES, false, true, false)]
    [InlineData("devrift.code.v1", CKK.CKK_GENERIC_SECRET, true, false, false)]
    [InlineData("devrift.lookup.v1", CKK.CKK_GENERIC_SECRET, true, false, false)]
    [InlineData("devrift.seal.v1", CKK.CKK_AES, false, false, true)]
    [InlineData("devrift.audit.v1", CKK.CKK_GENERIC_SECRET, true, false, false)]
    public void Key_serves_only_its_own_purpose(string label, CKK type, bool sign, bool wrap, bool encrypt)
    {
        // Given the key as the token holds it
        using var inspector = new TokenInspector(token.Hsm);
        var key = inspector.KeyByLabel(label);

        // When its type and usage attributes are read
        // Then each key can do exactly what its purpose needs and nothing else
        Assert.Equal((ulong)type, inspector.ULong(key, CKA.CKA_KEY_TYPE));
        Assert.Equal(sign, inspector.Bool(key, CKA.CKA_SIGN));
        Assert.Equal(sign, inspector.Bool(key, CKA.CKA_VERIFY));
        Assert.Equal(wrap, inspector.Bool(key, CKA.CKA_WRAP));
        Assert.Equal(wrap, inspector.Bool(key, CKA.CKA_UNWRAP));
        Assert.Equal(encrypt, inspector.Bool(key, CKA.CKA_ENCRYPT));
        Assert.Equal(encrypt, inspector.Bool(key, CKA.CKA_DECRYPT));
        Assert.False(inspector.Bool(key, CKA.CKA_DERIVE));
    }

    [Theory]
    [MemberData(nameof(Labels))]
    public void Reading_the_key_value_is_refused_as_sensitive(string label)
    {
        // Given the key as the token holds it
        using var inspector = new TokenInspector(token.Hsm);
        var key = inspector.KeyByLabel(label);

        // When CKA_VALUE is asked for
        var (rv, lengthUnavailable) = inspector.ReadValue(key);

        // Then the token answers CKR_ATTRIBUTE_SENSITIVE and gives no length
        Assert.Equal(CKR.CKR_ATTRIBUTE_SENSITIVE, rv);
        Assert.True(lengthUnavailable);
    }

    [Theory]
    [MemberData(nameof(Labels))]
    public void Wrapping_the_key_with_the_seed_kek_is_refused(string label)
    {
        // Given the key and the seed KEK (the one key allowed to wrap)
        using var inspector = new TokenInspector(token.Hsm);
        var key = inspector.KeyByLabel(label);
        var kek = inspector.KeyByLabel("devrift.seed-kek.v1");

        // When the key is wrapped out of the token
        var rv = inspector.TryWrap(kek, key);

        // Then the token refuses: the key is not extractable
        Assert.Equal(CKR.CKR_KEY_UNEXTRACTABLE, rv);
    }

    [Fact]
    public void Pkcs11_tool_lists_the_five_keys_as_sensitive_and_never_extractable()
    {
        // Given the initialised token, seen by OpenSC's pkcs11-tool in another process
        // When its secret keys are listed
        var output = SoftHsmTokens.Run(
            "pkcs11-tool", "--module", SoftHsmTokens.ModulePath, "--token-label", token.Hsm.TokenLabel,
            "--login", "--pin", SoftHsmTokens.Pin, "--list-objects", "--type", "secrkey");

        // Then there are exactly five key blocks, each with its label, type, ID and protection flags
        var blocks = output.Split("Secret Key Object; ", StringSplitOptions.RemoveEmptyEntries)
            .Select(b => b.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            .ToDictionary(lines => lines.Single(l => l.StartsWith("label:", StringComparison.Ordinal))["label:".Length..].Trim());
        Assert.Equal(s_labels.Order(StringComparer.Ordinal), blocks.Keys.Order(StringComparer.Ordinal));
        foreach (var (label, lines) in blocks)
        {
            var aes = label is "devrift.seed-kek.v1" or "devrift.seal.v1";
            Assert.Equal(aes ? "AES length 32" : "Generic secret length 32", lines[0]);
            Assert.Equal($"ID:         {Convert.ToHexStringLower(Encoding.ASCII.GetBytes(label))}", lines[2]);
            Assert.Equal("Access:     sensitive, always sensitive, never extractable, local", lines[4]);
            Assert.Equal(5, lines.Length);
        }

        Assert.Equal("Usage:      wrap, unwrap", blocks["devrift.seed-kek.v1"][3]);
        Assert.Equal("Usage:      encrypt, decrypt", blocks["devrift.seal.v1"][3]);
    }

    [Fact]
    public void Second_InitializeKeys_creates_nothing_and_leaves_the_keys_untouched()
    {
        // Given the keys as they are, and what they compute
        using var inspector = new TokenInspector(token.Hsm);
        var before = Snapshot(inspector);
        var mac = new HsmMac(token.Hsm);
        var data = Encoding.ASCII.GetBytes("same input");
        var macsBefore = new[] { KeyPurpose.Code, KeyPurpose.Lookup, KeyPurpose.Audit }.Select(p => mac.Sign(p, data)).ToArray();
        var vault = new SeedVault(token.Hsm);
        var wrapped = vault.Wrap(Encoding.ASCII.GetBytes("12345678901234567890"));
        var sealedBlob = new Sealer(token.Hsm).Seal(data, "row-1");

        // When init runs again
        var created = token.Hsm.InitializeKeys();

        // Then it reports nothing created, the objects (handles, labels, IDs) are the same,
        // and the keys still compute the same MACs, unwrap the same seed and open the same blob
        Assert.Empty(created);
        Assert.Equal(before, Snapshot(inspector));
        var macsAfter = new[] { KeyPurpose.Code, KeyPurpose.Lookup, KeyPurpose.Audit }.Select(p => mac.Sign(p, data)).ToArray();
        Assert.Equal(macsBefore.Select(m => (m.Version, Convert.ToHexString(m.Mac))), macsAfter.Select(m => (m.Version, Convert.ToHexString(m.Mac))));
        Assert.Equal(
            ReferenceOtp.Hmac(OtpNet.OtpHashMode.Sha1, Encoding.ASCII.GetBytes("12345678901234567890"), data),
            vault.ComputeHmac(wrapped, OtpNet.OtpHashMode.Sha1, data));
        Assert.Equal(data, new Sealer(token.Hsm).Open(sealedBlob, "row-1"));
    }

    private static string[] Snapshot(TokenInspector inspector) =>
        inspector.SecretKeys(token: true)
            .Select(k => $"{k.ObjectId}|{inspector.Label(k)}|{Convert.ToHexString(inspector.Id(k))}")
            .Order(StringComparer.Ordinal)
            .ToArray();
}
