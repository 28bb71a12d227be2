using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;
using static DevRift.Hsm.Crypto.HsmErrors;

namespace DevRift.Hsm.Crypto;

/// <summary>Connecting, reconnecting and losing the token; the session pool.</summary>
public sealed partial class HsmConnection
{
    private TokenState EnsureConnected()
    {
        var state = _state;
        if (state is not null && state.Epoch == _module.Epoch && _store.PresentThrottled())
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
                    : _store.Missing ? "token store missing"
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
                    _store.Lost = true;
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

        StateChanged?.Invoke(this, new HsmStateChangedEventArgs(true, state.Label == _options.TokenLabel ? "reconnected" : $"failed over to token '{state.Label}'"));
        return state;
    }

    private TokenState Connect(bool startup)
    {
        if (!startup && _store.Missing && _options.FailoverTokenLabels.Count == 0)
        {
            throw new HsmUnavailableException($"HSM token '{_options.TokenLabel}' store is missing");
        }

        if (_store.Lost)
        {
            // The module kept serving from memory while its store was gone; start again from what is on disk.
            _module.Reinitialize(_module.Epoch);
            _store.Lost = false;
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
            var keys = LoadKeys(main).WithSessionCopies(main, null);
            var info = slot.GetTokenInfo();
            _store.Locate(_options.SoftHsmConfig, info.SerialNumber);
            var generation = Interlocked.Increment(ref _generation);
            return new TokenState(slot, main, cache, keys, generation, epoch) { Label = info.Label.Trim() };
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

        var labels = new Dictionary<string, ISlot>(StringComparer.Ordinal);
        foreach (var slot in slots)
        {
            try
            {
                labels.TryAdd(slot.GetTokenInfo().Label.Trim(), slot);
            }
            catch (Pkcs11Exception)
            {
                // Another token that cannot answer right now (removed, failing) must not hide ours: look further.
            }
        }

        // The configured token first, then its replicas in their order: a node serves from the first that is present.
        foreach (var label in (IEnumerable<string>)[_options.TokenLabel, .. _options.FailoverTokenLabels])
        {
            if (labels.TryGetValue(label, out var slot))
            {
                return slot;
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
}
