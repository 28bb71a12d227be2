using CsCheck;
using DevRift.Hsm.Appliance.Backup;

namespace DevRift.Hsm.Appliance.Tests;

/// <summary>Backup codes: Crockford base32 from random bytes, shown in groups, read back forgivingly.</summary>
public sealed class BackupCodeFormatTests
{
    private const string Crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

    [Fact]
    public void Five_bits_a_character_most_significant_first()
    {
        // 0x00 0x44 0x32 0x14 0xC7 = 00000 00001 00010 00011 00100 00101 00110 00111
        Assert.Equal("01234567", BackupCodeFormat.FromRandom([0x00, 0x44, 0x32, 0x14, 0xC7], 8));
        Assert.Equal("ZZZZZZZZ", BackupCodeFormat.FromRandom([0xFF, 0xFF, 0xFF, 0xFF, 0xFF], 8));
    }

    [Fact]
    public void Too_few_random_bytes_for_the_length_is_refused()
    {
        Assert.Throws<ArgumentException>(() => BackupCodeFormat.FromRandom(new byte[8], 13)); // 64 bits < 65
    }

    [Theory]
    [InlineData("ABCDEFGHJKMNP", "ABCDE-FGHJ-KMNP")]
    [InlineData("ABCDEFGH", "ABCD-EFGH")]
    [InlineData("ABCDEFGHJK", "ABCDE-FGHJK")]
    [InlineData("ABCDEFGHJKMNPQRSTVWX", "ABCDE-FGHJK-MNPQR-STVWX")]
    public void Groups_are_as_even_as_possible_and_none_longer_than_five(string code, string grouped)
    {
        Assert.Equal(grouped, BackupCodeFormat.Grouped(code));
    }

    [Theory]
    [InlineData("abcde-fghj-kmnp", "ABCDEFGHJKMNP")]
    [InlineData(" ABCDE FGHJ\tKMNP ", "ABCDEFGHJKMNP")]
    [InlineData("O0-Il1", "00111")]
    public void Typing_ignores_case_spaces_and_hyphens_and_maps_look_alikes(string typed, string canonical)
    {
        Assert.Equal(canonical, BackupCodeFormat.Normalise(typed));
    }

    [Theory]
    [InlineData("ABCDE-FGHJ-KMNU")] // U is not Crockford
    [InlineData("ABCDE_FGHJ")]
    [InlineData("ABCDÉ")]
    public void Characters_outside_the_alphabet_make_the_code_unreadable(string typed)
    {
        Assert.Null(BackupCodeFormat.Normalise(typed));
    }

    [Fact]
    public void Any_code_survives_grouping_lower_case_and_spacing()
    {
        Gen.Select(Gen.Int[8, 20], Gen.Byte.Array[13]).Sample((length, random) =>
        {
            var code = BackupCodeFormat.FromRandom(random, length);
            Assert.Equal(length, code.Length);
            Assert.All(code, c => Assert.Contains(c, Crockford));
            var typed = BackupCodeFormat.Grouped(code).ToLowerInvariant().Replace("-", " - ", StringComparison.Ordinal);
            Assert.Equal(code, BackupCodeFormat.Normalise(typed));
        });
    }

    [Fact]
    public void Distinct_random_input_gives_distinct_codes_at_the_default_length()
    {
        // 13 characters carry 65 bits: two inputs differing in their first 65 bits never collide.
        Gen.Select(Gen.Byte.Array[9], Gen.Int[0, 64]).Sample((random, bit) =>
        {
            var flipped = (byte[])random.Clone();
            flipped[bit / 8] ^= (byte)(0x80 >> (bit % 8));
            Assert.NotEqual(BackupCodeFormat.FromRandom(random, 13), BackupCodeFormat.FromRandom(flipped, 13));
        });
    }
}
