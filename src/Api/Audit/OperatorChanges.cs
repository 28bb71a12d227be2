using System.Text.Json.Nodes;
using DevRift.Hsm.Api.Admin;
using DevRift.Hsm.Appliance.Applications;

namespace DevRift.Hsm.Api.Audit;

/// <summary>
/// What an operator action changed, as the detail of its audit record: the same shape whether it came through
/// <c>/admin/v1</c>, the command line or the dashboard. Ids, labels, purposes, versions, thumbprints and setting
/// values before → after; never a secret (a created key's or token's secret is left out by construction: these
/// builders take the public fields only).
/// </summary>
public static class OperatorChanges
{
    private const string DetailKey = "devrift.audit.operator_change";
    private const string ModeKey = "devrift.audit.operator_mode";

    /// <summary>Hands the change to the operator audit filter, which writes it with the outcome.</summary>
    public static void Describe(HttpContext http, JsonObject detail, string? mode = null)
    {
        ArgumentNullException.ThrowIfNull(http);
        http.Items[DetailKey] = detail;
        if (mode is not null)
        {
            http.Items[ModeKey] = mode;
        }
    }

    /// <summary>What <see cref="Describe"/> was given for this request, if anything.</summary>
    public static (JsonObject? Detail, string? Mode) Described(HttpContext http)
    {
        ArgumentNullException.ThrowIfNull(http);
        return (http.Items[DetailKey] as JsonObject, http.Items[ModeKey] as string);
    }

    /// <summary>Settings whose value differs, each as <c>{"from", "to"}</c> (the plan among them).</summary>
    public static JsonObject Settings(JsonObject before, JsonObject after)
    {
        ArgumentNullException.ThrowIfNull(before);
        ArgumentNullException.ThrowIfNull(after);
        var changes = new JsonObject();
        foreach (var (name, value) in after)
        {
            var old = before[name];
            if (name is "object" or "application_id" || JsonNode.DeepEquals(old, value))
            {
                continue;
            }

            changes[name] = new JsonObject { ["from"] = old?.DeepClone(), ["to"] = value?.DeepClone() };
        }

        return new JsonObject { ["changes"] = changes };
    }

    /// <summary>A rename or plan change, as <c>{"changes": {"name": {"from", "to"}, "plan": …}}</c>.</summary>
    public static JsonObject Application(Application before, Application after)
    {
        ArgumentNullException.ThrowIfNull(before);
        ArgumentNullException.ThrowIfNull(after);
        var changes = new JsonObject();
        if (before.Name != after.Name)
        {
            changes["name"] = new JsonObject { ["from"] = before.Name, ["to"] = after.Name };
        }

        if (before.Plan != after.Plan)
        {
            changes["plan"] = new JsonObject { ["from"] = before.Plan, ["to"] = after.Plan };
        }

        return new JsonObject { ["changes"] = changes };
    }

    public static JsonObject Created(ApplicationResponse app)
    {
        ArgumentNullException.ThrowIfNull(app);
        return new JsonObject { ["name"] = app.Name, ["plan"] = app.Plan };
    }

    public static JsonObject Key(ApiKeyResponse key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return new JsonObject { ["key_id"] = key.Id, ["mode"] = key.Mode, ["label"] = key.Label };
    }

    public static JsonObject Label(ApiKeyInfo before, ApiKeyResponse after)
    {
        ArgumentNullException.ThrowIfNull(before);
        ArgumentNullException.ThrowIfNull(after);
        return new JsonObject { ["key_id"] = after.Id, ["changes"] = new JsonObject { ["label"] = new JsonObject { ["from"] = before.Label, ["to"] = after.Label } } };
    }

    public static JsonObject Rolled(ApiKeyRollResponse rolled)
    {
        ArgumentNullException.ThrowIfNull(rolled);
        return new JsonObject
        {
            ["key_id"] = rolled.Key.Id,
            ["previous_key_id"] = rolled.Previous.Id,
            ["previous_expires_at"] = rolled.Previous.ExpiresAt?.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
        };
    }

    public static JsonObject Certificate(ClientCertificateResponse certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return new JsonObject { ["certificate_id"] = certificate.Id, ["thumbprint"] = certificate.Thumbprint, ["subject"] = certificate.Subject };
    }

    public static JsonObject HsmKey(HsmKeyResponse key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return new JsonObject { ["purpose"] = key.Purpose, ["version"] = key.Version, ["label"] = key.Label };
    }

    public static JsonObject Token(OperatorTokenResponse token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return new JsonObject { ["token_id"] = token.Id, ["label"] = token.Label };
    }
}
