using System.Globalization;
using System.Text;
using DevRift.Hsm.Appliance.Payments;

namespace DevRift.Hsm.Appliance.Challenges;

/// <summary>A rendered message: subject (email only) and body.</summary>
public sealed record RenderedMessage(string? Subject, string Body);

/// <summary>
/// Per-channel message templates naming the application, the code and its lifetime. Voice spells the digits
/// out one by one, twice. Locales: en (default), fr, de, es. A code bound to a payment also names its amount (in the
/// locale's format, see <see cref="Currencies.Format"/>) and its payee, after the code, on every channel.
/// </summary>
public static class MessageTemplates
{
    private static readonly Dictionary<string, Texts> s_texts = new(StringComparer.OrdinalIgnoreCase)
    {
        ["en"] = new(
            "Your {0} verification code",
            "Your {0} verification code is {1}. It expires in {2}. If you did not ask for it, you can ignore this message.",
            "{1} is your {0} verification code. It expires in {2}.",
            "Hello. Your {0} verification code is: {1}. Again, your code is: {1}. It expires in {2}. Goodbye.",
            "minutes", "minute", "seconds",
            "Your {0} verification code is {1}. It approves the payment of {3} to {4}, and no other. It expires in {2}. If you did not make this payment, do not use the code.",
            "{1} is your {0} code to pay {3} to {4}. It expires in {2}.",
            "Hello. Your {0} verification code is: {1}. Again, your code is: {1}. It approves the payment of {3} to {4}. It expires in {2}. Goodbye."),
        ["fr"] = new(
            "Votre code de vérification {0}",
            "Votre code de vérification {0} est {1}. Il expire dans {2}. Si vous ne l'avez pas demandé, ignorez ce message.",
            "{1} est votre code de vérification {0}. Il expire dans {2}.",
            "Bonjour. Votre code de vérification {0} est : {1}. Je répète : {1}. Il expire dans {2}. Au revoir.",
            "minutes", "minute", "secondes",
            "Votre code de vérification {0} est {1}. Il approuve le paiement de {3} à {4}, et aucun autre. Il expire dans {2}. Si vous n'avez pas fait ce paiement, n'utilisez pas ce code.",
            "{1} est votre code {0} pour payer {3} à {4}. Il expire dans {2}.",
            "Bonjour. Votre code de vérification {0} est : {1}. Je répète : {1}. Il approuve le paiement de {3} à {4}. Il expire dans {2}. Au revoir."),
        ["de"] = new(
            "Ihr {0}-Bestätigungscode",
            "Ihr {0}-Bestätigungscode lautet {1}. Er läuft in {2} ab. Wenn Sie ihn nicht angefordert haben, ignorieren Sie diese Nachricht.",
            "{1} ist Ihr {0}-Bestätigungscode. Er läuft in {2} ab.",
            "Hallo. Ihr {0}-Bestätigungscode lautet: {1}. Noch einmal: {1}. Er läuft in {2} ab. Auf Wiederhören.",
            "Minuten", "Minute", "Sekunden",
            "Ihr {0}-Bestätigungscode lautet {1}. Er gibt die Zahlung von {3} an {4} frei und keine andere. Er läuft in {2} ab. Wenn Sie diese Zahlung nicht veranlasst haben, verwenden Sie den Code nicht.",
            "{1} ist Ihr {0}-Code für die Zahlung von {3} an {4}. Er läuft in {2} ab.",
            "Hallo. Ihr {0}-Bestätigungscode lautet: {1}. Noch einmal: {1}. Er gibt die Zahlung von {3} an {4} frei. Er läuft in {2} ab. Auf Wiederhören."),
        ["es"] = new(
            "Tu código de verificación de {0}",
            "Tu código de verificación de {0} es {1}. Caduca en {2}. Si no lo has solicitado, ignora este mensaje.",
            "{1} es tu código de verificación de {0}. Caduca en {2}.",
            "Hola. Tu código de verificación de {0} es: {1}. Repito: {1}. Caduca en {2}. Adiós.",
            "minutos", "minuto", "segundos",
            "Tu código de verificación de {0} es {1}. Aprueba el pago de {3} a {4}, y ningún otro. Caduca en {2}. Si no has hecho este pago, no uses el código.",
            "{1} es tu código de {0} para pagar {3} a {4}. Caduca en {2}.",
            "Hola. Tu código de verificación de {0} es: {1}. Repito: {1}. Aprueba el pago de {3} a {4}. Caduca en {2}. Adiós."),
    };

    /// <summary>The locale actually used for <paramref name="requested"/> (its language if known, else en).</summary>
    public static string ResolveLocale(string? requested)
    {
        if (string.IsNullOrWhiteSpace(requested))
        {
            return "en";
        }

        var language = requested.Trim().Split('-', '_')[0];
        return s_texts.ContainsKey(language) ? language.ToLowerInvariant() : "en";
    }

    /// <summary>The message carrying <paramref name="code"/>; with a <paramref name="transaction"/>, its amount and payee too.</summary>
    public static RenderedMessage Code(string channel, string applicationName, string code, TimeSpan lifetime, string locale, Transaction? transaction = null)
    {
        var resolved = ResolveLocale(locale);
        var t = s_texts[resolved];
        var life = Lifetime(lifetime, t);
        var amount = transaction is null ? "" : Currencies.Format(transaction.Amount, transaction.Currency, resolved);
        var payee = transaction?.Payee ?? "";
        string Body(string plain, string payment, string shownCode) => string.Format(
            CultureInfo.InvariantCulture, transaction is null ? plain : payment, applicationName, shownCode, life, amount, payee);
        return channel switch
        {
            Channels.Email => new RenderedMessage(
                string.Format(CultureInfo.InvariantCulture, t.EmailSubject, applicationName),
                Body(t.EmailBody, t.PaymentEmailBody, code)),
            Channels.Call => new RenderedMessage(null, Body(t.Voice, t.PaymentVoice, SpellDigits(code))),
            _ => new RenderedMessage(null, Body(t.Text, t.PaymentText, code)),
        };
    }

    /// <summary>"1 2 3 4 5 6" → "1, 2, 3, 4, 5, 6" so that a speech engine reads digits, not a number.</summary>
    public static string SpellDigits(string code)
    {
        var sb = new StringBuilder(code.Length * 3);
        foreach (var c in code)
        {
            if (sb.Length > 0)
            {
                sb.Append(", ");
            }

            sb.Append(c);
        }

        return sb.ToString();
    }

    private static string Lifetime(TimeSpan lifetime, Texts t)
    {
        var seconds = (int)lifetime.TotalSeconds;
        if (seconds % 60 != 0 || seconds < 60)
        {
            return string.Create(CultureInfo.InvariantCulture, $"{seconds} {t.Seconds}");
        }

        var minutes = seconds / 60;
        return string.Create(CultureInfo.InvariantCulture, $"{minutes} {(minutes == 1 ? t.Minute : t.Minutes)}");
    }

    private sealed record Texts(string EmailSubject, string EmailBody, string Text, string Voice, string Minutes, string Minute, string Seconds,
        string PaymentEmailBody, string PaymentText, string PaymentVoice);
}
