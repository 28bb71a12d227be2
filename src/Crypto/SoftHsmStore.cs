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
