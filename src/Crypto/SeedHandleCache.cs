using System.Security.Cryptography;
using Net.Pkcs11Interop.HighLevelAPI;

namespace DevRift.Hsm.Crypto;

/// <summary>
/// Bounded LRU of unwrapped seeds: wrapped-blob digest → handle of a sign-only session object owned by the
/// connection's cache session. Entries of an older connection generation are dead (their session closed) and
/// are ignored. Evicted objects are destroyed in the HSM by the caller.
/// </summary>
internal sealed class SeedHandleCache(int capacity)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, LinkedListNode<Entry>> _map = new(StringComparer.Ordinal);
    private readonly LinkedList<Entry> _lru = new();

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _map.Count;
            }
        }
    }

    public static string KeyOf(WrappedSeed seed)
    {
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(seed.Blob, digest);
        return string.Create(null, stackalloc char[72], $"{seed.KekVersion}:{Convert.ToHexString(digest)}");
    }

    public bool TryGet(string key, int generation, out IObjectHandle handle)
    {
        lock (_lock)
        {
            if (_map.TryGetValue(key, out var node) && node.Value.Generation == generation)
            {
                _lru.Remove(node);
                _lru.AddFirst(node);
                handle = node.Value.Handle;
                return true;
            }
        }

        handle = null!;
        return false;
    }

    /// <summary>Adds an entry; returns the handles that fell out and must be destroyed (same generation only).</summary>
    public List<IObjectHandle> Add(string key, int generation, IObjectHandle handle)
    {
        var evicted = new List<IObjectHandle>();
        lock (_lock)
        {
            if (_map.Remove(key, out var old))
            {
                _lru.Remove(old);
                if (old.Value.Generation == generation)
                {
                    evicted.Add(old.Value.Handle);
                }
            }

            _map[key] = _lru.AddFirst(new Entry(key, generation, handle));
            while (_map.Count > capacity)
            {
                var last = _lru.Last!;
                _lru.RemoveLast();
                _map.Remove(last.Value.Key);
                if (last.Value.Generation == generation)
                {
                    evicted.Add(last.Value.Handle);
                }
            }
        }

        return evicted;
    }

    public IObjectHandle? Remove(string key)
    {
        lock (_lock)
        {
            if (_map.Remove(key, out var node))
            {
                _lru.Remove(node);
                return node.Value.Handle;
            }
        }

        return null;
    }

    public void Clear()
    {
        lock (_lock)
        {
            _map.Clear();
            _lru.Clear();
        }
    }

    private sealed record Entry(string Key, int Generation, IObjectHandle Handle);
}
