using System.Text.Json;
using System.Text.Json.Nodes;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Hsm;

namespace DevRift.Hsm.Api.Admin;

public sealed record HsmTokenResponse(string Label, ulong SlotId, string Manufacturer, string Model, string SerialNumber);

public sealed record HsmKeyResponse(string Object, string Purpose, int Version, string Label, bool Current, IReadOnlyDictionary<string, long> Dependents, bool? Retired)
{
    public static HsmKeyResponse From(HsmKeyStatus k, bool? retired = null)
    {
        ArgumentNullException.ThrowIfNull(k);
        return new("hsm_key", k.PurposeName, k.Version, k.Label, k.Current && retired != true, k.Dependents, retired);
    }
}

public sealed record HsmResponse(string Object, HsmTokenResponse Token, IReadOnlyList<HsmKeyResponse> Keys)
{
    public static HsmResponse From(HsmStatus s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var t = s.Token;
        return new("hsm", new HsmTokenResponse(t.Label, t.SlotId, t.Manufacturer, t.Model, t.SerialNumber), s.Keys.Select(k => HsmKeyResponse.From(k)).ToList());
    }
}

/// <summary>
/// <c>/admin/v1/hsm</c>: the token, its keys with what still depends on each version, rotation of one purpose's key
/// and retirement of an old version once nothing needs it.
/// </summary>
public static class HsmEndpoints
{
    public static RouteGroupBuilder MapHsm(this RouteGroupBuilder admin)
    {
        ArgumentNullException.ThrowIfNull(admin);
        admin.MapGet("/hsm", async (KeyManagement keys, CancellationToken ct) => TypedResults.Ok(HsmResponse.From(await keys.StatusAsync(ct))))
            .WithSummary("HSM token and keys, with the stored data that still depends on each key version");
        admin.MapPost("/hsm/rotate", async (HttpContext http, KeyManagement keys) =>
        {
            var body = await AdminEndpoints.ReadObjectAsync(http);
            var created = HsmKeyResponse.From(await keys.RotateAsync(Purpose(body), http.RequestAborted));
            Audit.OperatorChanges.Describe(http, Audit.OperatorChanges.HsmKey(created));
            return TypedResults.Created("/admin/v1/hsm", created);
        }).WithSummary("Create the next version of a purpose's key ({\"purpose\": seed-kek|code|lookup|seal|audit}); new data uses it at once");
        admin.MapPost("/hsm/retire", async (HttpContext http, KeyManagement keys) =>
        {
            var body = await AdminEndpoints.ReadObjectAsync(http);
            var retired = HsmKeyResponse.From(await keys.RetireAsync(Purpose(body), Version(body), http.RequestAborted), retired: true);
            Audit.OperatorChanges.Describe(http, Audit.OperatorChanges.HsmKey(retired));
            return TypedResults.Ok(retired);
        }).WithSummary("Destroy an old key version ({\"purpose\", \"version\"}); 409 key_in_use while it is current or data depends on it");
        return admin;
    }

    private static string? Purpose(JsonObject body) =>
        body["purpose"] is JsonValue v && v.GetValueKind() == JsonValueKind.String
            ? v.GetValue<string>()
            : throw new MfaException(ErrorCode.InvalidRequest, "'purpose' must be one of seed-kek, code, lookup, seal, audit", "purpose");

    private static int? Version(JsonObject body) =>
        body["version"] is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<int>(out var n) ? n
        : body["version"] is JsonValue s && s.GetValueKind() == JsonValueKind.String && int.TryParse(s.GetValue<string>(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var m) ? m
        : throw new MfaException(ErrorCode.InvalidRequest, "'version' must be a positive integer", "version");
}
