using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace DevRift.Hsm.Crypto;

/// <summary>One connected state of the token; replaced whole on reconnection.</summary>
internal sealed class TokenState(ISlot slot, ISession main, ISession cacheSession, KeyRing keys, int generation, int epoch)
{
    public ISlot Slot { get; } = slot;

    /// <summary>The label of the token served: the configured one, or a failover replica.</summary>
    public string Label { get; init; } = "";

    public ISession Main { get; } = main;

    public ISession CacheSession { get; } = cacheSession;

    public Lock CacheSessionLock { get; } = new();

    private volatile KeyRing _keys = keys;

    public KeyRing Keys
    {
        get => _keys;
        set => _keys = value;
    }

    public int Generation { get; } = generation;

    public int Epoch { get; } = epoch;
}

/// <summary>What an operation sees: its session, the key ring and the shared factories.</summary>
internal readonly struct HsmContext(HsmConnection connection, ISession session, TokenState state)
{
    public HsmConnection Connection { get; } = connection;

    public ISession Session { get; } = session;

    public TokenState State { get; } = state;

    public KeyRing Keys => State.Keys;

    public int Generation => State.Generation;

    public static IMechanism Mechanism(CKM mechanism) => Pkcs11Module.Factories.MechanismFactory.Create(mechanism);

    public static IMechanism Mechanism(CKM mechanism, byte[] parameter) => Pkcs11Module.Factories.MechanismFactory.Create(mechanism, parameter);

    /// <summary>An HMAC on this context's session: <c>C_SignInit</c> and one <c>C_Sign</c> into a buffer of the hash's size.</summary>
    public byte[] Hmac(CKM mechanism, IObjectHandle key, byte[] data) => Connection.Signer.Hmac(Session, mechanism, key, data);

    /// <summary>
    /// Whether a failure of unwrap or decrypt was the data's fault. SoftHSM2 answers <c>CKR_GENERAL_ERROR</c> when an
    /// RFC 5649 integrity check or a GCM tag fails; that is bad data when the same session still serves a keyed
    /// operation, and a lost device otherwise.
    /// </summary>
    public static bool IsBadData(HsmContext ctx, Pkcs11Exception e)
    {
        if (e.RV is CKR.CKR_WRAPPED_KEY_INVALID or CKR.CKR_WRAPPED_KEY_LEN_RANGE or CKR.CKR_ENCRYPTED_DATA_INVALID
            or CKR.CKR_ENCRYPTED_DATA_LEN_RANGE or CKR.CKR_DATA_INVALID)
        {
            return true;
        }

        if (e.RV != CKR.CKR_GENERAL_ERROR)
        {
            return false;
        }

        try
        {
            ctx.Hmac(CKM.CKM_SHA256_HMAC, ctx.Keys.Current(KeyPurpose.Lookup).Handle, [0]);
            return true;
        }
        catch (Pkcs11Exception)
        {
            return false;
        }
    }

    public static IObjectAttribute Attribute(CKA type, bool value) => Pkcs11Module.Factories.ObjectAttributeFactory.Create(type, value);

    public static IObjectAttribute Attribute(CKA type, ulong value) => Pkcs11Module.Factories.ObjectAttributeFactory.Create(type, value);

    public static IObjectAttribute Attribute(CKA type, string value) => Pkcs11Module.Factories.ObjectAttributeFactory.Create(type, value);

    public static IObjectAttribute Attribute(CKA type, byte[] value) => Pkcs11Module.Factories.ObjectAttributeFactory.Create(type, value);

    public static IObjectAttribute Attribute(CKA type, CKO value) => Pkcs11Module.Factories.ObjectAttributeFactory.Create(type, value);

    public static IObjectAttribute Attribute(CKA type, CKK value) => Pkcs11Module.Factories.ObjectAttributeFactory.Create(type, value);
}

/// <summary>The token an <see cref="HsmConnection"/> serves, as it describes itself.</summary>
/// <param name="Label">Token label.</param>
/// <param name="SlotId">Slot the token is in (slot numbers may change between restarts; the label does not).</param>
/// <param name="Manufacturer">Token manufacturer id.</param>
/// <param name="Model">Token model.</param>
/// <param name="SerialNumber">Token serial number.</param>
public sealed record HsmTokenDescription(string Label, ulong SlotId, string Manufacturer, string Model, string SerialNumber);

/// <summary>Event data for <see cref="HsmConnection.StateChanged"/>.</summary>
public sealed class HsmStateChangedEventArgs(bool available, string reason) : EventArgs
{
    /// <summary>True when the token serves again.</summary>
    public bool Available { get; } = available;

    /// <summary>Short reason (a CKR name); never key material.</summary>
    public string Reason { get; } = reason;
}
