using DevRift.Hsm.Appliance.Challenges;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Payments;

namespace DevRift.Hsm.Appliance.Tests;

/// <summary>The payment a code is bound to: validation naming each field, one canonical form, and how the user reads it.</summary>
public sealed class TransactionTests
{
    [Theory]
    [InlineData("12.3", "EUR", "12.30")]
    [InlineData("12.30", "EUR", "12.30")]
    [InlineData("012.3", "EUR", "12.30")]
    [InlineData("12", "EUR", "12.00")]
    [InlineData("0.5", "USD", "0.50")]
    [InlineData("1200", "JPY", "1200")]
    [InlineData("0012", "JPY", "12")]
    [InlineData("1.5", "KWD", "1.500")]
    [InlineData("1.234", "KWD", "1.234")]
    [InlineData("999999999999999999", "JPY", "999999999999999999")]
    public void Amounts_are_canonical_with_the_currency_s_minor_digits(string amount, string currency, string canonical)
    {
        var t = Transaction.Parse(new TransactionInput(amount, currency, "ACME Ltd", null))!;
        Assert.Equal(canonical, t.Amount);
    }

    [Fact]
    public void The_canonical_form_is_length_prefixed_so_no_two_transactions_share_it()
    {
        var acme = Transaction.Parse(new TransactionInput("12.34", "EUR", "ACME Ltd", "INV-1"))!;
        Assert.Equal("5:12.34,3:EUR,8:ACME Ltd,5:INV-1,", acme.Canonical);
        Assert.Equal("5:12.34,3:EUR,8:ACME Ltd,0:,", Transaction.Parse(new TransactionInput("12.34", "EUR", "ACME Ltd", ""))!.Canonical);

        // A payee holding what looks like a field separator cannot be mistaken for another split of the fields
        var shifted = Transaction.Parse(new TransactionInput("12.34", "EUR", "ACME Ltd,5:INV-1", null))!;
        Assert.NotEqual(acme.Canonical, shifted.Canonical);
        Assert.False(Transaction.Matches(acme, shifted));
    }

    [Fact]
    public void Same_payment_matches_and_any_difference_does_not()
    {
        var acme = Transaction.Parse(new TransactionInput("12.3", "EUR", "ACME Ltd", null));
        Assert.True(Transaction.Matches(acme, Transaction.Parse(new TransactionInput("12.30", "EUR", " ACME Ltd ", null))));
        Assert.True(Transaction.Matches(null, null));
        Assert.False(Transaction.Matches(acme, null));
        Assert.False(Transaction.Matches(null, acme));
        Assert.False(Transaction.Matches(acme, Transaction.Parse(new TransactionInput("12.31", "EUR", "ACME Ltd", null))));
        Assert.False(Transaction.Matches(acme, Transaction.Parse(new TransactionInput("12.30", "EUR", "ACME Ltd.", null))));
        Assert.False(Transaction.Matches(acme, Transaction.Parse(new TransactionInput("12.30", "EUR", "Acme Ltd", null))));
        Assert.False(Transaction.Matches(acme, Transaction.Parse(new TransactionInput("12.30", "EUR", "ACME  Ltd", null))));
        Assert.False(Transaction.Matches(acme, Transaction.Parse(new TransactionInput("12.30", "USD", "ACME Ltd", null))));
        Assert.False(Transaction.Matches(acme, Transaction.Parse(new TransactionInput("12.30", "EUR", "ACME Ltd", "INV-1"))));
    }

    [Fact]
    public void Payees_are_nfc_normalised_so_both_spellings_of_an_accent_are_one_payee()
    {
        var composed = Transaction.Parse(new TransactionInput("1", "EUR", "Caf\u00e9 Ltd", null))!;
        var decomposed = Transaction.Parse(new TransactionInput("1", "EUR", "Cafe\u0301 Ltd", null))!;
        Assert.Equal("Caf\u00e9 Ltd", decomposed.Payee);
        Assert.True(Transaction.Matches(composed, decomposed));
    }

    [Fact]
    public void No_field_at_all_is_no_transaction()
    {
        Assert.Null(Transaction.Parse(null));
        Assert.Null(Transaction.Parse(new TransactionInput(null, "", null, null)));
    }

