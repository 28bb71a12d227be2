using Microsoft.Extensions.Options;

namespace DevRift.Hsm.Appliance.Outbox;

/// <summary>
/// The outbox dispatcher (section <c>Delivery</c>): how often it looks for due messages, how long a claim lasts,
/// and how it backs off between attempts. Providers have their own sections below it.
/// </summary>
public sealed class DeliveryOptions : IBoundOptions
{
    public const string Section = "Delivery";

    string? IBoundOptions.BindError { get; set; }

    /// <summary>How often each node looks for due messages.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long a claimed message belongs to the node that claimed it. A node that dies mid-delivery holds its
    /// messages this long; then another node (or the same one restarted) delivers them.
    /// </summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Longest one delivery attempt may take (connect, send, answer); must be shorter than the lease.</summary>
    public TimeSpan SendTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>Delay before the second attempt; doubled for each further one, with jitter.</summary>
    public TimeSpan RetryInitialDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Cap on the delay between two attempts.</summary>
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How long a test-mode message stays in the test outbox; older ones are deleted (every tenth of this, at most
    /// hourly), so that test data does not hold a retired seal key forever. An operator can also purge an
    /// application's test outbox at once.
    /// </summary>
    public TimeSpan TestMessageRetention { get; set; } = TimeSpan.FromDays(1);

    /// <summary>Most messages one node claims at once (they are delivered in parallel).</summary>
    public int BatchSize { get; set; } = 16;

    /// <summary>Name this node writes into <c>outbox.claimed_by</c>; host name, process id and a random suffix when empty.</summary>
    public string? NodeId { get; set; }

    /// <summary><c>Delivery:Routes:&lt;CHANNEL&gt;</c> = <c>smtp</c> | <c>twilio</c> | <c>webhook</c>.</summary>
    public Dictionary<string, string> Routes { get; set; } = new(StringComparer.OrdinalIgnoreCase);
}

/// <summary>SMTP for EMAIL, with MailKit (section <c>Delivery:Smtp</c>). Configured when <see cref="Host"/> is set.</summary>
public sealed class SmtpOptions : IBoundOptions
{
    public const string Section = "Delivery:Smtp";

    string? IBoundOptions.BindError { get; set; }

    public string? Host { get; set; }

    /// <summary>0 (default): 25 for <c>None</c>, 587 for <c>StartTls</c>, 465 for <c>SslOnConnect</c>.</summary>
    public int Port { get; set; }

    /// <summary><c>None</c>, <c>StartTls</c> (default; required, not opportunistic) or <c>SslOnConnect</c>.</summary>
    public string Security { get; set; } = "StartTls";

    public string? Username { get; set; }

    public string? Password { get; set; }

    /// <summary>Sender mailbox: <c>codes@example.com</c> or <c>Example &lt;codes@example.com&gt;</c>.</summary>
    public string? From { get; set; }

    public bool IsConfigured => !string.IsNullOrWhiteSpace(Host);

    public int EffectivePort => Port > 0 ? Port : Security.ToUpperInvariant() switch
    {
        "NONE" => 25,
        "SSLONCONNECT" => 465,
        _ => 587,
    };
}

/// <summary>
/// A Twilio-compatible REST API for SMS, WhatsApp and voice (section <c>Delivery:Twilio</c>). Configured when
/// <see cref="AccountSid"/> is set; SMS and CALL need <see cref="From"/>, WHATSAPP needs <see cref="WhatsAppFrom"/>.
/// </summary>
public sealed class TwilioOptions : IBoundOptions
{
    public const string Section = "Delivery:Twilio";

    string? IBoundOptions.BindError { get; set; }
    public const string DefaultBaseUrl = "https://api.twilio.com";

    /// <summary>Scheme and host (and optional path prefix) in front of <c>/2010-04-01/Accounts/…</c>.</summary>
    public string BaseUrl { get; set; } = DefaultBaseUrl;

    public string? AccountSid { get; set; }

    /// <summary>Password of HTTP basic authentication (the user is the account SID); also the key of Twilio's callback signatures.</summary>
    public string? AuthToken { get; set; }

    /// <summary>
    /// The appliance's address as Twilio reaches it from the internet (e.g. <c>https://mfa.example.com</c>). When set,
    /// each SMS and WhatsApp message asks for delivery receipts at <c>{PublicBaseUrl}/v1/providers/twilio/status</c>;
    /// unset, none is requested and a channel's last status is <c>sent</c> (accepted by the provider).
    /// </summary>
    public string? PublicBaseUrl { get; set; }

