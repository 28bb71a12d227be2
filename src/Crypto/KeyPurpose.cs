using System.Globalization;

namespace DevRift.Hsm.Crypto;

/// <summary>The key hierarchy of DESIGN.md: one key per purpose, never one key for two purposes.</summary>
public enum KeyPurpose
{
    /// <summary>AES-256, wrap/unwrap only: wraps every TOTP seed.</summary>
    SeedKek,

    /// <summary>Generic secret, HMAC-SHA256: derives out-of-band codes, which are never stored.</summary>
    Code,

    /// <summary>Generic secret, HMAC-SHA256: verifiers for backup codes, API keys and operator tokens.</summary>
    Lookup,

    /// <summary>AES-256, encrypt/decrypt (AES-GCM): outbox bodies and other short-lived secrets at rest.</summary>
    Seal,

    /// <summary>Generic secret, HMAC-SHA256: the audit chain.</summary>
    Audit,
}

/// <summary>Label scheme <c>devrift.&lt;purpose&gt;.v&lt;N&gt;</c> for versioned keys.</summary>
public static class KeyLabels
{
    /// <summary>Every purpose, in the order <c>init</c> creates them.</summary>
    public static IReadOnlyList<KeyPurpose> All { get; } =
        [KeyPurpose.SeedKek, KeyPurpose.Code, KeyPurpose.Lookup, KeyPurpose.Seal, KeyPurpose.Audit];

    /// <summary>The purpose's name as it appears in labels and the API (<c>seed-kek</c>, <c>code</c>, ...).</summary>
    public static string Name(KeyPurpose purpose) => purpose switch
    {
        KeyPurpose.SeedKek => "seed-kek",
        KeyPurpose.Code => "code",
        KeyPurpose.Lookup => "lookup",
        KeyPurpose.Seal => "seal",
        KeyPurpose.Audit => "audit",
        _ => throw new ArgumentOutOfRangeException(nameof(purpose)),
    };

    /// <summary>Parses a purpose name; false for anything else.</summary>
    public static bool TryParse(string? name, out KeyPurpose purpose)
    {
        foreach (var p in All)
        {
            if (string.Equals(Name(p), name, StringComparison.OrdinalIgnoreCase))
            {
                purpose = p;
                return true;
            }
        }

        purpose = default;
        return false;
    }

    /// <summary>The label of one version of a purpose's key.</summary>
    public static string Label(KeyPurpose purpose, int version) =>
        string.Create(CultureInfo.InvariantCulture, $"devrift.{Name(purpose)}.v{version}");

    /// <summary>
    /// The label of a version's own HMAC key, for schemes that tag their blobs (<c>devrift.seed-kek.v2.mac</c>): a key
    /// of its own, made, rotated and retired with the version it belongs to.
    /// </summary>
    public static string MacLabel(KeyPurpose purpose, int version) => Label(purpose, version) + ".mac";

    /// <summary>Parses <c>devrift.&lt;purpose&gt;.v&lt;N&gt;.mac</c>; false for any other label.</summary>
    public static bool TryParseMacLabel(string label, out KeyPurpose purpose, out int version)
    {
        purpose = default;
        version = 0;
        return label.EndsWith(".mac", StringComparison.Ordinal) && TryParseLabel(label[..^4], out purpose, out version);
    }

    /// <summary>Parses <c>devrift.&lt;purpose&gt;.v&lt;N&gt;</c>; false for any other label.</summary>
    public static bool TryParseLabel(string label, out KeyPurpose purpose, out int version)
    {
        purpose = default;
        version = 0;
        if (!label.StartsWith("devrift.", StringComparison.Ordinal))
        {
            return false;
        }

        var rest = label["devrift.".Length..];
        var dot = rest.LastIndexOf(".v", StringComparison.Ordinal);
        return dot > 0
            && TryParse(rest[..dot], out purpose)
            && int.TryParse(rest[(dot + 2)..], NumberStyles.None, CultureInfo.InvariantCulture, out version)
            && version > 0;
    }
}
