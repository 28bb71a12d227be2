using System.ComponentModel.DataAnnotations;

namespace DevRift.Hsm.Crypto;

/// <summary>
/// How to reach the PKCS#11 token that holds every long-term key. A deployment with a hardware HSM changes
/// only <see cref="ModulePath"/>, <see cref="TokenLabel"/> and the PIN; the embedded default is SoftHSM2.
/// </summary>
public sealed class HsmOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Hsm";

    /// <summary>Path of the vendor's PKCS#11 shared library. Default: Debian's SoftHSM2 module.</summary>
    [Required]
    public string ModulePath { get; set; } = "/usr/lib/softhsm/libsofthsm2.so";

    /// <summary>Label of the token holding the <c>devrift.*</c> keys. The slot is found by this label, never by number.</summary>
    [Required]
    public string TokenLabel { get; set; } = "devrift";

    /// <summary>
    /// Labels of tokens that hold the same keys as <see cref="TokenLabel"/> (an HSM cluster's replicas, or a second
    /// HSM with the keys cloned by the vendor's tools), in order of preference, reached with the same module and PIN.
    /// When the token in use stops serving, the node reconnects to the first of <see cref="TokenLabel"/> and these that
    /// is present: data made under one opens under the other, as the keys are the same.
    /// </summary>
    public IList<string> FailoverTokenLabels { get; } = [];

    /// <summary>User PIN. Prefer <see cref="PinFile"/> so the PIN is not in the process arguments or environment.</summary>
    public string? Pin { get; set; }

    /// <summary>File holding the user PIN (first line). Used when <see cref="Pin"/> is empty.</summary>
    public string? PinFile { get; set; }

    /// <summary>
    /// SoftHSM2 only: the <c>softhsm2.conf</c> to use. Exported as <c>SOFTHSM2_CONF</c> to the native
    /// environment before the module is loaded. Leave empty for other modules.
    /// </summary>
    public string? SoftHsmConfig { get; set; }

    /// <summary>Most operation sessions open at once; operations beyond this wait for a free session.</summary>
    [Range(1, 1024)]
    public int SessionPoolSize { get; set; } = Math.Max(4, Environment.ProcessorCount * 2);

    /// <summary>
    /// Mechanism that wraps TOTP seeds under the seed KEK: <c>CKM_AES_KEY_WRAP_PAD</c> (RFC 5649; the default),
    /// <c>CKM_AES_KEY_WRAP</c> (RFC 3394; seeds must then be a multiple of 8 bytes), <c>CKM_AES_CBC_PAD</c> (with an
    /// HMAC-SHA256 tag under a MAC key of the KEK's version) or <c>CKM_RSA_PKCS_OAEP</c> (an RSA-3072 KEK, with the same
    /// tag). Each blob records its scheme, so seeds wrapped before a change keep working. Modules differ in what they
    /// offer; start-up names what is missing.
    /// </summary>
    [Required]
    public string WrapMechanism { get; set; } = "CKM_AES_KEY_WRAP_PAD";

    /// <summary>
    /// Mechanism that seals outbox bodies under the seal key: <c>CKM_AES_GCM</c> (the default), <c>CKM_AES_CBC_PAD</c>
    /// (with an HMAC-SHA256 tag under the seal version's MAC key) or <c>CKM_AES_ECB</c> (AES-CTR whose key stream the HSM
    /// computes, with the same tag; for modules that forward nothing better). Each blob records its scheme.
    /// </summary>
    [Required]
    public string SealMechanism { get; set; } = "CKM_AES_GCM";

    /// <summary>
    /// Longest an HSM operation may take. Past it the request gets 503 <c>hsm_unavailable</c>, the session is discarded
    /// when the call returns, and further operations fail fast until the module answers again. Default 5 s.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00")]
    public TimeSpan OperationTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Most unwrapped seeds kept as session objects in the HSM (least recently used are destroyed first).</summary>
    [Range(1, 1_000_000)]
    public int SeedHandleCacheSize { get; set; } = 4096;

    /// <summary>While the HSM is unreachable, how often an operation may try to reconnect; the rest fail fast.</summary>
    public TimeSpan ReconnectInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How often a node reads the token's key objects again, so that a key rotated on another node sharing the
    /// token becomes the one this node's new data uses. Data naming a version this node has not seen yet triggers
    /// a read at once regardless. Zero turns the periodic read off. Default 30 s.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan KeyRefreshInterval { get; set; } = TimeSpan.FromSeconds(30);

    internal string ResolvePin()
    {
        if (!string.IsNullOrEmpty(Pin))
        {
            return Pin;
        }

        if (string.IsNullOrEmpty(PinFile))
        {
            throw new HsmConfigurationException("no HSM PIN configured (set Hsm:PinFile or Hsm:Pin)");
        }

        try
        {
            var pin = File.ReadLines(PinFile).FirstOrDefault()?.Trim();
            return string.IsNullOrEmpty(pin)
                ? throw new HsmConfigurationException($"the HSM PIN file '{PinFile}' is empty")
                : pin;
        }
        catch (IOException e)
        {
            throw new HsmConfigurationException($"cannot read the HSM PIN file '{PinFile}': {e.Message}");
        }
        catch (UnauthorizedAccessException)
        {
            throw new HsmConfigurationException($"no permission to read the HSM PIN file '{PinFile}'");
        }
    }
}
