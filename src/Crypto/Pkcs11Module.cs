using System.Reflection;
using System.Runtime.InteropServices;
using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace DevRift.Hsm.Crypto;

/// <summary>
/// One loaded PKCS#11 module per path per process (<c>C_Initialize</c> is process-wide). Connections to
/// tokens of the same module share it. <see cref="Reinitialize"/> is the last resort of recovery, for modules
/// that only notice a returning token after <c>C_Finalize</c>/<c>C_Initialize</c>; it bumps
/// <see cref="Epoch"/> so that every connection knows its sessions are gone.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "One per module path, alive for the whole process.")]
internal sealed partial class Pkcs11Module
{
    private static readonly Lock s_registryLock = new();
    private static readonly Dictionary<string, Pkcs11Module> s_modules = new(StringComparer.Ordinal);
    private static bool s_resolverSet;

    private readonly Lock _lock = new();
    private readonly ReaderWriterLockSlim _inUse = new(LockRecursionPolicy.SupportsRecursion);
    private readonly string _path;
    private IPkcs11Library? _library;
    private int _epoch;

    private Pkcs11Module(string path)
    {
        _path = path;
        _library = Load(path);
        Signer = new FixedLengthSigner(path);
    }

    public static Pkcs11InteropFactories Factories { get; } = new();

    /// <summary>The initialised module; after a failed re-initialisation, <see cref="HsmUnavailableException"/> until <see cref="EnsureLoaded"/> succeeds.</summary>
    public IPkcs11Library Library => Volatile.Read(ref _library) ?? throw new HsmUnavailableException($"PKCS#11 module '{_path}' is not initialised");

    /// <summary>
    /// Initialises the module again when an earlier re-initialisation failed (a network HSM that refused connections at
    /// that moment): the layer keeps trying, at the connection's reconnect pace, until the module serves again.
    /// </summary>
    public void EnsureLoaded()
    {
        if (Volatile.Read(ref _library) is not null)
        {
            return;
        }

        lock (_lock)
        {
            if (_library is not null)
            {
                return;
            }

            _inUse.EnterWriteLock();
            try
            {
                _library = LoadAtRunTime(_path);
                Interlocked.Increment(ref _epoch);
            }
            finally
            {
                _inUse.ExitWriteLock();
            }
        }
    }

    /// <summary>HMACs without a length query (the same module through the low-level API).</summary>
    public FixedLengthSigner Signer { get; }

    public int Epoch => Volatile.Read(ref _epoch);

    public static Pkcs11Module Get(string path, string? softHsmConfig)
    {
        lock (s_registryLock)
        {
            if (s_modules.TryGetValue(path, out var module))
            {
                return module;
            }

            if (!File.Exists(path))
            {
                throw new HsmConfigurationException($"PKCS#11 module '{path}' does not exist");
            }

            if (!string.IsNullOrEmpty(softHsmConfig))
            {
                if (!File.Exists(softHsmConfig))
                {
                    throw new HsmConfigurationException($"SoftHSM2 configuration '{softHsmConfig}' does not exist");
                }

                // The module reads getenv("SOFTHSM2_CONF"); Environment.SetEnvironmentVariable does not reach libc.
                _ = NativeMethods.setenv("SOFTHSM2_CONF", softHsmConfig, 1);
            }

            SetResolver();
            NativeHeapPolicy.Apply();
            module = new Pkcs11Module(path);
            s_modules[path] = module;
            return module;
        }
    }

    /// <summary>
    /// Held around every native call so that <see cref="Reinitialize"/> never finalises under one: shared, or
    /// <paramref name="exclusive"/> for the rare operations no other call of this process may overlap.
    /// </summary>
    public void EnterOperation(bool exclusive = false)
    {
        if (exclusive)
        {
            _inUse.EnterWriteLock();
        }
        else
        {
            _inUse.EnterReadLock();
        }
    }

    /// <summary>Ends what <see cref="EnterOperation"/> began.</summary>
    public void ExitOperation(bool exclusive = false)
    {
        if (exclusive)
        {
            _inUse.ExitWriteLock();
        }
        else
        {
            _inUse.ExitReadLock();
        }
    }

    /// <summary>True when this thread is inside an operation (and so must not re-initialise).</summary>
    public bool InOperation => _inUse.IsReadLockHeld || _inUse.IsWriteLockHeld;

    /// <summary>Finalises and re-initialises the module unless someone already did since <paramref name="seenEpoch"/>.</summary>
    public void Reinitialize(int seenEpoch)
    {
        if (InOperation)
        {
            return;
        }

        lock (_lock)
        {
            if (_epoch != seenEpoch)
            {
                return;
            }

            _inUse.EnterWriteLock();
            try
            {
                try
                {
                    _library?.Dispose();
                }
                catch (Exception e) when (e is Pkcs11Exception or ObjectDisposedException)
                {
                    // C_Finalize of a module that already lost its device: the new C_Initialize is what matters.
                }

                // Whatever happens next, the sessions of the old initialisation are gone.
                _library = null;
                Interlocked.Increment(ref _epoch);
                _library = LoadAtRunTime(_path);
                Interlocked.Increment(ref _epoch);
            }
            finally
            {
                _inUse.ExitWriteLock();
            }
        }
    }

    /// <summary>As <see cref="Load"/>, but a module that fails to initialise now is unavailable, not misconfigured: it loaded before.</summary>
    private static IPkcs11Library LoadAtRunTime(string path)
    {
        try
        {
            return Load(path);
        }
        catch (HsmConfigurationException e)
        {
            throw new HsmUnavailableException(e.Message, e.InnerException);
        }
    }

    private static IPkcs11Library Load(string path)
    {
        try
        {
            return Factories.Pkcs11LibraryFactory.LoadPkcs11Library(Factories, path, AppType.MultiThreaded);
        }
        catch (Pkcs11Exception e)
        {
            throw new HsmConfigurationException($"PKCS#11 module '{path}' failed to initialise: {e.RV}", e);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or UnmanagedException or BadImageFormatException)
        {
            throw new HsmConfigurationException($"PKCS#11 module '{path}' could not be loaded: {e.Message}", e);
        }
    }

    // Pkcs11Interop P/Invokes "libdl", which Debian ships only as libdl.so.2.
    private static void SetResolver()
    {
        if (s_resolverSet)
        {
            return;
        }

        NativeLibrary.SetDllImportResolver(typeof(Pkcs11InteropFactories).Assembly, Resolve);
        s_resolverSet = true;
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name == "libdl" && NativeLibrary.TryLoad("libdl.so.2", out var handle))
        {
            return handle;
        }

        return IntPtr.Zero;
    }

    private static partial class NativeMethods
    {
        [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int setenv(string name, string value, int overwrite);
    }
}
