using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace DevRift.Hsm.Crypto;

/// <summary>
/// Out-of-band codes (email, SMS, WhatsApp, voice): <c>code = decimal(truncate(HMAC(code-key, challenge id ‖
/// channel ‖ nonce))) mod 10^len</c>. A code bound to a payment (PSD2 dynamic linking) has the domain-separation tag
/// <see cref="TransactionTag"/> and the canonical transaction appended to that input, each length-prefixed like the
/// other fields; a code without one has exactly the input above, so codes issued before transactions existed still
/// verify. A code is never stored; verification recomputes it in the HSM with the key version the challenge recorded,
/// over the transaction the verifier presents, so a code cannot verify for any other transaction.
/// </summary>
public sealed class OobCodes(HsmMac mac)
{
    /// <summary>Shortest and longest code lengths accepted.</summary>
    public const int MinLength = 4, MaxLength = 10;

    /// <summary>Separates the transaction part of the HMAC input from everything else the code key signs.</summary>
    public const string TransactionTag = "devrift.oob-code.transaction.v1";

    /// <summary>The current code-key version, to record on a new challenge.</summary>
    public int CurrentVersion => mac.CurrentVersion(KeyPurpose.Code);

    /// <summary>
    /// Derives the code of one channel of one challenge; <paramref name="transaction"/> is the canonical transaction it
    /// is bound to, or null for none.
    /// </summary>
    public string Derive(string challengeId, string channel, ReadOnlySpan<byte> nonce, int length, int keyVersion, string? transaction = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, MinLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, MaxLength);
        var input = transaction is null
            ? HsmMac.Encode(challengeId, channel, Convert.ToBase64String(nonce))
            : HsmMac.Encode(challengeId, channel, Convert.ToBase64String(nonce), TransactionTag, transaction);
        var hmac = mac.Sign(KeyPurpose.Code, keyVersion, input);
        try
        {
            // RFC 4226 dynamic truncation, widened to 63 bits so that 10-digit codes stay uniform.
            var offset = hmac[^1] & 0x0f;
            var value = BinaryPrimitives.ReadUInt64BigEndian(hmac.AsSpan(offset, 8)) & 0x7fff_ffff_ffff_ffffUL;
            var modulus = (ulong)Math.Pow(10, length);
            return (value % modulus).ToString(CultureInfo.InvariantCulture).PadLeft(length, '0');
        }
        finally
        {
            CryptographicOperations.ZeroMemory(hmac);
        }
    }

    /// <summary>
    /// True when <paramref name="candidate"/> is the channel's code for the presented canonical
    /// <paramref name="transaction"/> (null: none); compared in constant time.
    /// </summary>
    public bool Verify(string challengeId, string channel, ReadOnlySpan<byte> nonce, int length, int keyVersion, string candidate, string? transaction = null)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        var expected = Derive(challengeId, channel, nonce, length, keyVersion, transaction);
        return ConstantTime.Equals(expected, candidate);
    }
}

/// <summary>
/// HSM-keyed verifiers for secrets that are checked but never stored: backup codes, API keys, operator tokens.
/// <c>HMAC(lookup-key, purpose ‖ owner ‖ normalised secret)</c>.
/// </summary>
public sealed class LookupVerifiers(HsmMac mac)
{
    /// <summary>Verifier under the current lookup key.</summary>
    public KeyedMac Compute(string purpose, string owner, string normalisedSecret) =>
        mac.Sign(KeyPurpose.Lookup, HsmMac.Encode(purpose, owner, normalisedSecret));

    /// <summary>Verifier under a given lookup-key version.</summary>
    public byte[] Compute(string purpose, string owner, string normalisedSecret, int version) =>
        mac.Sign(KeyPurpose.Lookup, version, HsmMac.Encode(purpose, owner, normalisedSecret));

    /// <summary>Checks a secret against a stored verifier in constant time.</summary>
    public bool Matches(string purpose, string owner, string normalisedSecret, KeyedMac stored) =>
        CryptographicOperations.FixedTimeEquals(Compute(purpose, owner, normalisedSecret, stored.Version), stored.Mac);
}

/// <summary>Constant-time comparison helpers for secrets.</summary>
public static class ConstantTime
{
    /// <summary>
    /// Compares two secret strings without an early exit on the first differing character. Length is not
    /// hidden (codes have a public length).
    /// </summary>
    public static bool Equals(string expected, string given)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(given);
        var a = Encoding.UTF8.GetBytes(expected);
        var b = Encoding.UTF8.GetBytes(given);
        try
        {
            return CryptographicOperations.FixedTimeEquals(a, b);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(a);
            CryptographicOperations.ZeroMemory(b);
        }
    }
}
