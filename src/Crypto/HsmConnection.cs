using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace DevRift.Hsm.Crypto;

/// <summary>
/// The process's connection to one token: a logged-in main session kept for the process lifetime, a bounded
/// pool of operation sessions (never two operations on one session), the key ring found by label, and a
/// long-lived session that owns the unwrapped-seed objects. When the token goes away the connection reports
/// <see cref="HsmUnavailableException"/> and reconnects by itself, at most once per
/// <see cref="HsmOptions.ReconnectInterval"/>, once it is back.
/// </summary>
public sealed class HsmConnection : IDisposable
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
    private long _nextStoreCheck;
    private string? _storePath;
    private volatile bool _storeLost;
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

    /// <summary>The token label this connection serves.</summary>
    public string TokenLabel => _options.TokenLabel;

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
        if (_storePath is not null && !Directory.Exists(_storePath))
        {
            // Without an operation SoftHSM2 would not notice its store is gone: look now, not at the next 250 ms check.
            Interlocked.Exchange(ref _nextStoreCheck, 0);
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
        return _workers.Run(abandoned => ExecuteCore(operation, exclusive, name, abandoned), name,
            exclusive ? TimeSpan.FromTicks(Math.Max(_options.OperationTimeout.Ticks, TimeSpan.FromMinutes(1).Ticks)) : _options.OperationTimeout);
    }

    private T ExecuteCore<T>(Func<HsmContext, T> operation, bool exclusive, string name, Func<bool> abandoned)
    {
        var started = _time.GetTimestamp();
        for (var attempt = 0; ; attempt++)
        {
            var state = EnsureConnected();
            if (!_poolSlots.Wait(TimeSpan.FromSeconds(30)))
            {
                throw new HsmUnavailableException("no HSM session became free within 30 s");
            }

            PooledSession? pooled = null;
            var broken = false;
            _module.EnterOperation(exclusive);
            try
            {
                pooled = Lease(state);
                var context = new HsmContext(this, pooled.Session, state);
                RefreshKeysIfDue(context);
                var result = RunWithKeyReload(context, operation);
                _metrics.Completed(name, _time.GetElapsedTime(started));
                return result;
            }
            catch (Pkcs11Exception e) when (IsConnectionLoss(e.RV))
            {
                broken = true;
                MarkDown(state, e.RV.ToString());
                if (attempt > 0)
                {
                    throw new HsmUnavailableException($"HSM unavailable ({e.RV})", e);
                }
            }
            catch (Pkcs11Exception e)
            {
                throw Classify(e, name);
            }
            catch (Exception e) when (IsNativeFault(e))
            {
                // A module answering with garbage (a length of 2^64-1, a null where a value was promised): not data to use.
                broken = true;
                throw new HsmUnavailableException($"HSM operation {name} failed: the module returned something unusable ({e.GetType().Name})", e);
            }
            catch (ObjectDisposedException e) when (state.Epoch != _module.Epoch)
            {
                // Another connection re-initialised the module under us: our sessions are gone.
                broken = true;
                MarkDown(state, "module re-initialised");
                if (attempt > 0)
                {
                    throw new HsmUnavailableException("HSM unavailable (module re-initialised)", e);
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
                _poolSlots.Release();
            }
        }
    }

    /// <summary>Runs an operation on the session that owns unwrapped-seed objects, one at a time.</summary>
    internal T ExecuteOnCacheSession<T>(Func<HsmContext, T> operation, [CallerMemberName] string name = "")
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _workers.Run(_ => ExecuteOnCacheSessionCore(operation, name), name);
    }

    private T ExecuteOnCacheSessionCore<T>(Func<HsmContext, T> operation, string name)
    {
        var started = _time.GetTimestamp();
        for (var attempt = 0; ; attempt++)
        {
            var state = EnsureConnected();
            _module.EnterOperation();
            try
            {
                T result;
                lock (state.CacheSessionLock)
                {
                    result = RunWithKeyReload(new HsmContext(this, state.CacheSession, state), operation);
                }

                _metrics.Completed(name, _time.GetElapsedTime(started));
                return result;
            }
            catch (Pkcs11Exception e) when (IsConnectionLoss(e.RV))
            {
                MarkDown(state, e.RV.ToString());
                if (attempt > 0)
                {
                    throw new HsmUnavailableException($"HSM unavailable ({e.RV})", e);
                }
            }
            catch (Pkcs11Exception e)
            {
                throw Classify(e, name);
            }
            catch (Exception e) when (IsNativeFault(e))
            {
                MarkDown(state, e.GetType().Name);
                throw new HsmUnavailableException($"HSM operation {name} failed: the module returned something unusable ({e.GetType().Name})", e);
            }
            finally
            {
                _module.ExitOperation();
            }
        }
    }

    /// <summary>
    /// Creates whichever purposes have no key yet, as version 1, generated inside the HSM as token objects:
    /// sensitive, never extractable, usable only for their purpose. A purpose whose current version does not suit the
    /// configured scheme (an AES seed KEK where <c>CKM_RSA_PKCS_OAEP</c> is configured, a version without the MAC key a
    /// tagged scheme needs) gets a new version that does, as a rotation would. Returns the labels created (none on a
    /// second run).
    /// </summary>
    public IReadOnlyList<string> InitializeKeys() => ExecuteExclusive(ctx =>
    {
        lock (_keysLock)
        {
            // Read from the token, not the snapshot: another process may have run init since.
            var present = LoadKeys(ctx.Session);
            var created = new List<string>();
            foreach (var purpose in KeyLabels.All)
            {
                var versions = present.Versions(purpose);
                if (versions.Count > 0 && present.CurrentEntry(purpose).Entry.Exposed)
                {
                    throw new HsmConfigurationException($"token '{_options.TokenLabel}': {Unsuited(present, purpose)}");
                }

                if (versions.Count == 0 || Unsuited(present, purpose) is not null)
                {
                    created.AddRange(KeyGenerator.Generate(ctx.Session, purpose, versions.Count == 0 ? 1 : versions[^1] + 1, WrapScheme, SealScheme));
                }
            }

            // Re-read while still alone on the module, so that the token's re-index happens here (see ExecuteExclusive).
            Install(ctx.State, created.Count > 0 ? LoadKeys(ctx.Session) : present);
            return (IReadOnlyList<string>)created;
        }
    });

    /// <summary>
    /// One line per purpose whose current key does not suit the configured schemes (what to do included); empty when
    /// every present key does. Purposes with no key at all are not listed (see <see cref="KeyVersions"/>).
    /// </summary>
    public IReadOnlyList<string> KeyProblems() => Execute(ctx =>
        (IReadOnlyList<string>)KeyLabels.All.Where(p => ctx.Keys.Versions(p).Count > 0).Select(p => Unsuited(ctx.Keys, p)).OfType<string>().ToList());

    private string? Unsuited(KeyRing ring, KeyPurpose purpose)
    {
        var (version, entry) = ring.CurrentEntry(purpose);
        var label = KeyLabels.Label(purpose, version);
        if (entry.Exposed)
        {
            // A design property that cannot hold with such a key: refused, never used.
            return $"{label} can leave the HSM (it is extractable or not sensitive): recreate it with CKA_SENSITIVE=true and CKA_EXTRACTABLE=false";
        }

        return purpose switch
        {
            KeyPurpose.SeedKek when WrapScheme == SeedWrapScheme.RsaOaepHmac && (!entry.IsRsa || entry.Public is null)
                => $"{label} is not an RSA key pair, which Hsm:WrapMechanism CKM_RSA_PKCS_OAEP needs: run init to create the next version",
            KeyPurpose.SeedKek when WrapScheme != SeedWrapScheme.RsaOaepHmac && entry.IsRsa
                => $"{label} is an RSA key pair, which Hsm:WrapMechanism {HsmSchemes.SettingValue(WrapScheme)} cannot use: run init to create the next version",
            KeyPurpose.SeedKek when HsmSchemes.NeedsMacKey(WrapScheme) && entry.Mac is null
                => $"{label} has no MAC key ({KeyLabels.MacLabel(purpose, version)}), which Hsm:WrapMechanism {HsmSchemes.SettingValue(WrapScheme)} needs: run init to create the next version",
            KeyPurpose.Seal when HsmSchemes.NeedsMacKey(SealScheme) && entry.Mac is null
                => $"{label} has no MAC key ({KeyLabels.MacLabel(purpose, version)}), which Hsm:SealMechanism {HsmSchemes.SettingValue(SealScheme)} needs: run init to create the next version",
            _ => null,
        };
    }

    /// <summary>
    /// Creates version N+1 of a purpose's key, generated inside the HSM with the same attributes as <c>init</c>'s (and
    /// of the kind the configured scheme needs); new data uses it from now on. N is read from the token itself, not from
    /// this process's snapshot, so a rotation made elsewhere is continued rather than repeated. Returns its label.
    /// </summary>
    public string RotateKey(KeyPurpose purpose) => ExecuteExclusive(ctx =>
    {
        lock (_keysLock)
        {
            var versions = LoadKeys(ctx.Session).Versions(purpose);
            var next = versions.Count == 0 ? 1 : versions[^1] + 1;
            KeyGenerator.Generate(ctx.Session, purpose, next, WrapScheme, SealScheme);
            Install(ctx.State, LoadKeys(ctx.Session));
            return KeyLabels.Label(purpose, next);
        }
    });

    /// <summary>
    /// Destroys an older version of a purpose's key on the token. The caller must first make sure no data still
    /// needs it. Returns false when the token has no such version; the current version is never destroyed
    /// (<see cref="InvalidOperationException"/>).
    /// </summary>
    public bool RetireKey(KeyPurpose purpose, int version) => ExecuteExclusive(ctx =>
    {
        lock (_keysLock)
        {
            var ring = LoadKeys(ctx.Session);
            var versions = ring.Versions(purpose);
            if (!versions.Contains(version))
            {
                Install(ctx.State, ring);
                return false;
            }

            if (versions[^1] == version)
            {
                throw new InvalidOperationException($"{KeyLabels.Label(purpose, version)} is the current key and cannot be retired");
            }

            foreach (var obj in ring.Entry(purpose, version).Objects)
            {
                ctx.Session.DestroyObject(obj);
            }

            Install(ctx.State, LoadKeys(ctx.Session));
            return true;
        }
    });

    /// <summary>The current (newest) version of a purpose's key, as this process's key ring knows it.</summary>
    public int CurrentVersion(KeyPurpose purpose) => Execute(ctx => ctx.Keys.Current(purpose).Version);

    /// <summary>What the token says about itself (label, maker, model, serial) and the slot it is in.</summary>
    public HsmTokenDescription DescribeToken() => Execute(ctx =>
    {
        var info = ctx.State.Slot.GetTokenInfo();
        return new HsmTokenDescription(info.Label.Trim(), ctx.State.Slot.SlotId, info.ManufacturerId.Trim(), info.Model.Trim(), info.SerialNumber.Trim());
    });

    /// <summary>Re-reads the key objects from the token (after <c>init</c>, rotation, or another node's rotation).</summary>
    public void ReloadKeys() => Execute(ctx =>
    {
        lock (_keysLock)
        {
            Install(ctx.State, LoadKeys(ctx.Session));
        }

        return 0;
    });

    /// <summary>How many times this connection has read the token's key objects (for tests of reload frequency).</summary>
    internal long KeyRingReads => Interlocked.Read(ref _keyRingReads);

    private long Now() => _time.GetUtcNow().UtcTicks;

    private KeyRing LoadKeys(ISession session)
    {
        Interlocked.Increment(ref _keyRingReads);
        return KeyRing.Load(session, Now());
    }

    /// <summary>
    /// Runs an operation; when it names a key version this snapshot lacks (made by another node since, typically),
    /// reads the token once and runs it again. A version already looked for in vain fails at once.
    /// </summary>
    private T RunWithKeyReload<T>(HsmContext ctx, Func<HsmContext, T> operation)
    {
        UnknownKeyVersionException miss;
        try
        {
            return operation(ctx);
        }
        catch (UnknownKeyVersionException e)
        {
            miss = e;
        }

        // Not in an exception filter: a device error while reading the token must reach the reconnect logic.
        if (!ReloadAfterMiss(ctx, miss))
        {
            throw new HsmDataException(miss.Message);
        }

        try
        {
            return operation(ctx);
        }
        catch (UnknownKeyVersionException e)
        {
            throw new HsmDataException(e.Message);
        }
    }

    private bool ReloadAfterMiss(HsmContext ctx, UnknownKeyVersionException miss)
    {
        lock (_keysLock)
        {
            var current = ctx.State.Keys;
            if (!ReferenceEquals(current, miss.Ring))
            {
                // Someone read the token since this operation took its snapshot: retry with theirs.
                return !current.IsKnownAbsent(miss.Purpose, miss.Version);
            }

            if (current.IsKnownAbsent(miss.Purpose, miss.Version))
            {
                return false;
            }

            var fresh = LoadKeys(ctx.Session);
            var found = fresh.Versions(miss.Purpose).Contains(miss.Version);
            if (!found)
            {
                fresh.MarkAbsent(miss.Purpose, miss.Version);
            }

            Install(ctx.State, fresh);
            return found;
        }
    }

    /// <summary>
    /// Every <see cref="HsmOptions.KeyRefreshInterval"/> one operation reads the token again, so that new data on
    /// every node moves to a version another node created. Others keep going with the snapshot meanwhile.
    /// </summary>
    private void RefreshKeysIfDue(HsmContext ctx)
    {
        var interval = _options.KeyRefreshInterval.Ticks;
        if (interval <= 0)
        {
            return;
        }

        var now = Now();
        if (now - ctx.State.Keys.LoadedAt < interval || !_keysLock.TryEnter())
        {
            return;
        }

        try
        {
            if (now - ctx.State.Keys.LoadedAt >= interval)
            {
                Install(ctx.State, LoadKeys(ctx.Session));
            }
        }
        finally
        {
            _keysLock.Exit();
        }
    }

    /// <summary>Replaces the snapshot (caller holds the keys lock) and tells listeners when the versions changed.</summary>
    private void Install(TokenState state, KeyRing fresh)
    {
        var previous = state.Keys;
        state.Keys = fresh;
        if (!previous.SameVersionsAs(fresh))
        {
            ThreadPool.QueueUserWorkItem(static c => c.KeysChanged?.Invoke(c, EventArgs.Empty), this, preferLocal: false);
        }
    }

    /// <summary>Test hook: <c>C_CloseAllSessions</c> on the token, as a device reset or another component would.</summary>
    internal void CloseAllSessionsForTesting() => _state?.Slot.CloseAllSessions();

    internal CKS? MainSessionStateForTesting() => _state?.Main.GetSessionInfo().State;

    /// <summary>
    /// Test hook: the slot this connection uses, so that a test's own session needs no scan of every slot (a
    /// C_GetTokenInfo on another connection's token outside the operation lock, which SoftHSM2 may answer by
    /// re-indexing that token while it generates a key).
    /// </summary>
    internal ISlot SlotForTesting() => EnsureConnected().Slot;

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

    private TokenState EnsureConnected()
    {
        var state = _state;
        if (state is not null && state.Epoch == _module.Epoch && StorePresent())
        {
            return state;
        }

        lock (_connectLock)
        {
            var now = _time.GetUtcNow().UtcTicks;
            state = _state;
            if (state is not null)
            {
                var reason = state.Epoch != _module.Epoch ? "module re-initialised"
                    : _storePath is not null && !Directory.Exists(_storePath) ? "token store missing"
                    : null;
                if (reason is null)
                {
                    return state;
                }

                CloseState(state);
                _state = null;
                ThreadPool.QueueUserWorkItem(r => StateChanged?.Invoke(this, new HsmStateChangedEventArgs(false, (string)r!)), reason);
                if (reason == "token store missing")
                {
                    // A module serving from memory after its store vanished; reconnect only once it is back.
                    _storeLost = true;
                    Interlocked.Exchange(ref _nextAttemptTicks, now + _options.ReconnectInterval.Ticks);
                    throw new HsmUnavailableException($"HSM token '{_options.TokenLabel}' store is missing");
                }
            }
            else if (now < Interlocked.Read(ref _nextAttemptTicks))
            {
                throw new HsmUnavailableException($"HSM token '{_options.TokenLabel}' is unavailable");
            }

            Interlocked.Exchange(ref _nextAttemptTicks, now + _options.ReconnectInterval.Ticks);
            try
            {
                state = Connect(startup: false);
            }
            catch (HsmException e)
            {
                throw e as HsmUnavailableException ?? new HsmUnavailableException(e.Message, e);
            }

            _state = state;
        }

        StateChanged?.Invoke(this, new HsmStateChangedEventArgs(true, "reconnected"));
        return state;
    }

    private TokenState Connect(bool startup)
    {
        if (!startup && _storePath is not null && !Directory.Exists(_storePath))
        {
            throw new HsmUnavailableException($"HSM token '{_options.TokenLabel}' store is missing");
        }

        if (_storeLost)
        {
            // The module kept serving from memory while its store was gone; start again from what is on disk.
            _module.Reinitialize(_module.Epoch);
            _storeLost = false;
        }

        if (!startup)
        {
            _module.EnsureLoaded();
        }

        // The slot is found and opened under the module's operation lock, so that another connection's re-initialisation
        // (C_Finalize, C_Initialize) cannot run in between and make a present token look absent.
        var opened = OpenUnderOperationLock(startup);
        if (opened is null && !startup)
        {
            // Some modules (SoftHSM2 among them) only see a token that came back after C_Initialize.
            _module.Reinitialize(_module.Epoch);
            opened = OpenUnderOperationLock(startup);
        }

        return opened ?? throw (startup
            ? new HsmConfigurationException($"no HSM token labelled '{_options.TokenLabel}' in module '{_options.ModulePath}'")
            : new HsmUnavailableException($"HSM token '{_options.TokenLabel}' is not present"));
    }

    /// <summary>Finds the token's slot and opens the main and cache sessions on it; null when the token is absent.</summary>
    private TokenState? OpenUnderOperationLock(bool startup)
    {
        _module.EnterOperation();
        try
        {
            var epoch = _module.Epoch;
            var slot = FindSlot();
            return slot is null ? null : Open(slot, epoch, startup);
        }
        finally
        {
            _module.ExitOperation();
        }
    }

    private TokenState Open(ISlot slot, int epoch, bool startup)
    {
        ISession? main = null;
        ISession? cache = null;
        try
        {
            if (startup)
            {
                // Under the operation lock like every native call (another connection may be re-initialising the module).
                MechanismProbe.Check(slot, WrapScheme, SealScheme, _options.ModulePath);
            }

            main = slot.OpenSession(SessionType.ReadWrite);
            try
            {
                main.Login(CKU.CKU_USER, _pin);
            }
            catch (Pkcs11Exception e) when (e.RV == CKR.CKR_USER_ALREADY_LOGGED_IN)
            {
                // Login state is per application and token: another session already holds it.
            }

            cache = slot.OpenSession(SessionType.ReadWrite);
            var keys = LoadKeys(main);
            _storePath ??= SoftHsmStore.TokenDirectory(_options.SoftHsmConfig, slot.GetTokenInfo().SerialNumber);
            var generation = Interlocked.Increment(ref _generation);
            return new TokenState(slot, main, cache, keys, generation, epoch);
        }
        catch (Pkcs11Exception e)
        {
            SafeClose(cache);
            SafeClose(main);
            if (e.RV is CKR.CKR_PIN_INCORRECT or CKR.CKR_PIN_LOCKED or CKR.CKR_PIN_EXPIRED or CKR.CKR_PIN_INVALID or CKR.CKR_PIN_LEN_RANGE)
            {
                throw new HsmConfigurationException($"HSM login to token '{_options.TokenLabel}' refused: {e.RV}", e);
            }

            throw startup
                ? new HsmConfigurationException($"HSM token '{_options.TokenLabel}' could not be opened: {e.RV}", e)
                : new HsmUnavailableException($"HSM token '{_options.TokenLabel}' could not be opened: {e.RV}", e);
        }
    }

    /// <summary>
    /// SoftHSM2 keeps serving a token from memory after its files are gone (and silently loses writes), so for
    /// it the token directory's presence is checked, at most every 250 ms. Other modules report loss themselves.
    /// </summary>
    private bool StorePresent()
    {
        if (_storePath is null)
        {
            return true;
        }

        var now = _time.GetTimestamp();
        if (now < Interlocked.Read(ref _nextStoreCheck))
        {
            return true;
        }

        var present = Directory.Exists(_storePath);
        if (present)
        {
            Interlocked.Exchange(ref _nextStoreCheck, now + (_time.TimestampFrequency / 4));
        }

        return present;
    }

    private ISlot? FindSlot()
    {
        List<ISlot> slots;
        try
        {
            slots = _module.Library.GetSlotList(SlotsType.WithTokenPresent);
        }
        catch (Pkcs11Exception)
        {
            // A module in trouble enumerates nothing; the caller reports the token as absent.
            return null;
        }

        foreach (var slot in slots)
        {
            try
            {
                if (string.Equals(slot.GetTokenInfo().Label.Trim(), _options.TokenLabel, StringComparison.Ordinal))
                {
                    return slot;
                }
            }
            catch (Pkcs11Exception)
            {
                // Another token that cannot answer right now (removed, failing) must not hide ours: look further.
            }
        }

        return null;
    }

    private void MarkDown(TokenState state, string reason)
    {
        var changed = false;
        lock (_connectLock)
        {
            if (ReferenceEquals(_state, state))
            {
                _state = null;
                CloseState(state);
                Interlocked.Exchange(ref _nextAttemptTicks, 0); // the first retry reconnects at once
                changed = true;
            }
        }

        if (changed)
        {
            StateChanged?.Invoke(this, new HsmStateChangedEventArgs(false, reason));
        }
    }

    private void CloseState(TokenState state)
    {
        // Native calls, so under the operation lock: a C_Finalize by another connection must not run under them.
        _module.EnterOperation();
        try
        {
            SeedHandles.Clear();
            lock (state.CacheSessionLock)
            {
                SafeClose(state.CacheSession);
            }

            // No C_Logout: login is per application and token, so it would log out every other connection of this
            // process to the same token (a second node, the command line), hiding their private keys. Closing the
            // last session of the token logs out.
            SafeClose(state.Main);
        }
        finally
        {
            _module.ExitOperation();
        }
    }

    private PooledSession Lease(TokenState state)
    {
        while (_idle.TryTake(out var pooled))
        {
            if (pooled.Generation == state.Generation)
            {
                return pooled;
            }

            SafeClose(pooled.Session);
        }

        return new PooledSession(state.Slot.OpenSession(SessionType.ReadWrite), state.Generation);
    }

    private void Return(PooledSession pooled, bool discard)
    {
        if (discard || _disposed)
        {
            SafeClose(pooled.Session);
        }
        else
        {
            _idle.Add(pooled);
        }
    }

    private static void SafeClose(ISession? session)
    {
        if (session is null)
        {
            return;
        }

        try
        {
            session.CloseSession();
        }
        catch (Pkcs11Exception)
        {
            // Closing a session the device already dropped.
        }
        catch (Exception e) when (e is ObjectDisposedException or HsmUnavailableException || IsNativeFault(e))
        {
            // The module was re-initialised (the session died with it), or answers with garbage.
        }
    }

    internal static bool IsConnectionLoss(CKR rv) => rv is
        CKR.CKR_SESSION_HANDLE_INVALID or CKR.CKR_SESSION_CLOSED or CKR.CKR_DEVICE_ERROR or CKR.CKR_DEVICE_REMOVED
        or CKR.CKR_DEVICE_MEMORY or CKR.CKR_TOKEN_NOT_PRESENT or CKR.CKR_TOKEN_NOT_RECOGNIZED
        or CKR.CKR_USER_NOT_LOGGED_IN or CKR.CKR_CRYPTOKI_NOT_INITIALIZED or CKR.CKR_SLOT_ID_INVALID
        or CKR.CKR_OBJECT_HANDLE_INVALID or CKR.CKR_KEY_HANDLE_INVALID or CKR.CKR_GENERAL_ERROR;

    /// <summary>
    /// What a PKCS#11 error means for the caller: data the HSM refused (a blob that does not unwrap or decrypt), or an HSM
    /// that cannot serve (everything else, a mechanism or attribute the module does not support included). The message
    /// names the operation and the CKR, and nothing of the data.
    /// </summary>
    private static HsmException Classify(Pkcs11Exception e, string name) => e.RV switch
    {
        CKR.CKR_WRAPPED_KEY_INVALID or CKR.CKR_WRAPPED_KEY_LEN_RANGE or CKR.CKR_ENCRYPTED_DATA_INVALID
            or CKR.CKR_ENCRYPTED_DATA_LEN_RANGE or CKR.CKR_UNWRAPPING_KEY_HANDLE_INVALID
            => new HsmDataException($"the HSM refused the data in {name} ({e.RV})", e),
        _ => new HsmUnavailableException($"HSM operation {name} failed ({e.RV})", e),
    };

    /// <summary>Failures from inside Pkcs11Interop's marshalling of what a module returned, never from our own code.</summary>
    private static bool IsNativeFault(Exception e) => e is OverflowException or OutOfMemoryException or IndexOutOfRangeException
        or NullReferenceException or InvalidCastException or UnmanagedException or System.Runtime.InteropServices.ExternalException
        or AccessViolationException;

    private sealed record PooledSession(ISession Session, int Generation);
}

