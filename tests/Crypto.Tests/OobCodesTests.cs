using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace DevRift.Hsm.Crypto.Tests;

/// <summary>Out-of-band codes derived in the HSM with the code key, never stored.</summary>
public sealed class OobCodesTests : IClassFixture<InitialisedToken>
{
    private static readonly byte[] s_nonce = [0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80];

    private readonly HsmMac _mac;
    private readonly OobCodes _codes;

    public OobCodesTests(InitialisedToken token)
    {
        _mac = new HsmMac(token.Hsm);
        _codes = new OobCodes(_mac);
    }

    [Fact]
    public void Same_inputs_derive_the_same_code()
    {
        // Given one challenge, channel and nonce
        // When the code is derived twice
        var first = _codes.Derive("ch_1", "sms", s_nonce, 6, 1);
        var second = _codes.Derive("ch_1", "sms", s_nonce, 6, 1);

        // Then it is the same code
        Assert.Equal(first, second);
        Assert.Equal(1, _codes.CurrentVersion);
    }

    [Fact]
    public void Code_is_the_truncated_code_key_mac_of_challenge_channel_and_nonce()
    {
        // Given the code key's MAC of the documented input, encoded here independently of the project
        var input = LengthPrefixed("ch_1", "email", Convert.ToBase64String(s_nonce));
        var mac = _mac.Sign(KeyPurpose.Code, 1, input);
        var offset = mac[^1] & 0x0f;
        var value = BinaryPrimitives.ReadUInt64BigEndian(mac.AsSpan(offset, 8)) & 0x7fff_ffff_ffff_ffffUL;

        // When the code is derived at each length
        // Then it is that 63-bit value mod 10^length, zero-padded
        for (var length = OobCodes.MinLength; length <= OobCodes.MaxLength; length++)
        {
            var expected = (value % (ulong)Math.Pow(10, length)).ToString(CultureInfo.InvariantCulture).PadLeft(length, '0');
            Assert.Equal(expected, _codes.Derive("ch_1", "email", s_nonce, length, 1));
        }
    }

    [Fact]
    public void A_code_without_a_transaction_is_derived_exactly_as_before_transactions_existed()
    {
        // Given the documented three-field input (what every challenge before transaction binding was issued with)
        var before = Truncated(_mac.Sign(KeyPurpose.Code, 1, LengthPrefixed("ch_1", "sms", Convert.ToBase64String(s_nonce))), 6);

        // When the code is derived and verified without a transaction
        var after = _codes.Derive("ch_1", "sms", s_nonce, 6, 1, transaction: null);

        // Then it is that code, and it verifies as before
        Assert.Equal(before, after);
        Assert.Equal(before, _codes.Derive("ch_1", "sms", s_nonce, 6, 1));
        Assert.True(_codes.Verify("ch_1", "sms", s_nonce, 6, 1, before));
    }

    [Fact]
    public void A_transaction_bound_code_is_the_mac_over_the_tagged_canonical_transaction_and_verifies_for_it_only()
    {
        // Given the code key's MAC of the three fields, the domain-separation tag and the canonical transaction
        const string acme = "5:12.34,3:EUR,8:ACME Ltd,0:,";
        var expected = Truncated(_mac.Sign(KeyPurpose.Code, 1, LengthPrefixed("ch_1", "sms", Convert.ToBase64String(s_nonce), "devrift.oob-code.transaction.v1", acme)), 10);

        // When the code is derived for that transaction
        var code = _codes.Derive("ch_1", "sms", s_nonce, 10, 1, acme);

        // Then it is that MAC's code, differs from the code without a transaction, and verifies only for the same transaction
        Assert.Equal(expected, code);
        Assert.Equal(OobCodes.TransactionTag, "devrift.oob-code.transaction.v1");
        Assert.NotEqual(_codes.Derive("ch_1", "sms", s_nonce, 10, 1), code);
        Assert.True(_codes.Verify("ch_1", "sms", s_nonce, 10, 1, code, acme));
        Assert.False(_codes.Verify("ch_1", "sms", s_nonce, 10, 1, code, "5:12.35,3:EUR,8:ACME Ltd,0:,"));
        Assert.False(_codes.Verify("ch_1", "sms", s_nonce, 10, 1, code, "5:12.34,3:EUR,9:ACME Ltd.,0:,"));
        Assert.False(_codes.Verify("ch_1", "sms", s_nonce, 10, 1, code));
    }

