using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace DevRift.Hsm.Crypto;

/// <summary>
/// Asks the token at start (<c>C_GetMechanismInfo</c>) for every mechanism the configuration needs, so that a module
/// lacking one stops start-up with one line naming the mechanism, what it is for and the setting that selects an
/// alternative — instead of a 503 on the first enrolment. Key generation is not required here: keys made by the
/// vendor's tools are adopted by label (generation is checked by <c>init</c> when it has something to make).
/// </summary>
internal static class MechanismProbe
{
    public static void Check(ISlot slot, SeedWrapScheme wrap, SealScheme seal, string modulePath)
    {
        var cache = new Dictionary<CKM, (bool Wrap, bool Encrypt, bool Sign)?>();
        (bool Wrap, bool Encrypt, bool Sign)? Info(CKM mechanism)
        {
            if (!cache.TryGetValue(mechanism, out var info))
            {
                try
                {
                    var flags = slot.GetMechanismInfo(mechanism).MechanismFlags;
                    info = (flags.Wrap && flags.Unwrap, flags.Encrypt && flags.Decrypt, flags.Sign);
                }
                catch (Pkcs11Exception e) when (e.RV is CKR.CKR_MECHANISM_INVALID or CKR.CKR_FUNCTION_NOT_SUPPORTED or CKR.CKR_ARGUMENTS_BAD)
                {
                    info = null;
                }

                cache[mechanism] = info;
            }

            return info;
        }

        foreach (var need in HsmSchemes.Requirements(wrap, seal))
        {
            var info = Info(need.Mechanism);
            var missing = info is null ? "lacks" : need.Wrap && !info.Value.Wrap ? "cannot wrap and unwrap with"
                : need.Encrypt && !info.Value.Encrypt ? "cannot encrypt and decrypt with"
                : need.Sign && !info.Value.Sign ? "cannot sign with" : null;
            if (missing is null)
            {
                continue;
            }

            var hint = need.Setting is null
                ? "this appliance cannot run on it"
                : $"set {need.Setting} to one it offers ({Offered(need.Setting, Info)})";
            throw new HsmConfigurationException($"the HSM module '{modulePath}' {missing} {need.Mechanism}, needed for {need.Purpose}: {hint}");
        }
    }

    private static string Offered(string setting, Func<CKM, (bool Wrap, bool Encrypt, bool Sign)?> info)
    {
        var offered = HsmSchemes.Offered(m => info(m) is { } i ? (i.Wrap, i.Encrypt) : null, wrapping: setting == "Hsm:WrapMechanism").ToList();
        return offered.Count == 0 ? "none of the alternatives" : string.Join(", ", offered);
    }
}
