using System.Text.Json;
using System.Text.Json.Nodes;
using DevRift.Hsm.Api.Admin;
using DevRift.Hsm.Api.Audit;
using DevRift.Hsm.Appliance.Audit;

namespace DevRift.Hsm.Api.Cli;

/// <summary>
/// <c>audit list [after] [limit]</c> and <c>audit verify</c> (exit code 0 when the chain is valid, 2 when not), and
/// the audit records of the command line's own changes (actor <c>operator</c>, <c>"via": "cli"</c>).
/// </summary>
public static class AuditCommands
{
    public const int ChainBroken = 2;

    private static readonly JsonSerializerOptions s_json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = true,
    };

    public static async Task<int> RunAsync(IServiceProvider services, string[] words, TextWriter stdout)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(stdout);
        var audit = services.GetRequiredService<AuditLog>();
        switch (words)
        {
            case ["audit", "verify"]:
                var verification = await audit.VerifyAsync();
                await stdout.WriteLineAsync(JsonSerializer.Serialize(AuditVerifyResponse.From(verification), s_json));
                return verification.Valid ? 0 : ChainBroken;
            case ["audit", "list", .. var rest] when rest.Length <= 2:
                var after = AuditEndpoints.Parse(rest.Length > 0 ? rest[0] : null, "after", 0, long.MaxValue, 0);
                var limit = (int)AuditEndpoints.Parse(rest.Length > 1 ? rest[1] : null, "limit", 1, AuditEndpoints.MaxLimit, AuditEndpoints.DefaultLimit);
                await stdout.WriteLineAsync(JsonSerializer.Serialize(await AuditEndpoints.ListAsync(audit, after, limit), s_json));
                return 0;
            default:
                throw new Appliance.Errors.MfaException(Appliance.Errors.ErrorCode.InvalidRequest, "usage: audit list [after] [limit] | audit verify");
        }
    }

    /// <summary>
    /// Records a command that changes something, with its outcome ("ok" or the problem code); read-only commands
    /// record nothing. Takes ids from the words and the result, never a secret (a created key's secret stays out).
    /// </summary>
    public static async Task RecordAsync(IServiceProvider services, string[] words, object? result, string outcome)
    {
        ArgumentNullException.ThrowIfNull(services);
        var detail = new JsonObject { ["via"] = "cli" };
        if (result is OperatorCommands.Changed changed)
        {
            foreach (var (name, value) in changed.Change)
            {
                detail[name] = value?.DeepClone();
            }

            result = changed.Result;
        }

        var key = result as ApiKeyResponse;
        var rolled = result as ApiKeyRollResponse;
        var token = result as OperatorTokenResponse;
        var hsmKey = result as HsmKeyResponse;
        var certificate = result as ClientCertificateResponse ?? (result as ClientCertificateCommands.Removed)?.Certificate;
        AuditEntry? entry = words switch
        {
            ["init"] => new AuditEntry(token is null ? AuditEvents.ApplianceInit : AuditEvents.OperatorTokenCreate, AuditEntry.Operator, null, null, null, outcome,
                token is null ? detail : Merge(With(detail, "recovery", true), OperatorChanges.Token(token))),
            ["applications", "create", ..] => new AuditEntry(AuditEvents.ApplicationCreate, AuditEntry.Operator,
                (result as ApplicationResponse)?.Id, null, null, outcome, With(detail, "plan", (result as ApplicationResponse)?.Plan)),
            ["applications", "rename", var app, _] => new AuditEntry(AuditEvents.ApplicationUpdate, AuditEntry.Operator, app, null, null, outcome, detail),
            ["settings", "set", var app, .. var pairs] => new AuditEntry(AuditEvents.SettingsUpdate, AuditEntry.Operator, app, null, null, outcome,
                With(detail, "fields", new JsonArray([.. pairs.Select(p => (JsonNode)JsonValue.Create(p.Split('=')[0]))]))),
            ["api-keys", "create", var app, var mode, ..] => new AuditEntry(AuditEvents.ApiKeyCreate, AuditEntry.Operator, app,
                key?.Mode ?? (mode is "test" or "live" ? mode : null), null, outcome, key is null ? detail : Merge(detail, OperatorChanges.Key(key))),
            ["api-keys", "roll", var app, var keyId, ..] => new AuditEntry(AuditEvents.ApiKeyRoll, AuditEntry.Operator, app, rolled?.Key.Mode, null, outcome,
                rolled is null ? With(detail, "key_id", keyId) : Merge(detail, OperatorChanges.Rolled(rolled))),
            ["api-keys", "label", var app, var keyId, ..] => new AuditEntry(AuditEvents.ApiKeyLabel, AuditEntry.Operator, app, key?.Mode, null, outcome,
                With(detail, "key_id", keyId)),
            ["api-keys", "revoke", var app, var keyId] => new AuditEntry(AuditEvents.ApiKeyRevoke, AuditEntry.Operator, app,
                key?.Mode, null, outcome, With(detail, "key_id", keyId)),
            ["operator-tokens", "create", _] => new AuditEntry(AuditEvents.OperatorTokenCreate, AuditEntry.Operator, null, null, null, outcome,
                token is null ? detail : Merge(detail, OperatorChanges.Token(token))),
            ["operator-tokens", "revoke", var tokenId] => new AuditEntry(AuditEvents.OperatorTokenRevoke, AuditEntry.Operator, null, null, null, outcome,
                token is null ? With(detail, "token_id", tokenId) : Merge(detail, OperatorChanges.Token(token))),
            ["test-messages", "purge", var app] => new AuditEntry(AuditEvents.TestMessagesPurge, AuditEntry.Operator, app, null, null, outcome,
                With(detail, "deleted", (result as TestMessagesPurgeResponse)?.Deleted)),
            ["client-certificates", "add", var app, _] => new AuditEntry(AuditEvents.ClientCertificateAdd, AuditEntry.Operator, app, null, null, outcome,
                certificate is null ? detail : Merge(detail, OperatorChanges.Certificate(certificate))),
            ["client-certificates", "remove", var app, var id] => new AuditEntry(AuditEvents.ClientCertificateRemove, AuditEntry.Operator, app, null, null, outcome,
                certificate is null ? With(detail, "certificate_id", id) : Merge(detail, OperatorChanges.Certificate(certificate))),
            ["event-endpoint", "set" or "remove" or "rotate-secret", var app, ..] => new AuditEntry(AuditEvents.OperatorAction, AuditEntry.Operator, app, null, null, outcome,
                With(detail, "command", "event-endpoint " + words[1])),
            ["hsm", "rotate", var purpose] => new AuditEntry(AuditEvents.HsmKeyRotate, AuditEntry.Operator, null, null, null, outcome,
                hsmKey is null ? With(detail, "purpose", purpose) : Merge(detail, OperatorChanges.HsmKey(hsmKey))),
            ["hsm", "retire", var purpose, var version] => new AuditEntry(AuditEvents.HsmKeyRetire, AuditEntry.Operator, null, null, null, outcome,
                hsmKey is null ? With(With(detail, "purpose", purpose), "version", version) : Merge(detail, OperatorChanges.HsmKey(hsmKey))),
            _ => null,
        };
        if (entry is not null)
        {
            await services.GetRequiredService<AuditLog>().AppendAsync(entry);
        }
    }

    private static JsonObject Merge(JsonObject detail, JsonObject change)
    {
        foreach (var (name, value) in change)
        {
            detail[name] = value?.DeepClone();
        }

        return detail;
    }

    private static JsonObject With(JsonObject detail, string name, JsonNode? value)
    {
        detail[name] = value;
        return detail;
    }
}
