using System.Globalization;
using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using DevRift.Hsm.Crypto;
using OtpNet;

namespace DevRift.Hsm.Bench;

/// <summary>Which code the user typed.</summary>
public enum CodeCase
{
    /// <summary>The code of the current step: both verifiers try the current step first and stop (one HMAC).</summary>
    ValidCurrentStep,

    /// <summary>A code matching no step of the window: every step is tried (three HMACs).</summary>
    Wrong,
}

/// <summary>
/// TOTP verification, window one step back and one forward, SHA-1, 6 digits, 30 s: through the HSM
/// (<see cref="TotpVerifier"/>, seed handle cached) against Otp.NET's <see cref="Totp.VerifyTotp(DateTime, string, out long, VerificationWindow)"/>
/// with the seed in memory.
/// </summary>
[MemoryDiagnoser]
public class TotpBenchmarks
{
    private static readonly TotpParameters s_parameters = new(OtpHashMode.Sha1, 6, 30);
    private static readonly VerificationWindow s_window = new(previous: 1, future: 1);

    // A fixed instant in the middle of a step, so the results do not depend on the wall clock.
    private static readonly DateTimeOffset s_now = DateTimeOffset.FromUnixTimeSeconds(1_750_000_005);

    private BenchToken? _token;
    private TotpVerifier _verifier = null!;
    private WrappedSeed _wrapped = null!;
    private byte[] _seed = null!;
    private string _code = null!;

    [Params(CodeCase.ValidCurrentStep, CodeCase.Wrong)]
    public CodeCase Code { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _token = BenchToken.Create();
        var vault = _token.Vault;
        _verifier = new TotpVerifier(vault);
        _seed = vault.GenerateSeed(OtpHashMode.Sha1);
        _wrapped = vault.Wrap(_seed);

        var step = s_now.ToUnixTimeSeconds() / s_parameters.PeriodSeconds;
        var window = new[] { step - 1, step, step + 1 }
            .Select(s => _verifier.Compute(_wrapped, s_parameters, DateTimeOffset.FromUnixTimeSeconds(s * s_parameters.PeriodSeconds)))
            .ToArray();
        var valid = window[1];
        if (valid != new Totp(_seed, 30, OtpHashMode.Sha1, 6).ComputeTotp(s_now.UtcDateTime))
        {
            throw new InvalidOperationException("the HSM TOTP differs from Otp.NET's");
        }

        _code = Code == CodeCase.ValidCurrentStep ? valid : WrongCode(valid, window);

        // Both sides must agree on the outcome, or the comparison is meaningless.
        var hsm = HsmCachedHandle();
        var memory = OtpNetInMemory();
        var expectValid = Code == CodeCase.ValidCurrentStep;
        if (hsm.Valid != expectValid || memory != expectValid || (expectValid && hsm.MatchedStep != step))
        {
            throw new InvalidOperationException($"unexpected outcome for {Code}: HSM {hsm}, Otp.NET {memory}");
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        if (_seed is not null)
        {
            CryptographicOperations.ZeroMemory(_seed);
        }

        _token?.Dispose();
    }

    /// <summary>Otp.NET with the seed in memory (a new <see cref="Totp"/> per call, as a verifier loading the factor would).</summary>
    [Benchmark(Baseline = true)]
    public bool OtpNetInMemory() =>
        new Totp(_seed, s_parameters.PeriodSeconds, s_parameters.Mode, s_parameters.Digits)
            .VerifyTotp(s_now.UtcDateTime, _code, out _, s_window);

    /// <summary><see cref="TotpVerifier.Verify"/>: one <c>C_Sign</c> per step tried, on the cached seed handle.</summary>
    [Benchmark]
    public TotpResult HsmCachedHandle() => _verifier.Verify(_wrapped, s_parameters, _code, s_now, 1, 1, lastUsedStep: -1);

    private static string WrongCode(string valid, string[] window)
    {
        var n = (int.Parse(valid, CultureInfo.InvariantCulture) + 500_000) % 1_000_000;
        string candidate;
        while (window.Contains(candidate = n.ToString("D6", CultureInfo.InvariantCulture)))
        {
            n = (n + 1) % 1_000_000;
        }

        return candidate;
    }
}
