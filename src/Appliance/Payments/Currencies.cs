using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Globalization;

namespace DevRift.Hsm.Appliance.Payments;

/// <summary>
/// The ISO 4217 currencies a transaction may name, with their minor units (the list-one table of active codes that
/// have a minor unit; the precious metals, testing and no-currency codes are left out), and how an amount is shown to
/// the payer in a message's locale.
/// </summary>
public static class Currencies
{
    private static readonly FrozenDictionary<string, int> s_minorDigits = Build(
        (0, "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"),
        (2, "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW "
            + "CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS "
            + "INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN "
            + "NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC "
            + "SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VES VED WST XCD XCG YER ZAR ZMW ZWG"),
        (3, "BHD IQD JOD KWD LYD OMR TND"),
        (4, "CLF UYW"));

    // Per language: each currency's symbol when that symbol names exactly one currency among the language's regions.
    private static readonly ConcurrentDictionary<string, FrozenDictionary<string, string>> s_symbols = new(StringComparer.Ordinal);

    /// <summary>The currency's minor digits, when <paramref name="code"/> is a known upper-case ISO 4217 code.</summary>
    public static bool TryGetMinorDigits(string code, out int minorDigits) => s_minorDigits.TryGetValue(code, out minorDigits);

    /// <summary>
    /// The canonical amount as the payer reads it in <paramref name="locale"/> (en, fr, de, es): the locale's separators
    /// and currency pattern from System.Globalization, with the currency's symbol when it is unambiguous among that
    /// language's regions (€ for EUR) and its ISO code otherwise ($ would not say which dollar): en "€1,234.50",
    /// de "1.234,50 €", en "USD 12.34".
    /// </summary>
    public static string Format(string canonicalAmount, string currency, string locale)
    {
        var culture = CultureInfo.GetCultureInfo(locale);
        var format = (NumberFormatInfo)culture.NumberFormat.Clone();
        format.CurrencySymbol = s_symbols.GetOrAdd(culture.TwoLetterISOLanguageName, UnambiguousSymbols).GetValueOrDefault(currency, currency);
        format.CurrencyDecimalDigits = s_minorDigits[currency];
        if (format.CurrencySymbol.All(char.IsAsciiLetter))
        {
            // "USD12.34" reads badly: a code is set apart from the number ("¤n" → "¤ n", "n¤" → "n ¤").
            format.CurrencyPositivePattern = format.CurrencyPositivePattern switch { 0 => 2, 1 => 3, var p => p };
        }

        return decimal.Parse(canonicalAmount, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture).ToString("C", format);
    }

    private static FrozenDictionary<string, int> Build(params (int Digits, string Codes)[] groups) =>
        groups.SelectMany(g => g.Codes.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(code => KeyValuePair.Create(code, g.Digits)))
            .ToFrozenDictionary(StringComparer.Ordinal);

    private static FrozenDictionary<string, string> UnambiguousSymbols(string language)
    {
        var uses = new List<(string Currency, string Symbol)>();
        foreach (var specific in CultureInfo.GetCultures(CultureTypes.SpecificCultures))
        {
            if (specific.TwoLetterISOLanguageName != language)
            {
                continue;
            }

            try
            {
                uses.Add((new RegionInfo(specific.Name).ISOCurrencySymbol, specific.NumberFormat.CurrencySymbol));
            }
            catch (ArgumentException)
            {
                // A culture without a region of its own (none should be specific, but ICU data varies).
            }
        }

        var symbolsOf = uses.GroupBy(u => u.Currency, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Select(u => u.Symbol).Distinct(StringComparer.Ordinal).ToList(), StringComparer.Ordinal);
        var currenciesOf = uses.GroupBy(u => u.Symbol, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Select(u => u.Currency).Distinct(StringComparer.Ordinal).Count(), StringComparer.Ordinal);
        return symbolsOf
            .Where(e => e.Value.Count == 1 && currenciesOf[e.Value[0]] == 1 && e.Value[0].Length > 0)
            .ToFrozenDictionary(e => e.Key, e => e.Value[0], StringComparer.Ordinal);
    }
}