/// <summary>One connected state of the token; replaced whole on reconnection.</summary>
internal sealed class TokenState(ISlot slot, ISession main, ISession cacheSession, KeyRing keys, int generation, int epoch)
{
    public ISlot Slot { get; } = slot;

    public ISession Main { get; } = main;

    public ISession CacheSession { get; } = cacheSession;

    public Lock CacheSessionLock { get; } = new();

    private volatile KeyRing _keys = keys;

    public KeyRing Keys
    {
        get => _keys;
        set => _keys = value;
    }

    public int Generation { get; } = generation;

    public int Epoch { get; } = epoch;
}

/// <summary>What an operation sees: its session, the key ring and the shared factories.</summary>
internal readonly struct HsmContext(HsmConnection connection, ISession session, TokenState state)
{
    public HsmConnection Connection { get; } = connection;

    public ISession Session { get; } = session;

    public TokenState State { get; } = state;

    public KeyRing Keys => State.Keys;

    public int Generation => State.Generation;

    public static IMechanism Mechanism(CKM mechanism) => Pkcs11Module.Factories.MechanismFactory.Create(mechanism);

    public static IMechanism Mechanism(CKM mechanism, byte[] parameter) => Pkcs11Module.Factories.MechanismFactory.Create(mechanism, parameter);

    /// <summary>An HMAC on this context's session: <c>C_SignInit</c> and one <c>C_Sign</c> into a buffer of the hash's size.</summary>
    public byte[] Hmac(CKM mechanism, IObjectHandle key, byte[] data) => Connection.Signer.Hmac(Session, mechanism, key, data);

    /// <summary>
    /// Whether a failure of unwrap or decrypt was the data's fault. SoftHSM2 answers <c>CKR_GENERAL_ERROR</c> when an
    /// RFC 5649 integrity check or a GCM tag fails; that is bad data when the same session still serves a keyed
    /// operation, and a lost device otherwise.
    /// </summary>
    public static bool IsBadData(HsmContext ctx, Pkcs11Exception e)
    {
        if (e.RV is CKR.CKR_WRAPPED_KEY_INVALID or CKR.CKR_WRAPPED_KEY_LEN_RANGE or CKR.CKR_ENCRYPTED_DATA_INVALID
            or CKR.CKR_ENCRYPTED_DATA_LEN_RANGE or CKR.CKR_DATA_INVALID)
        {
            return true;
        }

        if (e.RV != CKR.CKR_GENERAL_ERROR)
        {
            return false;
        }

        try
        {
            ctx.Hmac(CKM.CKM_SHA256_HMAC, ctx.Keys.Current(KeyPurpose.Lookup).Handle, [0]);
            return true;
        }
        catch (Pkcs11Exception)
        {
            return false;
        }
    }

    public static IObjectAttribute Attribute(CKA type, bool value) => Pkcs11Module.Factories.ObjectAttributeFactory.Create(type, value);

    public static IObjectAttribute Attribute(CKA type, ulong value) => Pkcs11Module.Factories.ObjectAttributeFactory.Create(type, value);

    public static IObjectAttribute Attribute(CKA type, string value) => Pkcs11Module.Factories.ObjectAttributeFactory.Create(type, value);

    public static IObjectAttribute Attribute(CKA type, byte[] value) => Pkcs11Module.Factories.ObjectAttributeFactory.Create(type, value);

    public static IObjectAttribute Attribute(CKA type, CKO value) => Pkcs11Module.Factories.ObjectAttributeFactory.Create(type, value);

    public static IObjectAttribute Attribute(CKA type, CKK value) => Pkcs11Module.Factories.ObjectAttributeFactory.Create(type, value);
}

/// <summary>The token an <see cref="HsmConnection"/> serves, as it describes itself.</summary>
/// <param name="Label">Token label.</param>
/// <param name="SlotId">Slot the token is in (slot numbers may change between restarts; the label does not).</param>
/// <param name="Manufacturer">Token manufacturer id.</param>
/// <param name="Model">Token model.</param>
/// <param name="SerialNumber">Token serial number.</param>
public sealed record HsmTokenDescription(string Label, ulong SlotId, string Manufacturer, string Model, string SerialNumber);

/// <summary>Event data for <see cref="HsmConnection.StateChanged"/>.</summary>
public sealed class HsmStateChangedEventArgs(bool available, string reason) : EventArgs
{
    /// <summary>True when the token serves again.</summary>
    public bool Available { get; } = available;

    /// <summary>Short reason (a CKR name); never key material.</summary>
    public string Reason { get; } = reason;
}
