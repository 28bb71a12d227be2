using DevRift.Hsm.Api.Admin;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Hsm;

namespace DevRift.Hsm.Api.Cli;

/// <summary>
/// <code>
/// hsm status | hsm rotate PURPOSE | hsm retire PURPOSE VERSION
/// </code>
/// The same service and answers as <c>/admin/v1/hsm</c>.
/// </summary>
public static class HsmCommands
{
    public static async Task<object> RunAsync(IServiceProvider services, string[] words)
    {
        ArgumentNullException.ThrowIfNull(words);
        var keys = services.GetRequiredService<KeyManagement>();
        return words switch
        {
            ["status"] => HsmResponse.From(await keys.StatusAsync()),
            ["rotate", var purpose] => HsmKeyResponse.From(await keys.RotateAsync(purpose)),
            ["retire", var purpose, var version] => HsmKeyResponse.From(await keys.RetireAsync(purpose, ParseVersion(version)), retired: true),
            _ => throw new MfaException(ErrorCode.InvalidRequest, "usage: hsm status | hsm rotate PURPOSE | hsm retire PURPOSE VERSION (PURPOSE: seed-kek, code, lookup, seal, audit)"),
        };
    }

    private static int? ParseVersion(string text) =>
        int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var v) ? v : null;
}
