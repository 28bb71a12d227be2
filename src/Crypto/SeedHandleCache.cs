using System.Security.Cryptography;
using Net.Pkcs11Interop.HighLevelAPI;

namespace DevRift.Hsm.Crypto;

/// <summary>
/// Bounded LRU of unwrapped seeds: wrapped-blob digest → handle of a sign-only session object owned by the
/// connection's cache session. Callers lease an entry for the length of one <c>C_Sign</c>; an entry evicted
/// while leased is destroyed only when its last lease ends, so no thread ever signs with a destroyed handle.
/// Entries of an older connection generation died with their session and are never destroyed by handle
/// (the number may already name another object).
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

    /// <summary>Leases the cached handle, or returns null when there is none for this generation.</summary>
    public Entry? Acquire(string key, int generation)
    {
        lock (_lock)
        {
            if (_map.TryGetValue(key, out var node) && node.Value.Generation == generation)
            {
                _lru.Remove(node);
                _lru.AddFirst(node);
                node.Value.Leases++;
                return node.Value;
            }
        }

        return null;
    }

    /// <summary>
    /// Adds a freshly unwrapped handle, leased once by the caller. Returns the handles that fell out of the cache
    /// with no lease on them: the caller destroys those in the HSM.
    /// </summary>
    public Entry Add(string key, int generation, IObjectHandle handle, List<IObjectHandle> toDestroy)
    {
        lock (_lock)
        {
            if (_map.Remove(key, out var old))
            {
                _lru.Remove(old);
                Evict(old.Value, generation, toDestroy);
            }

            var entry = new Entry(key, generation, handle) { Leases = 1 };
            _map[key] = _lru.AddFirst(entry);
            while (_map.Count > capacity)
            {
                var last = _lru.Last!;
                _lru.RemoveLast();
                _map.Remove(last.Value.Key);
                Evict(last.Value, generation, toDestroy);
            }

            return entry;
        }
    }

    /// <summary>Ends a lease; returns the handle to destroy if the entry was evicted meanwhile and this was its last lease.</summary>
    public IObjectHandle? Release(Entry entry, int generation)
    {
        lock (_lock)
        {
            entry.Leases--;
            return entry.Evicted && entry.Leases == 0 && !entry.Destroyed && entry.Generation == generation
                ? MarkDestroyed(entry)
                : null;
        }
    }

    /// <summary>The HSM no longer knows this handle: drop the entry, if it is still the cached one.</summary>
    public void Invalidate(Entry entry)
    {
        lock (_lock)
        {
            if (_map.TryGetValue(entry.Key, out var node) && ReferenceEquals(node.Value, entry))
            {
                _map.Remove(entry.Key);
                _lru.Remove(node);
            }

            entry.Evicted = true;
            entry.Destroyed = true; // nothing left to destroy
        }
    }

    /// <summary>The owning session is gone: every object died with it.</summary>
    public void Clear()
    {
        lock (_lock)
        {
            foreach (var entry in _lru)
            {
                entry.Evicted = true;
                entry.Destroyed = true;
            }

            _map.Clear();
            _lru.Clear();
        }
    }

    private static void Evict(Entry entry, int generation, List<IObjectHandle> toDestroy)
    {
        entry.Evicted = true;
        if (entry.Leases == 0 && !entry.Destroyed && entry.Generation == generation)
        {
            toDestroy.Add(MarkDestroyed(entry));
        }
    }

    private static IObjectHandle MarkDestroyed(Entry entry)
    {
        entry.Destroyed = true;
        return entry.Handle;
    }

    internal sealed class Entry(string key, int generation, IObjectHandle handle)
    {
        public string Key { get; } = key;

        public int Generation { get; } = generation;

        public IObjectHandle Handle { get; } = handle;

        public int Leases { get; set; }

        public bool Evicted { get; set; }

        public bool Destroyed { get; set; }
    }
}
