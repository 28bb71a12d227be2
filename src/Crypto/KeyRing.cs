using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace DevRift.Hsm.Crypto;

/// <summary>The token's <c>devrift.*</c> key objects by purpose and version, found by label.</summary>
internal sealed class KeyRing
{
    private readonly Dictionary<(KeyPurpose Purpose, int Version), IObjectHandle> _handles;
    private readonly Dictionary<KeyPurpose, int[]> _versions;

    private KeyRing(Dictionary<(KeyPurpose, int), IObjectHandle> handles)
    {
        _handles = handles;
        _versions = KeyLabels.All.ToDictionary(
            p => p,
            p => handles.Keys.Where(k => k.Item1 == p).Select(k => k.Item2).Order().ToArray());
    }

    public static KeyRing Load(ISession session)
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

        return new KeyRing(handles);
    }

    public IReadOnlyList<int> Versions(KeyPurpose purpose) => _versions[purpose];

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

    /// <summary>A specific version, for data made under it.</summary>
    public IObjectHandle Handle(KeyPurpose purpose, int version) =>
        _handles.TryGetValue((purpose, version), out var handle)
            ? handle
            : throw new HsmDataException($"the token has no {KeyLabels.Label(purpose, Math.Max(version, 0))} key");
}
