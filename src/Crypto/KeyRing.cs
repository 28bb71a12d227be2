using System.Collections.Concurrent;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace DevRift.Hsm.Crypto;

/// <summary>
/// The token's <c>devrift.*</c> key objects by purpose and version, found by label. A ring is a snapshot: it is
/// replaced whole when the token is read again (rotation here or on another node, periodic refresh).
/// <para>
/// The ring the connection computes with (<see cref="WithSessionCopies"/>) uses a session copy of each token key,
/// made inside the HSM with <c>C_CopyObject</c> (<c>CKA_TOKEN=false</c>; PKCS#11 lets a copy neither lose
/// <c>CKA_SENSITIVE</c> nor gain <c>CKA_EXTRACTABLE</c>, and a copy that did would be destroyed and not used): a module
/// that keeps token objects in files, as SoftHSM2 does, re-reads a token object's file on every use to see whether
/// another process changed it, which made a seed unwrap cost twice what it costs with a session key and an audit MAC
/// three times. A module that refuses the copy is used with the token object itself.
/// </para>
/// </summary>
internal sealed class KeyRing
{
    private readonly Dictionary<(KeyPurpose Purpose, int Version), KeyEntry> _entries;
    private readonly Dictionary<KeyPurpose, int[]> _versions;

    // Each token key's session copy (null where the module refused one), by the key's role; empty in a ring read
    // from the token and not yet given copies.
    private readonly Dictionary<(KeyPurpose Purpose, int Version, bool Mac), SessionCopy> _copies;

    // Versions this snapshot was reloaded for and still lacked: asking again does not reload again (a row naming a
    // retired or bogus version must not cost a token scan per request). A fresh snapshot starts empty.
    // A snapshot given its copies shares the set of the ring it was made from.
    private readonly ConcurrentDictionary<(KeyPurpose, int), bool> _knownAbsent;

