using System.Text;
using OtpNet;

namespace DevRift.Hsm.Crypto.Tests;

/// <summary>
/// The TOTP window and replay rule. Expected codes come from the test's own RFC 6238 arithmetic over
/// HMACSHA1/256 in memory, never from the project's code.
/// </summary>
public sealed class TotpVerifierTests : IClassFixture<InitialisedToken>
{
    private static readonly byte[] s_seed = Encoding.ASCII.GetBytes("12345678901234567890");
    private static readonly TotpParameters s_sha1 = new(OtpHashMode.Sha1, 6, 30);
    private static readonly DateTimeOffset s_now = DateTimeOffset.FromUnixTimeSeconds(1_700_000_017); // 17 s into its step
    private static readonly long s_step = 1_700_000_017 / 30;

    private readonly SeedVault _vault;
    private readonly TotpVerifier _verifier;
    private readonly WrappedSeed _wrapped;

    public TotpVerifierTests(InitialisedToken token)
    {
        _vault = new SeedVault(token.Hsm);
        _verifier = new TotpVerifier(_vault);
        _wrapped = _vault.Wrap(s_seed);
    }

    [Theory]
    [InlineData(59L, "94287082")]
    [InlineData(1111111109L, "07081804")]
    [InlineData(20000000000L, "65353130")]
    public void Reference_totp_of_the_test_gives_the_RFC_6238_values(long unixTime, string expected)
    {
        // Given the test's own RFC 6238 arithmetic (the oracle of this class)
        // When it computes the SHA-1 8-digit code of the RFC seed
        var code = ReferenceOtp.Totp(OtpHashMode.Sha1, s_seed, unixTime / 30, 8);

        // Then it is the RFC value
        Assert.Equal(expected, code);
    }

    [Fact]
    public void Codes_of_the_five_steps_around_now_are_all_different()
    {
        // Given the fixed seed and time this class uses
        // When the codes of steps T-2 .. T+2 are computed
        var codes = Enumerable.Range(-2, 5).Select(d => Code(s_step + d)).ToArray();

        // Then they differ, so that a match identifies its step
        Assert.Equal(5, codes.Distinct(StringComparer.Ordinal).Count());
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(0)]
    [InlineData(1)]
    public void Code_of_a_step_inside_the_window_is_valid(int offset)
    {
        // Given the code of step T+offset, and a last used step well before the window
        var code = Code(s_step + offset);

        // When it is verified at T with one step back and one forward
        var result = _verifier.Verify(_wrapped, s_sha1, code, s_now, 1, 1, s_step - 10);

        // Then it is valid and names its step
        Assert.Equal(new TotpResult(true, s_step + offset, false), result);
    }

    [Theory]
    [InlineData(-2)]
    [InlineData(2)]
    [InlineData(-30)]
    public void Code_of_a_step_outside_the_window_is_invalid(int offset)
    {
        // Given the code of step T+offset
        var code = Code(s_step + offset);

        // When it is verified at T with one step back and one forward
        var result = _verifier.Verify(_wrapped, s_sha1, code, s_now, 1, 1, s_step - 10);

        // Then it matches nothing
        Assert.Equal(new TotpResult(false, -1, false), result);
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(-1, 0)]
    [InlineData(-1, -1)]
    [InlineData(1, 1)]
    [InlineData(0, 1)]
    public void Code_of_a_step_at_or_before_the_last_used_step_is_a_replay(int offset, int lastUsedOffset)
    {
        // Given the code of step T+offset, and a last used step at or after it
        var code = Code(s_step + offset);

        // When it is verified at T with one step back and one forward
        var result = _verifier.Verify(_wrapped, s_sha1, code, s_now, 1, 1, s_step + lastUsedOffset);

        // Then it is not valid, and reported as a replay of its step
        Assert.Equal(new TotpResult(false, s_step + offset, true), result);
    }

    [Theory]
    [InlineData(0, -1)]
    [InlineData(1, 0)]
    public void Code_of_the_step_right_after_the_last_used_one_is_valid(int offset, int lastUsedOffset)
    {
        // Given the code of step T+offset, and the step before it already used
        var code = Code(s_step + offset);

        // When it is verified at T with one step back and one forward
        var result = _verifier.Verify(_wrapped, s_sha1, code, s_now, 1, 1, s_step + lastUsedOffset);

        // Then it is valid
        Assert.Equal(new TotpResult(true, s_step + offset, false), result);
    }

