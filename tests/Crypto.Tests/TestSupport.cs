using System.Security.Cryptography;
using DevRift.Hsm.Testing;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using OtpNet;
using LowLevel = Net.Pkcs11Interop.LowLevelAPI80;

namespace DevRift.Hsm.Crypto.Tests;

/// <summary>One fresh SoftHSM2 token with the five keys, shared by the tests of one class (the pool is finite).</summary>
public sealed class InitialisedToken : IDisposable
{
    public HsmConnection Hsm { get; } = SoftHsmTokens.CreateInitialisedToken();

    public void Dispose() => Hsm.Dispose();
}

/// <summary>
/// The test's own PKCS#11 session on a connection's token, to look at objects from outside the layer. It uses the
/// module the layer already loaded (same path, so no second C_Initialize and no C_Finalize on dispose), on the
/// connection's own slot, and shares the application's login state: it never logs out, which would log out the
/// connection's sessions too.
/// </summary>
internal sealed class TokenInspector : IDisposable
{
    private static readonly Pkcs11InteropFactories s_factories = HsmConnection.Factories;
    private readonly LowLevel.Pkcs11Library _raw;

    public TokenInspector(HsmConnection hsm)
    {
        Assert.True(Platform.NativeULongSize == 8 && Platform.StructPackingSize == 0, "LowLevelAPI80 assumes 64-bit Unix");
        Session = hsm.SlotForTesting().OpenSession(SessionType.ReadWrite);
        try
        {
            Session.Login(CKU.CKU_USER, SoftHsmTokens.Pin);
        }
        catch (Pkcs11Exception e) when (e.RV == CKR.CKR_USER_ALREADY_LOGGED_IN)
        {
            // The connection's main session holds the login for the whole application.
        }

        // A raw view of the same module (dlopen is reference counted; no C_Initialize/C_Finalize) for exact CKRs.
        _raw = new LowLevel.Pkcs11Library(SoftHsmTokens.ModulePath);
    }

    public ISession Session { get; }

    public static IObjectAttribute Attribute(CKA type, bool value) => s_factories.ObjectAttributeFactory.Create(type, value);

    public static IObjectAttribute Attribute(CKA type, CKO value) => s_factories.ObjectAttributeFactory.Create(type, value);

    public static IObjectAttribute Attribute(CKA type, string value) => s_factories.ObjectAttributeFactory.Create(type, value);

    public static IMechanism Mechanism(CKM type) => s_factories.MechanismFactory.Create(type);

    /// <summary>Secret keys that are token objects (<paramref name="token"/>) or session objects of this application.</summary>
    public List<IObjectHandle> SecretKeys(bool token) =>
        Session.FindAllObjects([Attribute(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY), Attribute(CKA.CKA_TOKEN, token)]);

    /// <summary>Session secret keys without a label: the seeds the connection unwrapped (its key copies carry their token key's label).</summary>
    public List<IObjectHandle> UnwrappedSeeds() => SecretKeys(token: false).Where(h => Label(h) is null or "").ToList();

    /// <summary>Session copies of the token's <c>devrift.*</c> keys, by label.</summary>
    public List<(string Label, IObjectHandle Handle)> KeyCopies() =>
        SecretKeys(token: false).Select(h => (Label: Label(h), Handle: h)).Where(c => c.Label is { Length: > 0 }).ToList();

    public IObjectHandle KeyByLabel(string label) =>
        Assert.Single(Session.FindAllObjects([Attribute(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY), Attribute(CKA.CKA_TOKEN, true), Attribute(CKA.CKA_LABEL, label)]));

    public bool Bool(IObjectHandle key, CKA attribute) => Session.GetAttributeValue(key, [attribute])[0].GetValueAsBool();

    public ulong ULong(IObjectHandle key, CKA attribute) => Session.GetAttributeValue(key, [attribute])[0].GetValueAsUlong();

    public string Label(IObjectHandle key) => Session.GetAttributeValue(key, [CKA.CKA_LABEL])[0].GetValueAsString();

    public byte[] Id(IObjectHandle key) => Session.GetAttributeValue(key, [CKA.CKA_ID])[0].GetValueAsByteArray();

    /// <summary>The CKR of <c>C_GetAttributeValue(CKA_VALUE)</c>, and whether a length came back.</summary>
    public (CKR Rv, bool LengthUnavailable) ReadValue(IObjectHandle key)
    {
        var template = new[] { LowLevel.CkaUtils.CreateAttribute(CKA.CKA_VALUE) };
        var rv = _raw.C_GetAttributeValue(Session.SessionId, key.ObjectId, template, 1);
        return (rv, template[0].valueLen == ulong.MaxValue); // CK_UNAVAILABLE_INFORMATION
    }

    /// <summary>The CKR of wrapping <paramref name="key"/> under <paramref name="kek"/> (CKR_OK if it was wrapped).</summary>
    public CKR TryWrap(IObjectHandle kek, IObjectHandle key)
    {
        try
        {
            _ = Session.WrapKey(Mechanism(CKM.CKM_AES_KEY_WRAP_PAD), kek, key);
            return CKR.CKR_OK;
        }
        catch (Pkcs11Exception e)
        {
            return e.RV;
        }
    }

    public void Dispose()
    {
        Session.CloseSession();
        _raw.Dispose();
    }
}

/// <summary>Reference RFC 4226/6238 arithmetic in memory, independent of the project and of Otp.NET.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Security", "CA5350", Justification = "RFC 4226/6238 define HOTP/TOTP over HMAC-SHA1.")]
internal static class ReferenceOtp
{
    public static byte[] Hmac(OtpHashMode mode, byte[] key, byte[] data) => mode switch
    {
        OtpHashMode.Sha1 => Sha1(key, data),
        OtpHashMode.Sha256 => HMACSHA256.HashData(key, data),
        OtpHashMode.Sha512 => HMACSHA512.HashData(key, data),
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };

    private static byte[] Sha1(byte[] key, byte[] data)
    {
        using var hmac = new HMACSHA1(key);
        return hmac.ComputeHash(data);
    }

    /// <summary>RFC 6238 TOTP for one time step: HOTP(K, T) with RFC 4226 dynamic truncation.</summary>
    public static string Totp(OtpHashMode mode, byte[] key, long step, int digits)
    {
        var counter = new byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(counter, step);
        var hash = Hmac(mode, key, counter);
        var offset = hash[^1] & 0x0f;
        var binary = ((hash[offset] & 0x7f) << 24) | (hash[offset + 1] << 16) | (hash[offset + 2] << 8) | hash[offset + 3];
        var modulus = (int)Math.Pow(10, digits);
        return (binary % modulus).ToString(System.Globalization.CultureInfo.InvariantCulture).PadLeft(digits, '0');
    }
}
