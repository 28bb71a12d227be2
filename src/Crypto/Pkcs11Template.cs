using Net.Pkcs11Interop.HighLevelAPI;

namespace DevRift.Hsm.Crypto;

/// <summary>
/// The attributes of one call that hands a template to the module (C_CreateObject, C_UnwrapKey, C_FindObjectsInit,
/// C_GenerateKey…), freed when it is disposed: use it with <c>using</c> around the call. Pkcs11Interop passes the
/// module pointers into native memory each attribute object owns and frees in its finalizer, and holds no reference to
/// those objects while the module runs; a template made in the call's argument list is garbage as soon as the call has
/// started, and a collection during the call freed the memory the module was reading. SoftHSM2 then saw a class or key
/// type it did not know, and refused about one C_CreateObject or C_UnwrapKey in 10,000 under load with
/// CKR_ATTRIBUTE_VALUE_INVALID or CKR_TEMPLATE_INCONSISTENT (a garbage boolean would have been accepted). Disposing
/// after the call keeps every attribute reachable until the module has returned, and frees the memory (a seed's value
/// among it) at once rather than at some later collection. A mechanism with a parameter (an IV, OAEP's parameters)
/// owns native memory the same way and is disposed with <c>using</c> too.
/// </summary>
internal sealed class Pkcs11Template(List<IObjectAttribute> attributes) : IDisposable
{
    public List<IObjectAttribute> Attributes { get; } = attributes;

    public void Dispose()
    {
        foreach (var attribute in Attributes)
        {
            attribute.Dispose();
        }
    }
}
