using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using static DevRift.Hsm.Crypto.HsmErrors;

namespace DevRift.Hsm.Crypto;

/// <summary>
/// The process's connection to one token: a logged-in main session kept for the process lifetime, a bounded
/// pool of operation sessions (never two operations on one session), the key ring found by label, and a
/// long-lived session that owns the unwrapped-seed objects. When the token goes away the connection reports
/// <see cref="HsmUnavailableException"/> and reconnects by itself, at most once per
/// <see cref="HsmOptions.ReconnectInterval"/>, once it is back.
/// </summary>
public sealed partial class HsmConnection : IDisposable
{
    private readonly HsmOptions _options;
    private readonly TimeProvider _time;
    private readonly Pkcs11Module _module;
    private readonly string _pin;
    private readonly SemaphoreSlim _poolSlots;
    private readonly ConcurrentBag<PooledSession> _idle = new();
    private readonly Lock _connectLock = new();
    private readonly HsmOperationMetrics _metrics;
    private readonly Lock _keysLock = new();
    private readonly HsmWorkers _workers;
    private volatile TokenState? _state;
    private long _nextAttemptTicks;
    private readonly TokenStoreWatch _store;
    private int _generation;
    private long _keyRingReads;
    private bool _disposed;

    private HsmConnection(HsmOptions options, TimeProvider time, Pkcs11Module module, string pin)
    {
        _options = options;
        _time = time;
        _module = module;
        _pin = pin;
        _poolSlots = new SemaphoreSlim(options.SessionPoolSize, options.SessionPoolSize);
        WrapScheme = HsmSchemes.ParseWrap(options.WrapMechanism);
        SealScheme = HsmSchemes.ParseSeal(options.SealMechanism);
        SeedHandles = new SeedHandleCache(options.SeedHandleCacheSize);
        _store = new TokenStoreWatch(time);
        _workers = new HsmWorkers(options.SessionPoolSize + 2, options.OperationTimeout, options.ReconnectInterval, time);
        _metrics = new HsmOperationMetrics(this);
    }

    /// <summary>Raised (outside any lock) when the connection goes down or comes back; for logs and metrics.</summary>
    public event EventHandler<HsmStateChangedEventArgs>? StateChanged;

    /// <summary>
    /// Raised (on the thread pool, outside any lock) when a reload of the key ring finds other versions than before:
    /// a rotation or retirement here, or one on another node seen by a refresh. Handlers must be quick.
    /// </summary>
    public event EventHandler? KeysChanged;

    /// <summary>True while the token answers.</summary>
    public bool IsAvailable => _state is not null;

    /// <summary>The token label this connection is configured for.</summary>
    public string TokenLabel => _options.TokenLabel;

    /// <summary>The label of the token in use now: <see cref="TokenLabel"/>, or a failover replica; null while none serves.</summary>
    public string? ActiveTokenLabel => _state?.Label;

    /// <summary>How new seeds are wrapped (<see cref="HsmOptions.WrapMechanism"/>).</summary>
    public SeedWrapScheme WrapScheme { get; }

    /// <summary>How new blobs are sealed (<see cref="HsmOptions.SealMechanism"/>).</summary>
    public SealScheme SealScheme { get; }

    /// <summary>
    /// The mechanism of seeds stored before blobs recorded their scheme: RFC 3394 when that is what is configured, else
    /// RFC 5649 (the only two there were, and the default).
    /// </summary>
    internal CKM LegacyWrapMechanism => WrapScheme == SeedWrapScheme.AesKeyWrap ? CKM.CKM_AES_KEY_WRAP : CKM.CKM_AES_KEY_WRAP_PAD;

    internal FixedLengthSigner Signer => _module.Signer;

    internal SeedHandleCache SeedHandles { get; }

    internal static Pkcs11InteropFactories Factories => Pkcs11Module.Factories;

    /// <summary>
    /// Loads the module (once per process), finds the token by label and logs in. A missing module, a missing
    /// token or a wrong PIN throws <see cref="HsmConfigurationException"/> with a one-line reason.
    /// </summary>
    public static HsmConnection Open(HsmOptions options, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var module = Pkcs11Module.Get(options.ModulePath, options.SoftHsmConfig);
        var connection = new HsmConnection(options, time ?? TimeProvider.System, module, options.ResolvePin());
        try
        {
            connection._state = connection.Connect(startup: true);
        }
        catch
        {
            connection.Dispose();
            throw;
        }

        return connection;
    }

