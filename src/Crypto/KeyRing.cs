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
    private readonly Dictionary<(KeyPurpose Purpose, int Version), KeyEntry> _entries;
    private readonly Dictionary<KeyPurpose, int[]> _versions;

    // Versions this snapshot was reloaded for and still lacked: asking again does not reload again (a row naming a
    // retired or bogus version must not cost a token scan per request). A fresh snapshot starts empty.
    private readonly ConcurrentDictionary<(KeyPurpose, int), bool> _knownAbsent = new();

    private KeyRing(Dictionary<(KeyPurpose, int), KeyEntry> entries, long loadedAt)
    {
        _entries = entries;
        LoadedAt = loadedAt;
        _versions = KeyLabels.All.ToDictionary(
            p => p,
            p => entries.Keys.Where(k => k.Item1 == p).Select(k => k.Item2).Order().ToArray());
    }

    /// <summary>When this snapshot was read (UTC ticks of the connection's clock).</summary>
    public long LoadedAt { get; }

    /// <summary>
    /// Reads the token's <c>devrift.*</c> objects: secret keys, the seed KEK's RSA key pairs (private and public halves
    /// share the version's label) and each version's MAC key (<c>….mac</c>). A version exists when its main key does.
    /// </summary>
    public static KeyRing Load(ISession session, long loadedAt)
    {
        var main = new Dictionary<(KeyPurpose, int), IObjectHandle>();
        var publics = new Dictionary<(KeyPurpose, int), IObjectHandle>();
        var macs = new Dictionary<(KeyPurpose, int), IObjectHandle>();
        var rsa = new HashSet<(KeyPurpose, int)>();
        foreach (var (type, target) in new[] { (CKO.CKO_SECRET_KEY, main), (CKO.CKO_PRIVATE_KEY, main), (CKO.CKO_PUBLIC_KEY, publics) })
        {
            List<IObjectHandle> found;
            using (var template = new Pkcs11Template([HsmContext.Attribute(CKA.CKA_CLASS, type), HsmContext.Attribute(CKA.CKA_TOKEN, true)]))
            {
                found = session.FindAllObjects(template.Attributes);
            }

            foreach (var handle in found)
            {
                var label = session.GetAttributeValue(handle, [CKA.CKA_LABEL])[0].GetValueAsString();
                if (label is null)
                {
                    continue;
                }

                if (KeyLabels.TryParseLabel(label, out var purpose, out var version))
                {
                    target[(purpose, version)] = handle;
                    if (type == CKO.CKO_PRIVATE_KEY)
                    {
                        rsa.Add((purpose, version));
                    }
                }
                else if (type == CKO.CKO_SECRET_KEY && KeyLabels.TryParseMacLabel(label, out purpose, out version))
                {
                    macs[(purpose, version)] = handle;
                }
            }
        }

        var entries = main.ToDictionary(
            m => m.Key,
            m => new KeyEntry(m.Value, publics.GetValueOrDefault(m.Key), macs.GetValueOrDefault(m.Key), rsa.Contains(m.Key))
            {
                Exposed = Exposed(session, m.Value) || (macs.GetValueOrDefault(m.Key) is { } mac && Exposed(session, mac)),
            });
        return new KeyRing(entries, loadedAt);
    }

    /// <summary>
    /// Whether a key could leave the HSM in the clear (extractable, or not sensitive): never the case for keys this
    /// appliance generates, possible for keys made with a vendor's tool and adopted by label.
    /// </summary>
    private static bool Exposed(ISession session, IObjectHandle key)
    {
        var attributes = session.GetAttributeValue(key, [CKA.CKA_SENSITIVE, CKA.CKA_EXTRACTABLE]);
        return !attributes[0].GetValueAsBool() || attributes[1].GetValueAsBool();
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
        return (version, _entries[(purpose, version)].Handle);
    }

    /// <summary>The newest version with every object it has (public half, MAC key).</summary>
    public (int Version, KeyEntry Entry) CurrentEntry(KeyPurpose purpose)
    {
        var (version, _) = Current(purpose);
        return (version, _entries[(purpose, version)]);
    }

    /// <summary>
    /// A specific version, for data made under it. A version this snapshot does not hold throws
    /// <see cref="UnknownKeyVersionException"/>, which the connection answers by reading the token once more.
    /// </summary>
    public IObjectHandle Handle(KeyPurpose purpose, int version) => Entry(purpose, version).Handle;

    /// <summary>A specific version with every object it has; an unknown version as for <see cref="Handle"/>.</summary>
    public KeyEntry Entry(KeyPurpose purpose, int version) =>
        _entries.TryGetValue((purpose, version), out var entry)
            ? entry
            : throw new UnknownKeyVersionException(this, purpose, version);

    /// <summary>Whether a reload for this version already happened and did not find it.</summary>
    public bool IsKnownAbsent(KeyPurpose purpose, int version) => _knownAbsent.ContainsKey((purpose, version));

    public void MarkAbsent(KeyPurpose purpose, int version) => _knownAbsent.TryAdd((purpose, version), true);
}

/// <summary>
/// One version of a purpose's key: the main key (a secret key, or the private half of the seed KEK's RSA pair), the
/// public half of that pair, and the version's own HMAC key for schemes that tag their blobs.
/// </summary>
internal sealed record KeyEntry(IObjectHandle Handle, IObjectHandle? Public, IObjectHandle? Mac, bool IsRsa)
{
    /// <summary>The version's key or MAC key is extractable or not sensitive (see <see cref="KeyRing"/>).</summary>
    public bool Exposed { get; init; }

    /// <summary>Every object of the version (for retirement).</summary>
    public IEnumerable<IObjectHandle> Objects => new[] { Handle, Public, Mac }.OfType<IObjectHandle>();

    /// <summary>The version's MAC key, or a one-line reason naming what is missing.</summary>
    public IObjectHandle MacKey(KeyPurpose purpose, int version) =>
        Mac ?? throw new HsmConfigurationException($"the token has no {KeyLabels.MacLabel(purpose, version)} key; run init to create it");
}

/// <summary>Data names a key version the key ring snapshot does not hold (new on another node, retired, or bogus).</summary>
internal sealed class UnknownKeyVersionException(KeyRing ring, KeyPurpose purpose, int version)
    : Exception($"the token has no {KeyLabels.Label(purpose, Math.Max(version, 0))} key")
{
    public KeyRing Ring { get; } = ring;

    public KeyPurpose Purpose { get; } = purpose;

    public int Version { get; } = version;
}