    [Theory]
    [InlineData("")]
    [InlineData("12345")]
    [InlineData("1234567")]
    [InlineData("12345678901234567890")]
    public void Code_of_the_wrong_length_is_invalid(string code)
    {
        // Given a code whose length is not 6
        // When it is verified
        var result = _verifier.Verify(_wrapped, s_sha1, code, s_now, 1, 1, s_step - 10);

        // Then it is invalid and no step is named
        Assert.Equal(new TotpResult(false, -1, false), result);
    }

    [Fact]
    public void Current_code_with_a_character_appended_or_cut_is_invalid()
    {
        // Given the right code for now
        var code = Code(s_step);

        // When it is verified one character too long and one too short
        var longer = _verifier.Verify(_wrapped, s_sha1, code + "0", s_now, 1, 1, s_step - 10);
        var shorter = _verifier.Verify(_wrapped, s_sha1, code[..^1], s_now, 1, 1, s_step - 10);

        // Then neither is accepted
        Assert.Equal(new TotpResult(false, -1, false), longer);
        Assert.Equal(new TotpResult(false, -1, false), shorter);
    }

    [Fact]
    public void Wrong_code_of_the_right_length_is_invalid()
    {
        // Given a six-digit code that is none of the window's codes
        var window = Enumerable.Range(-1, 3).Select(d => Code(s_step + d)).ToHashSet(StringComparer.Ordinal);
        var wrong = Enumerable.Range(0, 10).Select(i => new string((char)('0' + i), 6)).First(c => !window.Contains(c));

        // When it is verified
        var result = _verifier.Verify(_wrapped, s_sha1, wrong, s_now, 1, 1, s_step - 10);

        // Then it is invalid
        Assert.Equal(new TotpResult(false, -1, false), result);
    }

    [Fact]
    public void Zero_window_accepts_only_the_current_step()
    {
        // Given the codes of T-1, T and T+1
        // When they are verified with no steps back or forward
        var previous = _verifier.Verify(_wrapped, s_sha1, Code(s_step - 1), s_now, 0, 0, s_step - 10);
        var current = _verifier.Verify(_wrapped, s_sha1, Code(s_step), s_now, 0, 0, s_step - 10);
        var next = _verifier.Verify(_wrapped, s_sha1, Code(s_step + 1), s_now, 0, 0, s_step - 10);

        // Then only the current one passes
        Assert.Equal(new TotpResult(false, -1, false), previous);
        Assert.Equal(new TotpResult(true, s_step, false), current);
        Assert.Equal(new TotpResult(false, -1, false), next);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(29)]
    public void Step_boundaries_follow_the_period(int secondsIntoStep)
    {
        // Given a time at the first or last second of a step
        var now = DateTimeOffset.FromUnixTimeSeconds((s_step * 30) + secondsIntoStep);

        // When the code of that step and of the one after it are verified with no window
        var same = _verifier.Verify(_wrapped, s_sha1, Code(s_step), now, 0, 0, -1);
        var after = _verifier.Verify(_wrapped, s_sha1, Code(s_step + 1), now, 0, 0, -1);

        // Then the step is T for the whole 30 s
        Assert.Equal(new TotpResult(true, s_step, false), same);
        Assert.Equal(new TotpResult(false, -1, false), after);
    }

    [Fact]
    public void Sha256_eight_digit_sixty_second_codes_verify_in_their_window()
    {
        // Given a SHA-256 seed and 8-digit, 60-second parameters
        var seed = Encoding.ASCII.GetBytes("12345678901234567890123456789012");
        var parameters = new TotpParameters(OtpHashMode.Sha256, 8, 60);
        var wrapped = _vault.Wrap(seed);
        var step = s_now.ToUnixTimeSeconds() / 60;

        // When the codes of T-2 .. T+2 are verified with one step back and one forward
        var results = Enumerable.Range(-2, 5)
            .Select(d => _verifier.Verify(wrapped, parameters, ReferenceOtp.Totp(OtpHashMode.Sha256, seed, step + d, 8), s_now, 1, 1, step - 10))
            .ToArray();

        // Then exactly T-1, T and T+1 pass
        Assert.Equal(
            [
                new TotpResult(false, -1, false),
                new TotpResult(true, step - 1, false),
                new TotpResult(true, step, false),
                new TotpResult(true, step + 1, false),
                new TotpResult(false, -1, false),
            ],
            results);
    }

    private static string Code(long step) => ReferenceOtp.Totp(OtpHashMode.Sha1, s_seed, step, 6);
}
