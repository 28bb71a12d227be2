using System.Text;

namespace DevRift.Hsm.Appliance.Backup;

/// <summary>
/// Backup codes in Crockford base32 (no I, L, O, U): 5 bits a character, so 13 characters carry 65 bits.
/// Shown in groups of at most five; read back ignoring case, spaces and hyphens, with I/L → 1 and O → 0.
/// </summary>
public static class BackupCodeFormat
{
    private const string Alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

    /// <summary>Turns HSM random bytes into a code of <paramref name="length"/> characters (5 bits each).</summary>
    public static string FromRandom(ReadOnlySpan<byte> random, int length)
    {
        if (random.Length * 8 < length * 5)
        {
            throw new ArgumentException("not enough random bytes", nameof(random));
        }

        var sb = new StringBuilder(length);
        var bit = 0;
        for (var i = 0; i < length; i++, bit += 5)
        {
            var value = 0;
            for (var b = 0; b < 5; b++)
            {
                var n = bit + b;
                value = (value << 1) | ((random[n / 8] >> (7 - (n % 8))) & 1);
            }

            sb.Append(Alphabet[value]);
        }

        return sb.ToString();
    }

    /// <summary>"ABCDEFGHJKMNP" → "ABCDE-FGHJ-KMNP": groups as even as possible, none longer than five.</summary>
    public static string Grouped(string code)
    {
        ArgumentNullException.ThrowIfNull(code);
        var groups = (code.Length + 4) / 5;
        var sb = new StringBuilder(code.Length + groups);
        var offset = 0;
        for (var g = 0; g < groups; g++)
        {
            var size = (code.Length - offset + (groups - g) - 1) / (groups - g);
            if (sb.Length > 0)
            {
                sb.Append('-');
            }

            sb.Append(code, offset, size);
            offset += size;
        }

        return sb.ToString();
    }

    /// <summary>The canonical form, or null when a character is not Crockford base32.</summary>
    public static string? Normalise(string? typed)
    {
        if (typed is null)
        {
            return null;
        }

        var sb = new StringBuilder(typed.Length);
        foreach (var raw in typed)
        {
            if (raw is ' ' or '-' or '\t')
            {
                continue;
            }

            var c = char.ToUpperInvariant(raw) switch
            {
                'I' or 'L' => '1',
                'O' => '0',
                var other => other,
            };
            if (!Alphabet.Contains(c, StringComparison.Ordinal))
            {
                return null;
            }

            sb.Append(c);
        }

        return sb.ToString();
    }
}
