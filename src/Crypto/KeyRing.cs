using System.Collections.Concurrent;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace DevRift.Hsm.Crypto;

/// <summary>
/// The token's <c>devrift.*</c> key objects by purpose and version, found by label. A ring is a snapshot: it is
/// replaced whole when the token is read again (rotation here or on another node, periodic refresh).
/// </summary>
internal sealed class KeyRing
{
    private readonly Dictionary<(KeyPurpose Purpose, int Version), IObjectHandle> _handles;
    private readonly Dictionary<KeyPurpose, int[]> _versions;

    // Versions this snapshot was reloaded for and still lacked: asking again does not reload again (a row naming a
    // retired or bogus version must not cost a token scan per request). A fresh snapshot starts empty.
    private readonly ConcurrentDictionary<(KeyPurpose, int), bool> _knownAbsent = new();

    private KeyRing(Dictionary<(KeyPurpose, int), IObjectHandle> handles, long loadedAt)
    {
        _handles = handles;
        LoadedAt = loadedAt;
        _versions = KeyLabels.All.ToDictionary(
            p => p,
            p => handles.Keys.Where(k => k.Item1 == p).Select(k => k.Item2).Order().ToArray());
    }

    /// <summary>When this snapshot was read (UTC ticks of the connection's clock).</summary>
    public long LoadedAt { get; }

    public static KeyRing Load(ISession session, long loadedAt)
    {
        var handles = new Dictionary<(KeyPurpose, int), IObjectHandle>();
        var found = session.FindAllObjects([
            HsmContext.Attribute(CKA.CKA_CLASS, CKO.CKO_SECRET_KEY),
            HsmContext.Attribute(CKA.CKA_TOKEN, true),
        ]);
        foreach (var handle in found)
        {
            var label = session.GetAttributeValue(handle, [CKA.CKA_LABEL])[0].GetValueAsString();
            if (label is not null && KeyLabels.TryParseLabel(label, out var purpose, out var version))
            {
                handles[(purpose, version)] = handle;
            }
        }

        return new KeyRing(handles, loadedAt);
    }

    public IReadOnlyList<int> Versions(KeyPurpose purpose) => _versions[purpose];

    /// <summary>True when both snapshots hold the same versions of every purpose.</summary>
    public bool SameVersionsAs(KeyRing other) =>
        KeyLabels.All.All(p => _versions[p].AsSpan().SequenceEqual(other._versions[p]));

    /// <summary>The newest version, which new data uses.</summary>
    public (int Version, IObjectHandle Handle) Current(KeyPurpose purpose)
    {
        var versions = _versions[purpose];
        if (versions.Length == 0)
        {
            throw new HsmConfigurationException($"the token has no {KeyLabels.Label(purpose, 1)} key; run init first");
        }

        var version = versions[^1];
        return (version, _handles[(purpose, version)]);
    }

    /// <summary>
    /// A specific version, for data made under it. A version this snapshot does not hold throws
    /// <see cref="UnknownKeyVersionException"/>, which the connection answers by reading the token once more.
    /// </summary>
    public IObjectHandle Handle(KeyPurpose purpose, int version) =>
        _handles.TryGetValue((purpose, version), out var handle)
            ? handle
            : throw new UnknownKeyVersionException(this, purpose, version);

    /// <summary>Whether a reload for this version already happened and did not find it.</summary>
    public bool IsKnownAbsent(KeyPurpose purpose, int version) => _knownAbsent.ContainsKey((purpose, version));

    public void MarkAbsent(KeyPurpose purpose, int version) => _knownAbsent.TryAdd((purpose, version), true);
}

/// <summary>Data names a key version the key ring snapshot does not hold (new on another node, retired, or bogus).</summary>
internal sealed class UnknownKeyVersionException(KeyRing ring, KeyPurpose purpose, int version)
    : Exception($"the token has no {KeyLabels.Label(purpose, Math.Max(version, 0))} key")
{
    public KeyRing Ring { get; } = ring;

    public KeyPurpose Purpose { get; } = purpose;

    public int Version { get; } = version;
}
