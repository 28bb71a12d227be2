using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace DevRift.Hsm.Crypto;

/// <summary>Hooks for the tests of this layer (internal, visible to the test assembly only).</summary>
public sealed partial class HsmConnection
{
    /// <summary>Test hook: <c>C_CloseAllSessions</c> on the token, as a device reset or another component would.</summary>
    internal void CloseAllSessionsForTesting() => _state?.Slot.CloseAllSessions();

    internal CKS? MainSessionStateForTesting() => _state?.Main.GetSessionInfo().State;

    /// <summary>
    /// Test hook: the slot this connection uses, so that a test's own session needs no scan of every slot (a
    /// C_GetTokenInfo on another connection's token outside the operation lock, which SoftHSM2 may answer by
    /// re-indexing that token while it generates a key).
    /// </summary>
    internal ISlot SlotForTesting() => EnsureConnected().Slot;
}
