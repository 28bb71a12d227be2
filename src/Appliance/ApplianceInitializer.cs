using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Crypto;

namespace DevRift.Hsm.Appliance;

/// <summary>What <c>init</c> made, with the secrets that exist only in this result.</summary>
public sealed record InitResult(IReadOnlyList<string> KeysCreated, Application? DemoApplication, string? DemoTestKey, string? OperatorToken);

/// <summary>
/// First-run set-up, idempotent: the HSM key hierarchy, the database schema, and on an empty database a demo
/// application (enterprise plan) with a test key and an operator token, returned once.
/// </summary>
public sealed class ApplianceInitializer(HsmConnection hsm, Database db, ApplicationStore applications, ApiKeys keys, OperatorTokens operators)
{
    public async Task<InitResult> InitializeAsync(bool createDemo, CancellationToken ct = default)
    {
        var created = hsm.InitializeKeys();
        db.Migrate();
        if (!createDemo || (await applications.ListAsync(ct)).Count > 0 || await operators.AnyAsync(ct))
        {
            return new InitResult(created, null, null, null);
        }

        var demo = await applications.CreateAsync("Demo", Plans.Enterprise, ct);
        // Relying party localhost; with no origins listed the appliance's own listening URLs are allowed.
        demo = await applications.UpdateSettingsAsync(demo.Id, new System.Text.Json.Nodes.JsonObject { ["webauthn_rp_id"] = "localhost" }, ct);
        var key = await keys.CreateAsync(demo.Id, Modes.Test, ct);
        var token = await operators.CreateAsync("init", ct);
        return new InitResult(created, demo, key.Secret, token);
    }

    /// <summary>Checks at start that the HSM has its keys and the schema is current; throws with one line if not.</summary>
    public void CheckReady()
    {
        var missing = hsm.KeyVersions().Where(v => v.Value.Count == 0).Select(v => KeyLabels.Label(v.Key, 1)).ToList();
        if (missing.Count > 0)
        {
            throw new HsmConfigurationException($"token '{hsm.TokenLabel}' lacks {string.Join(", ", missing)}; run 'init' first");
        }

        db.Migrate();
    }
}