    /// <summary>The versions of each purpose's key present on the token (empty before <c>init</c>).</summary>
    public IReadOnlyDictionary<KeyPurpose, IReadOnlyList<int>> KeyVersions()
    {
        var keys = Execute(static ctx => ctx.Keys);
        return KeyLabels.All.ToDictionary(p => p, p => (IReadOnlyList<int>)keys.Versions(p));
    }

    /// <summary>
    /// Throws <see cref="HsmUnavailableException"/> unless the token is connected: no PKCS#11 call while it is (for
    /// SoftHSM2 the token store's presence is checked at once), a reconnection attempt while it is not.
    /// For requests that need no keyed operation but must still fail closed without the HSM.
    /// </summary>
    public void EnsureAvailable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_store.Missing)
        {
            // Without an operation SoftHSM2 would not notice its store is gone: look now, not at the next 250 ms check.
            _store.CheckNow();
        }

        _ = EnsureConnected();
    }

    /// <summary>
    /// True when the configured mechanisms work now: an HMAC with the current lookup key, a seal and open of one byte
    /// with the configured sealing scheme, and a throwaway seed wrapped and unwrapped with the configured wrap scheme.
    /// For readiness: false while any mechanism the appliance needs fails, not only while the token is gone.
    /// </summary>
    public bool Probe()
    {
        try
        {
            Execute(static ctx => ctx.Hmac(CKM.CKM_SHA256_HMAC, ctx.Keys.Current(KeyPurpose.Lookup).Handle, [0]));
            var sealer = new Sealer(this);
            var vault = new SeedVault(this);
            return sealer.Open(sealer.Seal([1], "readyz"), "readyz") is [1]
                && vault.ProbeRoundTrip();
        }
        catch (HsmException)
        {
            return false;
        }
    }

    /// <summary>
    /// Runs one PKCS#11 operation on a pooled session. Session loss or device errors close the pool, reconnect
    /// and retry once; if the token still cannot serve, throws <see cref="HsmUnavailableException"/>. The duration of
    /// each completed operation is recorded under <paramref name="name"/> (the calling method, filled in by the compiler).
    /// </summary>
    internal T Execute<T>(Func<HsmContext, T> operation, [CallerMemberName] string name = "") => Execute(operation, exclusive: false, name);

    /// <summary>
    /// Runs an operation that creates or destroys token objects (key generation, retirement) with no other operation
    /// of this process on the module at the same time. SoftHSM2 re-indexes a token's objects from any call that reads
    /// the token (C_GetTokenInfo, C_FindObjects, an attribute read), without its lock; a re-index racing a key
    /// generation drops the new key from the process's view of the token. Such operations are rare (init, rotation,
    /// retirement), so pausing the others for their few milliseconds costs nothing that matters.
    /// </summary>
    private T ExecuteExclusive<T>(Func<HsmContext, T> operation, [CallerMemberName] string name = "") => Execute(operation, exclusive: true, name);

    private T Execute<T>(Func<HsmContext, T> operation, bool exclusive, string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        // Operations that make or destroy keys get a minute at least: generating an RSA-3072 pair takes seconds.
        return _workers.Run(abandoned => ExecuteCore(operation, SessionKind.Pooled, exclusive, name, abandoned), name,
            exclusive ? TimeSpan.FromTicks(Math.Max(_options.OperationTimeout.Ticks, TimeSpan.FromMinutes(1).Ticks)) : _options.OperationTimeout);
    }

    /// <summary>Runs an operation on the session that owns unwrapped-seed objects, one at a time.</summary>
    internal T ExecuteOnCacheSession<T>(Func<HsmContext, T> operation, [CallerMemberName] string name = "")
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _workers.Run(abandoned => ExecuteCore(operation, SessionKind.Cache, exclusive: false, name, abandoned), name);
    }

    private enum SessionKind
    {
        /// <summary>A session of the pool, leased for the operation (never two operations on one session).</summary>
        Pooled,

        /// <summary>The long-lived session that owns the unwrapped-seed objects, under its lock.</summary>
        Cache,
    }

    /// <summary>
    /// The one retry loop: the operation runs on its session under the module's operation lock; a lost connection
    /// (<see cref="HsmErrors.IsConnectionLoss"/>) or a module re-initialised underneath marks the token down, reconnects
    /// and retries once; anything else is classified once (<see cref="HsmErrors"/>) and thrown.
    /// </summary>
    private T ExecuteCore<T>(Func<HsmContext, T> operation, SessionKind kind, bool exclusive, string name, Func<bool> abandoned)
    {
        var started = _time.GetTimestamp();
        for (var attempt = 0; ; attempt++)
        {
            var state = EnsureConnected();
            if (kind == SessionKind.Pooled && !_poolSlots.Wait(TimeSpan.FromSeconds(30)))
            {
                throw new HsmUnavailableException("no HSM session became free within 30 s");
            }

            PooledSession? pooled = null;
            var broken = false;
            _module.EnterOperation(exclusive);
            try
            {
                T result;
                if (kind == SessionKind.Cache)
                {
                    lock (state.CacheSessionLock)
                    {
                        result = RunWithKeyReload(new HsmContext(this, state.CacheSession, state), operation);
                    }
                }
                else
                {
                    pooled = Lease(state);
                    var context = new HsmContext(this, pooled.Session, state);
                    RefreshKeysIfDue(context);
                    result = RunWithKeyReload(context, operation);
                }

                _metrics.Completed(name, _time.GetElapsedTime(started));
                return result;
            }
            catch (Pkcs11Exception e) when (IsConnectionLoss(e.RV))
            {
                broken = true;
                MarkDown(state, e.RV.ToString());
                if (attempt > 0)
                {
                    throw new HsmUnavailableException($"HSM operation {name} failed: HSM unavailable ({e.RV})", e);
                }
            }
            catch (Pkcs11Exception e)
            {
                throw Classify(e, name);
            }
            catch (Exception e) when (IsNativeFault(e))
            {
                // A module answering with garbage (a length of 2^64-1, a null where a value was promised): not data to
                // use, and the session (the cache session: the whole state) is not to be trusted again.
                broken = true;
                if (kind == SessionKind.Cache)
                {
                    MarkDown(state, e.GetType().Name);
                }

                throw new HsmUnavailableException($"HSM operation {name} failed: the module returned something unusable ({e.GetType().Name})", e);
            }
            catch (ObjectDisposedException e) when (state.Epoch != _module.Epoch)
            {
                // Another connection re-initialised the module under us: our sessions are gone.
                broken = true;
                MarkDown(state, "module re-initialised");
                if (attempt > 0)
                {
                    throw new HsmUnavailableException($"HSM operation {name} failed: HSM unavailable (module re-initialised)", e);
                }
            }
            finally
            {
                if (pooled is not null)
                {
                    // A call its caller gave up on may have left the session in any state: never hand it out again.
                    Return(pooled, broken || abandoned() || pooled.Generation != state.Generation);
                }

                _module.ExitOperation(exclusive);
                if (kind == SessionKind.Pooled)
                {
                    _poolSlots.Release();
                }
            }
        }
    }

    /// <summary>Closes every session (the module logs the token out with its last session). The module stays loaded.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        try
        {
            // On an HSM thread, within the deadline: a module that stopped answering must not hold the process's exit.
            _workers.Run(_ => CloseAll(), nameof(Dispose));
        }
        catch (HsmException)
        {
            // The module does not answer; its sessions end with the process.
        }

        _workers.Dispose();

        _poolSlots.Dispose();
        _metrics.Dispose();
    }

    private int CloseAll()
    {
        lock (_connectLock)
        {
            var state = _state;
            _state = null;
            if (state is not null)
            {
                CloseState(state);
            }

            _module.EnterOperation();
            try
            {
                while (_idle.TryTake(out var s))
                {
                    SafeClose(s.Session);
                }
            }
            finally
            {
                _module.ExitOperation();
            }
        }

        return 0;
    }

    private sealed record PooledSession(ISession Session, int Generation);
}
