using System.Globalization;
using OtpNet;

namespace DevRift.Hsm.Bench.Driver;

/// <summary>
/// Writes <c>user SPACE code</c> for every enrolled user, for one 30-second step: the bench application keeps the
/// default TOTP settings (SHA-1, 6 digits, 30 s, window one back and one forward). With <c>--wrong</c> each code is
/// one that none of the steps step−1 … step+2 accepts, so a run that crosses a step boundary still only fails.
/// </summary>
internal static class TotpCodes
{
    public const int PeriodSeconds = 30;

    public static string Compute(byte[] seed, long step) =>
        new Totp(seed, PeriodSeconds, OtpHashMode.Sha1, 6).ComputeTotp(DateTime.UnixEpoch.AddSeconds(step * (double)PeriodSeconds));

    public static int Run(Options o)
    {
        var step = o.Long("step");
        var wrong = o.Flag("wrong");
        var lines = new List<string>();
        foreach (var line in File.ReadLines(o.Required("secrets")))
        {
            var tab = line.IndexOf('\t', StringComparison.Ordinal);
            if (tab <= 0)
            {
                throw new DriverException("the secrets file holds a line without a tab");
            }

            var seed = Base32Encoding.ToBytes(line[(tab + 1)..]);
            var code = Compute(seed, step);
            if (wrong)
            {
                var near = new HashSet<string>(StringComparer.Ordinal) { Compute(seed, step - 1), code, Compute(seed, step + 1), Compute(seed, step + 2) };
                var n = int.Parse(code, CultureInfo.InvariantCulture);
                do
                {
                    n = (n + 1) % 1_000_000;
                    code = n.ToString("D6", CultureInfo.InvariantCulture);
                }
                while (near.Contains(code));
            }

            lines.Add($"{line[..tab]} {code}");
        }

        File.WriteAllLines(o.Required("out"), lines);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"codes={lines.Count} step={step}"));
        return 0;
    }
}