    /// <summary>Sender of SMS and calls: an E.164 number, or an alphanumeric sender id / messaging service SID for SMS.</summary>
    public string? From { get; set; }

    /// <summary>WhatsApp sender (E.164, with or without the <c>whatsapp:</c> prefix).</summary>
    public string? WhatsAppFrom { get; set; }

    public bool IsConfigured => !string.IsNullOrWhiteSpace(AccountSid);
}

/// <summary>A signed webhook to the deployment's own gateway (section <c>Delivery:Webhook</c>). Configured when <see cref="Url"/> is set.</summary>
public sealed class WebhookOptions : IBoundOptions
{
    public const string Section = "Delivery:Webhook";

    string? IBoundOptions.BindError { get; set; }
    public const int MinSecretLength = 16;

    public string? Url { get; set; }

    /// <summary>Key of the <c>DevRift-Signature</c> HMAC (UTF-8 bytes of this string).</summary>
    public string? Secret { get; set; }

    public bool IsConfigured => !string.IsNullOrWhiteSpace(Url);
}

/// <summary>Options bound without throwing: a value that does not convert is kept as a failure for the validator.</summary>
internal interface IBoundOptions
{
    string? BindError { get; set; }
}

/// <summary>
/// Start-time checks of every delivery setting, reported together as one failure of <see cref="DeliveryOptions"/> (so a
/// bad configuration stops start-up with one line). Failures name the setting and never echo a secret.
/// </summary>
internal sealed class DeliveryOptionsValidator(
    IEnumerable<IDeliveryProvider> providers, IOptions<SmtpOptions> smtp, IOptions<TwilioOptions> twilio, IOptions<WebhookOptions> webhook)
    : IValidateOptions<DeliveryOptions>
{
    private static readonly string[] s_channels = ["EMAIL", "SMS", "WHATSAPP", "CALL"];

    public ValidateOptionsResult Validate(string? name, DeliveryOptions options)
    {
        var failures = new List<string>();
        foreach (var bound in new IBoundOptions[] { options, smtp.Value, twilio.Value, webhook.Value })
        {
            if (bound.BindError is { } error)
            {
                failures.Add(error);
            }
        }

        failures.AddRange(ProviderOptionsValidator.Failures(smtp.Value));
        failures.AddRange(ProviderOptionsValidator.Failures(twilio.Value));
        failures.AddRange(ProviderOptionsValidator.Failures(webhook.Value));
        if (options.PollInterval <= TimeSpan.Zero || options.PollInterval > TimeSpan.FromMinutes(10))
        {
            failures.Add("Delivery:PollInterval must be between 0 and 10 minutes");
        }

        if (options.TestMessageRetention < TimeSpan.FromMinutes(1) || options.TestMessageRetention > TimeSpan.FromDays(365))
        {
            failures.Add("Delivery:TestMessageRetention must be between 1 minute and 365 days");
        }

        if (options.SendTimeout <= TimeSpan.Zero)
        {
            failures.Add("Delivery:SendTimeout must be positive");
        }

        if (options.LeaseDuration <= options.SendTimeout)
        {
            failures.Add("Delivery:LeaseDuration must be longer than Delivery:SendTimeout");
        }

        if (options.RetryInitialDelay <= TimeSpan.Zero || options.RetryMaxDelay < options.RetryInitialDelay)
        {
            failures.Add("Delivery:RetryInitialDelay must be positive and at most Delivery:RetryMaxDelay");
        }

        if (options.BatchSize is < 1 or > 500)
        {
            failures.Add("Delivery:BatchSize must be between 1 and 500");
        }

        var byName = providers.GroupBy(p => p.Name, StringComparer.OrdinalIgnoreCase)
            .ToDictionary(g => g.Key, g => g.ToList(), StringComparer.OrdinalIgnoreCase);
        foreach (var (channel, providerName) in options.Routes)
        {
            var key = $"Delivery:Routes:{channel}";
            if (!s_channels.Contains(channel.ToUpperInvariant(), StringComparer.Ordinal))
            {
                failures.Add($"{key}: '{channel}' is not a channel (EMAIL, SMS, WHATSAPP, CALL)");
            }
            else if (string.IsNullOrWhiteSpace(providerName))
            {
                continue;
            }
            else if (!byName.TryGetValue(providerName.Trim(), out var named))
            {
                failures.Add($"{key}: '{providerName}' is not a provider ({string.Join(", ", byName.Keys.Order(StringComparer.Ordinal))})");
            }
            else if (!named.Any(p => p.IsConfigured))
            {
                failures.Add($"{key} is '{providerName}' but that provider is not configured (see Delivery:{Capitalised(providerName)})");
            }
            else if (!named.Any(p => p.IsConfigured && p.Supports(channel.ToUpperInvariant())))
            {
                failures.Add($"{key}: '{providerName}' cannot deliver {channel.ToUpperInvariant()} as configured");
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static string Capitalised(string providerName) => providerName.Trim().ToLowerInvariant() switch
    {
        "smtp" => "Smtp",
        "twilio" => "Twilio",
        "webhook" => "Webhook",
        var other => other,
    };
}

/// <summary>Checks of each provider's settings (only when that provider is configured).</summary>
internal static class ProviderOptionsValidator
{
    public static List<string> Failures(SmtpOptions options)
    {
        if (!options.IsConfigured)
        {
            return [];
        }

        var failures = new List<string>();
        if (options.Security.ToUpperInvariant() is not ("NONE" or "STARTTLS" or "SSLONCONNECT"))
        {
            failures.Add("Delivery:Smtp:Security must be None, StartTls or SslOnConnect");
        }

        if (options.Port is < 0 or > 65535)
        {
            failures.Add("Delivery:Smtp:Port must be between 1 and 65535");
        }

        if (string.IsNullOrWhiteSpace(options.From) || !MimeKit.MailboxAddress.TryParse(options.From, out var from) || !from.Address.Contains('@', StringComparison.Ordinal))
        {
            failures.Add("Delivery:Smtp:From must be a mailbox such as codes@example.com or 'Example <codes@example.com>'");
        }

        if (!string.IsNullOrEmpty(options.Username) && string.IsNullOrEmpty(options.Password))
        {
            failures.Add("Delivery:Smtp:Password is required with Delivery:Smtp:Username");
        }

        return failures;
    }

    public static List<string> Failures(TwilioOptions options)
    {
        if (!options.IsConfigured)
        {
            return [];
        }

        var failures = new List<string>();
        if (!Uri.TryCreate(options.BaseUrl, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http") || !string.IsNullOrEmpty(uri.Query))
        {
            failures.Add("Delivery:Twilio:BaseUrl must be an http(s) URL such as https://api.twilio.com");
        }

        if (string.IsNullOrWhiteSpace(options.AuthToken))
        {
            failures.Add("Delivery:Twilio:AuthToken is required with Delivery:Twilio:AccountSid");
        }

        if (options.PublicBaseUrl is { Length: > 0 } publicBase
            && (!Uri.TryCreate(publicBase, UriKind.Absolute, out var publicUri) || publicUri.Scheme is not ("http" or "https")
                || publicUri.Query.Length > 0 || publicUri.UserInfo.Length > 0))
        {
            failures.Add("Delivery:Twilio:PublicBaseUrl must be an absolute http:// or https:// URL without query or user information");
        }

        if (options.AccountSid!.Any(c => !char.IsAsciiLetterOrDigit(c)))
        {
            failures.Add("Delivery:Twilio:AccountSid must be letters and digits (AC…)");
        }

        if (string.IsNullOrWhiteSpace(options.From) && string.IsNullOrWhiteSpace(options.WhatsAppFrom))
        {
            failures.Add("Delivery:Twilio:From (SMS and calls) or Delivery:Twilio:WhatsAppFrom is required");
        }

        return failures;
    }

    public static List<string> Failures(WebhookOptions options)
    {
        if (!options.IsConfigured)
        {
            return [];
        }

        var failures = new List<string>();
        if (!Uri.TryCreate(options.Url, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http"))
        {
            failures.Add("Delivery:Webhook:Url must be an http(s) URL");
        }

        if (string.IsNullOrEmpty(options.Secret) || options.Secret.Length < WebhookOptions.MinSecretLength)
        {
            failures.Add($"Delivery:Webhook:Secret is required with Delivery:Webhook:Url (at least {WebhookOptions.MinSecretLength} characters)");
        }

        return failures;
    }
}
