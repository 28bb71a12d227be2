using DevRift.Hsm.Testing;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace DevRift.Hsm.Crypto.Tests;

/// <summary>
/// Keys made with a vendor's own tool (for modules whose C_GenerateKey the appliance cannot use) are adopted by their
/// label; a key that could leave the HSM is refused in one line, never used.
/// </summary>
public sealed class KeyAdoptionTests
{
    [Fact]
    public void A_key_made_outside_the_appliance_with_its_label_is_adopted_and_init_makes_only_the_rest()
    {
        // Given a token holding devrift.seed-kek.v1 made by "the vendor's tool" (our own session, not the layer)
        using var hsm = HsmConnection.Open(SoftHsmTokens.CreateToken());
        MakeKey(hsm, "devrift.seed-kek.v1", CKK.CKK_AES, CKM.CKM_AES_KEY_GEN, extractable: false, wrap: true);
        hsm.ReloadKeys();

        // When init runs
        var created = hsm.InitializeKeys();

        // Then the adopted key is used as it is and only the other purposes are generated
        Assert.Equal(["devrift.code.v1", "devrift.lookup.v1", "devrift.seal.v1", "devrift.audit.v1"], created);
        var vault = new SeedVault(hsm);
        var seed = System.Security.Cryptography.RandomNumberGenerator.GetBytes(20);
        Assert.Equal(ReferenceOtp.Hmac(OtpNet.OtpHashMode.Sha1, seed, [1]), vault.ComputeHmac(vault.Wrap(seed), OtpNet.OtpHashMode.Sha1, [1]));
        Assert.True(hsm.Probe());
    }

    [Fact]
    public void An_adopted_key_that_is_extractable_is_refused_in_one_line_by_init_and_at_start()
    {
        // Given a devrift.code.v1 that can be extracted
        using var hsm = HsmConnection.Open(SoftHsmTokens.CreateToken());
        MakeKey(hsm, "devrift.code.v1", CKK.CKK_GENERIC_SECRET, CKM.CKM_GENERIC_SECRET_KEY_GEN, extractable: true, wrap: false);
        hsm.ReloadKeys();

        // Then init refuses it, and so does the start-up check (KeyProblems), naming the key and the fix
        const string reason = "devrift.code.v1 can leave the HSM (it is extractable or not sensitive): recreate it with CKA_SENSITIVE=true and CKA_EXTRACTABLE=false";
        var e = Assert.IsType<HsmConfigurationException>(Record.Exception(() => hsm.InitializeKeys()));
        Assert.Equal($"token '{hsm.TokenLabel}': {reason}", e.Message);
        Assert.Equal([reason], hsm.KeyProblems());
    }

    private static void MakeKey(HsmConnection hsm, string label, CKK type, CKM mechanism, bool extractable, bool wrap)
    {
        var f = HsmConnection.Factories.ObjectAttributeFactory;
        using var session = hsm.SlotForTesting().OpenSession(SessionType.ReadWrite);
        session.GenerateKey(HsmConnection.Factories.MechanismFactory.Create(mechanism), [
            f.Create(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
            f.Create(CKA.CKA_KEY_TYPE, type),
            f.Create(CKA.CKA_VALUE_LEN, 32UL),
            f.Create(CKA.CKA_LABEL, label),
            f.Create(CKA.CKA_TOKEN, true),
            f.Create(CKA.CKA_PRIVATE, true),
            f.Create(CKA.CKA_SENSITIVE, true),
            f.Create(CKA.CKA_EXTRACTABLE, extractable),
            f.Create(CKA.CKA_WRAP, wrap),
            f.Create(CKA.CKA_UNWRAP, wrap),
            f.Create(CKA.CKA_SIGN, !wrap),
            f.Create(CKA.CKA_VERIFY, !wrap),
        ]);
    }
}
