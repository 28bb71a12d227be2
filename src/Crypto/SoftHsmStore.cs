namespace DevRift.Hsm.Crypto;

/// <summary>Where SoftHSM2 keeps a token on disk: <c>directories.tokendir</c>/&lt;uuid ending in the serial&gt;.</summary>
internal static class SoftHsmStore
{
    public static string? TokenDirectory(string? configPath, string serialNumber)
    {
        if (string.IsNullOrEmpty(configPath) || !File.Exists(configPath))
        {
            return null;
        }

        string? tokenDir = null;
        foreach (var line in File.ReadLines(configPath))
        {
            var trimmed = line.Trim();
            if (trimmed.StartsWith("directories.tokendir", StringComparison.Ordinal) && trimmed.Contains('=', StringComparison.Ordinal))
            {
                tokenDir = trimmed[(trimmed.IndexOf('=', StringComparison.Ordinal) + 1)..].Trim();
            }
        }

        if (tokenDir is null || !Directory.Exists(tokenDir))
        {
            return null;
        }

        var serial = serialNumber.Trim();
        return Directory.GetDirectories(tokenDir)
            .FirstOrDefault(d => Path.GetFileName(d).Replace("-", "", StringComparison.Ordinal)
                .EndsWith(serial, StringComparison.OrdinalIgnoreCase));
    }
}

/// <summary>
/// The one module-specific check of the layer, behind this seam: SoftHSM2 keeps serving a token from memory after its
/// files are gone (and silently loses writes), so for it the token directory's presence is watched, at most every
/// 250 ms on the hot path and at once when asked. Other modules report loss themselves; for them nothing is watched.
/// </summary>
internal sealed class TokenStoreWatch(TimeProvider time)
{
    private string? _path;
    private long _nextCheck;
    private volatile bool _lost;

    /// <summary>
    /// Finds the directory of the SoftHSM2 token just connected (nothing for other modules: no configuration, or no
    /// match). Once found, a token that cannot be found again (it failed over to a replica elsewhere) keeps its path.
    /// </summary>
    public void Locate(string? softHsmConfig, string serialNumber)
    {
        if (SoftHsmStore.TokenDirectory(softHsmConfig, serialNumber) is { } path)
        {
            _path = path;
        }
    }

    /// <summary>True when a watched store is missing now (checked on disk, not throttled).</summary>
    public bool Missing => _path is not null && !Directory.Exists(_path);

    /// <summary>The store vanished while the module was serving it: reconnecting must start again from disk.</summary>
    public bool Lost
    {
        get => _lost;
        set => _lost = value;
    }

    /// <summary>False when a watched store is gone; looks at the disk at most every 250 ms.</summary>
    public bool PresentThrottled()
    {
        if (_path is null)
        {
            return true;
        }

        var now = time.GetTimestamp();
        if (now < Interlocked.Read(ref _nextCheck))
        {
            return true;
        }

        var present = Directory.Exists(_path);
        if (present)
        {
            Interlocked.Exchange(ref _nextCheck, now + (time.TimestampFrequency / 4));
        }

        return present;
    }

    /// <summary>Makes the next <see cref="PresentThrottled"/> look at the disk.</summary>
    public void CheckNow() => Interlocked.Exchange(ref _nextCheck, 0);
}
