using Net.Pkcs11Interop.HighLevelAPI;

namespace DevRift.Hsm.Crypto;

/// <summary>The key ring: init, rotation, retirement, suitability for the configured schemes, reloads.</summary>
public sealed partial class HsmConnection
{
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

    /// <summary>
    /// Replaces the snapshot (caller holds the keys lock) with <paramref name="fresh"/> and its session copies, destroys
    /// the copies no longer used, and tells listeners when the versions changed.
    /// </summary>
    private void Install(TokenState state, KeyRing fresh)
    {
        var previous = state.Keys;
        fresh = fresh.WithSessionCopies(state.Main, previous);
        state.Keys = fresh;
        previous.DestroyCopiesNotIn(fresh, state.Main);
        if (!previous.SameVersionsAs(fresh))
        {
            ThreadPool.QueueUserWorkItem(static c => c.KeysChanged?.Invoke(c, EventArgs.Empty), this, preferLocal: false);
        }
    }
}