    [Fact]
    public void Code_differs_by_channel_challenge_and_nonce()
    {
        // Given one base input and three variations of one field each
        // When the 10-digit codes are derived
        var reference = _codes.Derive("ch_1", "sms", s_nonce, 10, 1);
        var otherChannel = _codes.Derive("ch_1", "email", s_nonce, 10, 1);
        var otherChallenge = _codes.Derive("ch_2", "sms", s_nonce, 10, 1);
        var otherNonce = _codes.Derive("ch_1", "sms", [.. s_nonce[..^1], 0x81], 10, 1);
        var shiftedField = _codes.Derive("ch_1s", "ms", s_nonce, 10, 1);

        // Then all five differ (a collision would be a 1e-10 event)
        Assert.Equal(5, new[] { reference, otherChannel, otherChallenge, otherNonce, shiftedField }.Distinct(StringComparer.Ordinal).Count());
    }

    [Theory]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(9)]
    [InlineData(10)]
    public void Code_has_the_requested_length_with_leading_zeros_kept(int length)
    {
        // Given the first nonce whose code at this length starts with 0 (one in ten do)
        var (nonce, code) = Enumerable.Range(0, 1000)
            .Select(i => BitConverter.GetBytes(i))
            .Select(n => (Nonce: n, Code: _codes.Derive("ch_zero", "voice", n, length, 1)))
            .First(x => x.Code[0] == '0');

        // When it is derived
        // Then it keeps its leading zero, has exactly the requested length, is all digits, and verifies as typed
        Assert.Equal(length, code.Length);
        Assert.All(code, c => Assert.InRange(c, '0', '9'));
        Assert.True(_codes.Verify("ch_zero", "voice", nonce, length, 1, code));
        Assert.False(_codes.Verify("ch_zero", "voice", nonce, length, 1, code.TrimStart('0')));
    }

    [Theory]
    [InlineData(3)]
    [InlineData(11)]
    public void Length_outside_4_to_10_is_refused(int length)
    {
        // Given a length the appliance does not issue
        // When a code of that length is derived
        var e = Record.Exception(() => _codes.Derive("ch_1", "sms", s_nonce, length, 1));

        // Then it is an argument error for the length
        Assert.Equal("length", Assert.IsType<ArgumentOutOfRangeException>(e).ParamName);
    }

    [Fact]
    public void Verify_accepts_the_right_code_and_rejects_wrong_ones()
    {
        // Given the code of a channel
        var code = _codes.Derive("ch_v", "whatsapp", s_nonce, 6, 1);
        var oneDigitOff = code[..^1] + (char)('0' + ((code[^1] - '0' + 1) % 10));

        // When candidates are verified
        // Then only the exact code passes
        Assert.True(_codes.Verify("ch_v", "whatsapp", s_nonce, 6, 1, code));
        Assert.False(_codes.Verify("ch_v", "whatsapp", s_nonce, 6, 1, oneDigitOff));
        Assert.False(_codes.Verify("ch_v", "whatsapp", s_nonce, 6, 1, code + "0"));
        Assert.False(_codes.Verify("ch_v", "whatsapp", s_nonce, 6, 1, code[..^1]));
        Assert.False(_codes.Verify("ch_v", "whatsapp", s_nonce, 6, 1, ""));
    }

    [Fact]
    public void Code_of_one_channel_does_not_verify_for_another()
    {
        // Given the 10-digit email code of a challenge sent by email and SMS at once
        var emailCode = _codes.Derive("ch_both", "email", s_nonce, 10, 1);

        // When it is typed as the SMS code
        var verified = _codes.Verify("ch_both", "sms", s_nonce, 10, 1, emailCode);

        // Then it does not pass
        Assert.False(verified);
    }

    [Fact]
    public void Code_under_a_key_version_the_token_lacks_is_refused()
    {
        // Given a challenge that recorded code-key version 2 on a token holding only version 1
        // When its code is derived
        var e = Record.Exception(() => _codes.Derive("ch_1", "sms", s_nonce, 6, 2));

        // Then it is refused as data naming the missing key
        Assert.Equal("the token has no devrift.code.v2 key", Assert.IsType<HsmDataException>(e).Message);
    }

    private static string Truncated(byte[] mac, int length)
    {
        var offset = mac[^1] & 0x0f;
        var value = BinaryPrimitives.ReadUInt64BigEndian(mac.AsSpan(offset, 8)) & 0x7fff_ffff_ffff_ffffUL;
        return (value % (ulong)Math.Pow(10, length)).ToString(CultureInfo.InvariantCulture).PadLeft(length, '0');
    }

    private static byte[] LengthPrefixed(params string[] fields)
    {
        var bytes = new List<byte>();
        foreach (var f in fields)
        {
            var utf8 = Encoding.UTF8.GetBytes(f);
            var prefix = new byte[4];
            BinaryPrimitives.WriteInt32BigEndian(prefix, utf8.Length);
            bytes.AddRange(prefix);
            bytes.AddRange(utf8);
        }

        return [.. bytes];
    }
}

