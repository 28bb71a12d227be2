using System.Security.Cryptography;
using System.Text;
using OtpNet;

namespace DevRift.Hsm.Crypto;

/// <summary>TOTP parameters of one factor (RFC 6238).</summary>
/// <param name="Mode">HMAC hash.</param>
/// <param name="Digits">Code length, 6–8.</param>
/// <param name="PeriodSeconds">Step length.</param>
public readonly record struct TotpParameters(OtpHashMode Mode, int Digits, int PeriodSeconds);

/// <summary>Outcome of a TOTP check.</summary>
/// <param name="Valid">True when the code matched a step inside the window that is newer than the last used one.</param>
/// <param name="MatchedStep">The matched time step (to be stored as the new last used step), or -1.</param>
/// <param name="Replayed">True when the code matched only a step at or before the last used step.</param>
public readonly record struct TotpResult(bool Valid, long MatchedStep, bool Replayed);

/// <summary>
/// Verifies TOTP codes with the seed's HMAC computed in the HSM through Otp.NET's <see cref="IKeyProvider"/>.
/// The current step is tried first, so a valid current code costs one <c>C_Sign</c>; every comparison is
/// constant-time. The verifier keeps no state: the caller stores <see cref="TotpResult.MatchedStep"/> with a
/// conditional update so that a step is accepted once.
/// </summary>
public sealed class TotpVerifier(SeedVault vault)
{
    /// <summary>Checks <paramref name="code"/> against steps now−<paramref name="stepsBack"/> … now+<paramref name="stepsForward"/>.</summary>
    public TotpResult Verify(
        WrappedSeed seed,
        TotpParameters parameters,
        string code,
        DateTimeOffset now,
        int stepsBack,
        int stepsForward,
        long lastUsedStep)
    {
        ArgumentNullException.ThrowIfNull(code);
        if (code.Length != parameters.Digits)
        {
            return new TotpResult(false, -1, false);
        }

        // The step's HOTP directly (RFC 6238 is HOTP of the step number): no step -> DateTime -> step round trip.
        var hotp = new Hotp(vault.KeyProvider(seed), parameters.Mode, parameters.Digits);
        var current = now.ToUnixTimeSeconds() / parameters.PeriodSeconds;
        Span<byte> expected = stackalloc byte[16];
        Span<byte> given = stackalloc byte[16];
        var givenBytes = given[..Encoding.ASCII.GetBytes(code.AsSpan(0, Math.Min(code.Length, 16)), given)];

        // Current step first, then outward: the common case is one HSM operation.
        foreach (var step in Order(current, stepsBack, stepsForward))
        {
            if (step < 0)
            {
                continue;
            }

            var candidate = hotp.ComputeHOTP(step);
            var n = Encoding.ASCII.GetBytes(candidate, expected);
            if (CryptographicOperations.FixedTimeEquals(expected[..n], givenBytes))
            {
                return step > lastUsedStep
                    ? new TotpResult(true, step, false)
                    : new TotpResult(false, step, true);
            }
        }

        return new TotpResult(false, -1, false);
    }

    /// <summary>The code for a given time (tests, diagnostics).</summary>
    public string Compute(WrappedSeed seed, TotpParameters parameters, DateTimeOffset at) =>
        new Totp(vault.KeyProvider(seed), parameters.PeriodSeconds, parameters.Mode, parameters.Digits)
            .ComputeTotp(at.UtcDateTime);

    private static IEnumerable<long> Order(long current, int back, int forward)
    {
        yield return current;
        for (var i = 1; i <= Math.Max(back, forward); i++)
        {
            if (i <= back)
            {
                yield return current - i;
            }

            if (i <= forward)
            {
                yield return current + i;
            }
        }
    }
}
