using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using DevRift.Hsm.Appliance.Errors;

namespace DevRift.Hsm.Appliance.Payments;

/// <summary>A transaction as the caller sent it (any encoding), unvalidated; every field may be missing.</summary>
public sealed record TransactionInput(string? Amount, string? Currency, string? Payee, string? Reference)
{
    /// <summary>True when no field was given at all (the request carries no transaction).</summary>
    public bool IsEmpty => string.IsNullOrEmpty(Amount) && string.IsNullOrEmpty(Currency) && string.IsNullOrEmpty(Payee) && string.IsNullOrEmpty(Reference);
}

/// <summary>
/// A payment a code is bound to (PSD2 dynamic linking), in canonical form: the amount with exactly the currency's
/// ISO 4217 minor digits and no leading zeros (<c>12.3</c> EUR → <c>12.30</c>), the currency's alpha-3 code, the payee
/// and the optional reference trimmed of leading and trailing white space and NFC-normalised. Two transactions are the
/// same exactly when their <see cref="Canonical"/> forms are; these fields are not secrets.
/// </summary>
public sealed record Transaction(string Amount, string Currency, string Payee, string? Reference)
{
    /// <summary>Longest payee and reference, in Unicode scalar values.</summary>
    public const int MaxTextLength = 140;

    /// <summary>Most digits an amount may have (integer and fraction together).</summary>
    public const int MaxAmountDigits = 18;

    /// <summary>
    /// The unambiguous text bound into the code: each field as a netstring of its UTF-8 bytes, in the order amount,
    /// currency, payee, reference (empty when absent), e.g. <c>5:12.34,3:EUR,8:ACME Ltd,0:,</c>.
    /// </summary>
    public string Canonical
    {
        get
        {
            var sb = new StringBuilder();
            foreach (var part in new[] { Amount, Currency, Payee, Reference ?? "" })
            {
                sb.Append(Encoding.UTF8.GetByteCount(part).ToString(CultureInfo.InvariantCulture)).Append(':').Append(part).Append(',');
            }

            return sb.ToString();
        }
    }

    /// <summary>
    /// The transaction a request carries, validated and canonicalised; null when it carries none. A bad field is 400
    /// <c>invalid_request</c> naming it (<c>transaction.amount</c>, <c>transaction.currency</c>, …).
    /// </summary>
    public static Transaction? Parse(TransactionInput? input)
    {
        if (input is null || input.IsEmpty)
        {
            return null;
        }

        var currency = Required(input.Currency, "currency");
        if (!Currencies.TryGetMinorDigits(currency, out var minorDigits))
        {
            throw Invalid("currency", "'transaction.currency' must be an upper-case ISO 4217 code such as EUR, USD or JPY");
        }

        var amount = CanonicalAmount(Required(input.Amount, "amount"), currency, minorDigits);
        var payee = Text(Required(input.Payee, "payee"), "payee");
        var reference = string.IsNullOrWhiteSpace(input.Reference) ? null : Text(input.Reference, "reference");
        return new Transaction(amount, currency, payee, reference);
    }

    /// <summary>The transaction stored in a row's <c>transaction_*</c> columns (canonical already), or null when the amount is NULL.</summary>
    public static Transaction? FromColumns(string? amount, string? currency, string? payee, string? reference) =>
        amount is null ? null : new Transaction(amount, currency ?? "", payee ?? "", reference);

    /// <summary>Whether two optional transactions are the same, compared in constant time over their canonical forms.</summary>
    public static bool Matches(Transaction? bound, Transaction? presented)
    {
        if (bound is null || presented is null)
        {
            return bound is null && presented is null;
        }

        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(bound.Canonical), Encoding.UTF8.GetBytes(presented.Canonical));
    }

    /// <summary>The fields for an audit record's detail (none of them secret).</summary>
    public JsonObject ToJson()
    {
        var json = new JsonObject { ["amount"] = Amount, ["currency"] = Currency, ["payee"] = Payee };
        if (Reference is not null)
        {
            json["reference"] = Reference;
        }

        return json;
    }

    private static string CanonicalAmount(string amount, string currency, int minorDigits)
    {
        var point = amount.IndexOf('.', StringComparison.Ordinal);
        var whole = point < 0 ? amount : amount[..point];
        var fraction = point < 0 ? "" : amount[(point + 1)..];
        if (whole.Length == 0 || !whole.All(char.IsAsciiDigit) || (point >= 0 && (fraction.Length == 0 || !fraction.All(char.IsAsciiDigit))))
        {
            throw Invalid("amount", "'transaction.amount' must be a decimal such as 12.34: digits, an optional '.' and digits; no sign, exponent, spaces or grouping");
        }

        if (whole.Length + fraction.Length > MaxAmountDigits)
        {
            throw Invalid("amount", $"'transaction.amount' has more than {MaxAmountDigits} digits");
        }

        if (fraction.Length > minorDigits)
        {
            throw Invalid("amount", minorDigits == 0
                ? $"'transaction.amount' must be a whole number: {currency} has no minor unit"
                : $"'transaction.amount' has more than {minorDigits} decimal places, the minor unit of {currency}");
        }

        var trimmed = whole.TrimStart('0');
        if (trimmed.Length == 0 && fraction.All(c => c == '0'))
        {
            throw Invalid("amount", "'transaction.amount' must be greater than zero");
        }

        var integer = trimmed.Length == 0 ? "0" : trimmed;
        return minorDigits == 0 ? integer : $"{integer}.{fraction.PadRight(minorDigits, '0')}";
    }

    private static string Text(string value, string field)
    {
        var text = value.Trim();
        if (!text.IsNormalized(NormalizationForm.FormC))
        {
            text = text.Normalize(NormalizationForm.FormC);
        }

        var length = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            length++;
            if (Rune.GetUnicodeCategory(rune) is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.LineSeparator
                or UnicodeCategory.ParagraphSeparator or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned)
            {
                throw Invalid(field, $"'transaction.{field}' holds a control, format (such as a bidirectional override), separator, private-use or unassigned character");
            }
        }

        if (length is 0 or > MaxTextLength)
        {
            throw Invalid(field, $"'transaction.{field}' must be 1 to {MaxTextLength} characters");
        }

        return text;
    }

    private static string Required(string? value, string field) =>
        !string.IsNullOrWhiteSpace(value)
            ? value.Trim()
            : throw Invalid(field, $"'transaction.{field}' is required when a transaction is given (amount, currency and payee)");

    private static MfaException Invalid(string field, string detail) => new(ErrorCode.InvalidRequest, detail, "transaction." + field);
}