/// <summary>HSM-keyed verifiers for backup codes and API keys.</summary>
public sealed class LookupVerifiersTests(InitialisedToken token) : IClassFixture<InitialisedToken>
{
    [Fact]
    public void Stored_verifier_matches_the_same_secret()
    {
        // Given a verifier stored for a backup code
        var verifiers = new LookupVerifiers(new HsmMac(token.Hsm));
        var stored = verifiers.Compute("backup-code", "user_1", "ABCD-EFGH");

        // When the same secret is checked
        var matches = verifiers.Matches("backup-code", "user_1", "ABCD-EFGH", stored);

        // Then it matches, and the verifier is a version-1 HMAC-SHA256
        Assert.True(matches);
        Assert.Equal(1, stored.Version);
        Assert.Equal(32, stored.Mac.Length);
    }

    [Theory]
    [InlineData("backup-code", "user_1", "ABCD-EFGI")]
    [InlineData("backup-code", "user_2", "ABCD-EFGH")]
    [InlineData("api-key", "user_1", "ABCD-EFGH")]
    [InlineData("backup-code", "user_1", "abcd-efgh")]
    [InlineData("backup-codeu", "ser_1", "ABCD-EFGH")]
    public void Stored_verifier_does_not_match_another_secret_owner_or_purpose(string purpose, string owner, string secret)
    {
        // Given a verifier stored for one purpose, owner and secret
        var verifiers = new LookupVerifiers(new HsmMac(token.Hsm));
        var stored = verifiers.Compute("backup-code", "user_1", "ABCD-EFGH");

        // When something else is checked against it
        var matches = verifiers.Matches(purpose, owner, secret, stored);

        // Then it does not match
        Assert.False(matches);
    }

    [Fact]
    public void Tampered_stored_verifier_does_not_match()
    {
        // Given a stored verifier with one bit flipped
        var verifiers = new LookupVerifiers(new HsmMac(token.Hsm));
        var stored = verifiers.Compute("api-key", "app_1", "sk_test_secret");
        var mac = (byte[])stored.Mac.Clone();
        mac[0] ^= 0x01;

        // When the right secret is checked against it
        var matches = verifiers.Matches("api-key", "app_1", "sk_test_secret", stored with { Mac = mac });

        // Then it does not match
        Assert.False(matches);
    }

    [Fact]
    public void Verifier_is_the_lookup_key_mac_of_the_encoded_fields()
    {
        // Given the lookup key's MAC of the length-prefixed fields
        var mac = new HsmMac(token.Hsm);
        var expected = mac.Sign(KeyPurpose.Lookup, 1, HsmMac.Encode("api-key", "app_1", "sk_test_secret"));

        // When the verifier is computed
        var verifiers = new LookupVerifiers(mac);

        // Then it is that MAC, under the current and the explicit version alike
        Assert.Equal(expected, verifiers.Compute("api-key", "app_1", "sk_test_secret").Mac);
        Assert.Equal(expected, verifiers.Compute("api-key", "app_1", "sk_test_secret", 1));
    }
}
