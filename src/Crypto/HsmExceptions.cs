namespace DevRift.Hsm.Crypto;

/// <summary>Base of every failure the PKCS#11 layer reports. Messages never contain key material or inputs.</summary>
public abstract class HsmException : Exception
{
    /// <summary>Creates the exception.</summary>
    protected HsmException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>
/// The HSM cannot serve right now (session lost, device error, token absent). Callers fail closed
/// (503 <c>hsm_unavailable</c>); the layer reconnects by itself when the token is back.
/// </summary>
public sealed class HsmUnavailableException : HsmException
{
    /// <summary>Creates the exception.</summary>
    public HsmUnavailableException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>
/// The deployment is wrong and will not fix itself: missing module, missing token, wrong PIN, missing keys.
/// Start-up stops with this message as its one line.
/// </summary>
public sealed class HsmConfigurationException : HsmException
{
    /// <summary>Creates the exception.</summary>
    public HsmConfigurationException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>
/// The HSM refused the data it was given: a tampered or foreign wrapped seed, a sealed blob whose tag does not
/// verify, a blob naming a key version the token does not hold.
/// </summary>
public sealed class HsmDataException : HsmException
{
    /// <summary>Creates the exception.</summary>
    public HsmDataException(string message, Exception? inner = null) : base(message, inner) { }
}