    private KeyRing(Dictionary<(KeyPurpose, int), KeyEntry> entries, long loadedAt, Dictionary<(KeyPurpose, int, bool), SessionCopy>? copies = null,
        ConcurrentDictionary<(KeyPurpose, int), bool>? knownAbsent = null)
    {
        _entries = entries;
        _copies = copies ?? [];
        _knownAbsent = knownAbsent ?? new();
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

    /// <summary>
    /// This ring with a session copy of every key, made on <paramref name="on"/> (a session that lives as long as the
    /// connection's token state: session objects die with the session that made them). A key whose token object is the
    /// one <paramref name="previous"/> copied keeps that copy (or its refusal), so a periodic reload makes no new
    /// objects. The caller destroys what <see cref="DestroyCopiesNotIn"/> names afterwards.
    /// </summary>
    public KeyRing WithSessionCopies(ISession on, KeyRing? previous)
    {
        var copies = new Dictionary<(KeyPurpose, int, bool), SessionCopy>();
        var entries = new Dictionary<(KeyPurpose, int), KeyEntry>();
        foreach (var ((purpose, version), entry) in _entries)
        {
            var main = Copy(on, previous, (purpose, version, false), entry.TokenHandle, copies);
            var mac = entry.TokenMac is { } tokenMac ? Copy(on, previous, (purpose, version, true), tokenMac, copies) : null;
            entries[(purpose, version)] = entry with { Handle = main, Mac = mac };
        }

        return new KeyRing(entries, LoadedAt, copies, _knownAbsent);
    }

    /// <summary>
    /// Destroys the session copies of this ring that <paramref name="next"/> does not use (keys retired or replaced on
    /// the token). A copy that is already gone is not an error.
    /// </summary>
    public void DestroyCopiesNotIn(KeyRing next, ISession on)
    {
        foreach (var (role, copy) in _copies)
        {
            if (copy.Copy is null || (next._copies.TryGetValue(role, out var kept) && ReferenceEquals(kept.Copy, copy.Copy)))
            {
                continue;
            }

            try
            {
                on.DestroyObject(copy.Copy);
            }
            catch (Pkcs11Exception e) when (!HsmErrors.IsConnectionLoss(e.RV) || e.RV is CKR.CKR_OBJECT_HANDLE_INVALID)
            {
                // Gone already (the session that made it was closed, or the module cleaned it up).
            }
        }
    }

    /// <summary>Session copies this ring computes with (for tests).</summary>
    internal int SessionCopies => _copies.Values.Count(c => c.Copy is not null);

    private static IObjectHandle Copy(ISession on, KeyRing? previous, (KeyPurpose, int, bool) role, IObjectHandle token, Dictionary<(KeyPurpose, int, bool), SessionCopy> copies)
    {
        if (previous is not null && previous._copies.TryGetValue(role, out var known) && known.TokenId == token.ObjectId)
        {
            copies[role] = known;
            return known.Copy ?? token;
        }

        var copy = TryCopy(on, token);
        copies[role] = new SessionCopy(token.ObjectId, copy);
        return copy ?? token;
    }

    private static IObjectHandle? TryCopy(ISession on, IObjectHandle token)
    {
        IObjectHandle copy;
        try
        {
            using var template = new Pkcs11Template([HsmContext.Attribute(CKA.CKA_TOKEN, false)]);
            copy = on.CopyObject(token, template.Attributes);
        }
        catch (Pkcs11Exception e) when (!HsmErrors.IsConnectionLoss(e.RV))
        {
            return null; // CKA_COPYABLE false, or a module without C_CopyObject: the token object serves
        }

        if (!on.GetAttributeValue(copy, [CKA.CKA_TOKEN])[0].GetValueAsBool() && !Exposed(on, copy))
        {
            return copy;
        }

        on.DestroyObject(copy); // a module that loosened the copy: never used
        return null;
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
/// public half of that pair, and the version's own HMAC key for schemes that tag their blobs. <see cref="Handle"/> and
/// <see cref="Mac"/> are what operations use (session copies, see <see cref="KeyRing"/>); the token objects they copy
/// are <see cref="TokenHandle"/> and <see cref="TokenMac"/>.
/// </summary>
internal sealed record KeyEntry(IObjectHandle Handle, IObjectHandle? Public, IObjectHandle? Mac, bool IsRsa)
{
    /// <summary>The version's key or MAC key is extractable or not sensitive (see <see cref="KeyRing"/>).</summary>
    public bool Exposed { get; init; }

    /// <summary>The main key's token object.</summary>
    public IObjectHandle TokenHandle { get; init; } = Handle;

    /// <summary>The MAC key's token object.</summary>
    public IObjectHandle? TokenMac { get; init; } = Mac;

    /// <summary>Every token object of the version (for retirement).</summary>
    public IEnumerable<IObjectHandle> Objects => new[] { TokenHandle, Public, TokenMac }.OfType<IObjectHandle>();

    /// <summary>The version's MAC key, or a one-line reason naming what is missing.</summary>
    public IObjectHandle MacKey(KeyPurpose purpose, int version) =>
        Mac ?? throw new HsmConfigurationException($"the token has no {KeyLabels.MacLabel(purpose, version)} key; run init to create it");
}

/// <summary>A token key's session copy, and which token object it copies; <see cref="Copy"/> null where the module refused.</summary>
internal sealed record SessionCopy(ulong TokenId, IObjectHandle? Copy);

/// <summary>Data names a key version the key ring snapshot does not hold (new on another node, retired, or bogus).</summary>
internal sealed class UnknownKeyVersionException(KeyRing ring, KeyPurpose purpose, int version)
    : Exception($"the token has no {KeyLabels.Label(purpose, Math.Max(version, 0))} key")
{
    public KeyRing Ring { get; } = ring;

    public KeyPurpose Purpose { get; } = purpose;

    public int Version { get; } = version;
}