    [Theory]
    [InlineData("", "EUR", "ACME", null, "transaction.amount")]
    [InlineData("-1", "EUR", "ACME", null, "transaction.amount")]
    [InlineData("+1", "EUR", "ACME", null, "transaction.amount")]
    [InlineData("1e3", "EUR", "ACME", null, "transaction.amount")]
    [InlineData("1.", "EUR", "ACME", null, "transaction.amount")]
    [InlineData(".5", "EUR", "ACME", null, "transaction.amount")]
    [InlineData("1 000", "EUR", "ACME", null, "transaction.amount")]
    [InlineData("1,00", "EUR", "ACME", null, "transaction.amount")]
    [InlineData("١٢", "EUR", "ACME", null, "transaction.amount")]
    [InlineData("0", "EUR", "ACME", null, "transaction.amount")]
    [InlineData("0.00", "EUR", "ACME", null, "transaction.amount")]
    [InlineData("1.001", "EUR", "ACME", null, "transaction.amount")]
    [InlineData("1.0", "JPY", "ACME", null, "transaction.amount")]
    [InlineData("1.0001", "KWD", "ACME", null, "transaction.amount")]
    [InlineData("12345678901234567.89", "EUR", "ACME", null, "transaction.amount")]
    [InlineData("1", "", "ACME", null, "transaction.currency")]
    [InlineData("1", "eur", "ACME", null, "transaction.currency")]
    [InlineData("1", "EURO", "ACME", null, "transaction.currency")]
    [InlineData("1", "XAU", "ACME", null, "transaction.currency")]
    [InlineData("1", "EUR", "", null, "transaction.payee")]
    [InlineData("1", "EUR", "   ", null, "transaction.payee")]
    [InlineData("1", "EUR", "AC\nME", null, "transaction.payee")]
    [InlineData("1", "EUR", "AC\u200BME", null, "transaction.payee")]
    [InlineData("1", "EUR", "ACME\u202Edtl", null, "transaction.payee")]
    [InlineData("1", "EUR", "ACME\uE000", null, "transaction.payee")]
    [InlineData("1", "EUR", "ACME", "INV\t1", "transaction.reference")]
    public void Each_bad_field_is_400_invalid_request_naming_it(string? amount, string? currency, string? payee, string? reference, string param)
    {
        var e = Assert.Throws<MfaException>(() => Transaction.Parse(new TransactionInput(amount, currency, payee, reference)));
        Assert.Equal((ErrorCode.InvalidRequest, param), (e.Error, e.Param));
    }

    [Fact]
    public void Payee_and_reference_are_at_most_140_characters_counted_as_unicode_scalars()
    {
        Assert.Equal(140, Transaction.Parse(new TransactionInput("1", "EUR", new string('A', 140), new string('R', 140)))!.Payee.Length);
        var emoji = string.Concat(Enumerable.Repeat("\U0001F600", 140));
        Assert.Equal(emoji, Transaction.Parse(new TransactionInput("1", "EUR", emoji, null))!.Payee);
        Assert.Equal("transaction.payee", Assert.Throws<MfaException>(() => Transaction.Parse(new TransactionInput("1", "EUR", new string('A', 141), null))).Param);
        Assert.Equal("transaction.reference", Assert.Throws<MfaException>(() => Transaction.Parse(new TransactionInput("1", "EUR", "A", new string('R', 141)))).Param);
    }

    [Theory]
    [InlineData("en", "12.34", "EUR", "€12.34")]
    [InlineData("en", "1234.50", "EUR", "€1,234.50")]
    [InlineData("de", "12.34", "EUR", "12,34 €")]
    [InlineData("fr", "1234.50", "EUR", "1\u202f234,50 €")]
    [InlineData("es", "12.34", "EUR", "12,34 €")]
    [InlineData("en", "12.34", "USD", "USD 12.34")]
    [InlineData("de", "1200", "JPY", "1.200 JPY")]
    [InlineData("en", "1.500", "KWD", "KWD 1.500")]
    public void Amounts_read_in_the_locale_with_an_unambiguous_symbol_or_the_code(string locale, string amount, string currency, string shown)
    {
        Assert.Equal(shown, Currencies.Format(amount, currency, locale));
    }

    [Theory]
    [InlineData("en", Channels.Sms, "123456 is your Acme code to pay €12.34 to ACME Ltd. It expires in 10 minutes.")]
    [InlineData("de", Channels.Sms, "123456 ist Ihr Acme-Code für die Zahlung von 12,34 € an ACME Ltd. Er läuft in 10 Minuten ab.")]
    [InlineData("fr", Channels.WhatsApp, "123456 est votre code Acme pour payer 12,34 € à ACME Ltd. Il expire dans 10 minutes.")]
    [InlineData("es", Channels.Sms, "123456 es tu código de Acme para pagar 12,34 € a ACME Ltd. Caduca en 10 minutos.")]
    [InlineData("en", Channels.Email, "Your Acme verification code is 123456. It approves the payment of €12.34 to ACME Ltd, and no other. It expires in 10 minutes. If you did not make this payment, do not use the code.")]
    [InlineData("de", Channels.Call, "Hallo. Ihr Acme-Bestätigungscode lautet: 1, 2, 3, 4, 5, 6. Noch einmal: 1, 2, 3, 4, 5, 6. Er gibt die Zahlung von 12,34 € an ACME Ltd frei. Er läuft in 10 Minuten ab. Auf Wiederhören.")]
    public void Payment_messages_show_the_code_first_then_amount_and_payee_in_every_locale(string locale, string channel, string body)
    {
        var acme = Transaction.Parse(new TransactionInput("12.34", "EUR", "ACME Ltd", "INV-1"));
        Assert.Equal(body, MessageTemplates.Code(channel, "Acme", "123456", TimeSpan.FromMinutes(10), locale, acme).Body);
    }
}
