using Net.Pkcs11Interop.Common;

namespace DevRift.Hsm.Crypto;

/// <summary>
/// What a failure below the layer means, in one table: a lost connection (reconnect and retry once), data the HSM
/// refused, an HSM that cannot serve, or garbage from a module.
/// </summary>
internal static class HsmErrors
{
    public static bool IsConnectionLoss(CKR rv) => rv is
        CKR.CKR_SESSION_HANDLE_INVALID or CKR.CKR_SESSION_CLOSED or CKR.CKR_DEVICE_ERROR or CKR.CKR_DEVICE_REMOVED
        or CKR.CKR_DEVICE_MEMORY or CKR.CKR_TOKEN_NOT_PRESENT or CKR.CKR_TOKEN_NOT_RECOGNIZED
        or CKR.CKR_USER_NOT_LOGGED_IN or CKR.CKR_CRYPTOKI_NOT_INITIALIZED or CKR.CKR_SLOT_ID_INVALID
        or CKR.CKR_OBJECT_HANDLE_INVALID or CKR.CKR_KEY_HANDLE_INVALID or CKR.CKR_GENERAL_ERROR;

    /// <summary>
    /// What a PKCS#11 error means for the caller: data the HSM refused (a blob that does not unwrap or decrypt), or an HSM
    /// that cannot serve (everything else, a mechanism or attribute the module does not support included). The message
    /// names the operation and the CKR, and nothing of the data.
    /// </summary>
    public static HsmException Classify(Pkcs11Exception e, string name) => e.RV switch
    {
        CKR.CKR_WRAPPED_KEY_INVALID or CKR.CKR_WRAPPED_KEY_LEN_RANGE or CKR.CKR_ENCRYPTED_DATA_INVALID
            or CKR.CKR_ENCRYPTED_DATA_LEN_RANGE or CKR.CKR_UNWRAPPING_KEY_HANDLE_INVALID
            => new HsmDataException($"the HSM refused the data in {name} ({e.RV})", e),
        _ => new HsmUnavailableException($"HSM operation {name} failed ({e.RV})", e),
    };

    /// <summary>Failures from inside Pkcs11Interop's marshalling of what a module returned, never from our own code.</summary>
    public static bool IsNativeFault(Exception e) => e is OverflowException or OutOfMemoryException or UnmanagedException
        or System.Runtime.InteropServices.ExternalException or AccessViolationException;
}
