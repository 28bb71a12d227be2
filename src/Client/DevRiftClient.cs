using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace DevRift.Client;

/// <summary>
/// The DevRift.Hsm appliance's <c>/v1</c> API: one async method per operation, each ending in a
/// <see cref="CancellationToken"/>. A refusal is a <see cref="DevRiftException"/>; connection failures, 429 and 503
/// are retried as <see cref="DevRiftClientOptions.Retry"/> says, a send keeping one <c>Idempotency-Key</c> across
/// its retries so that it never delivers a second message. Phone numbers in <c>user</c> are formatted to E.164.
/// Thread-safe: keep one instance (or register it with <c>services.AddDevRiftClient(…)</c>).
/// </summary>
public partial class DevRiftClient : IDisposable
{
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
    };

    private readonly HttpClient _http = null!;
    private readonly DevRiftClientOptions _options = null!;
    private readonly Uri _base = null!;
    private readonly bool _ownsHttpClient;

    /// <summary>For mocking in the caller's tests.</summary>
    protected DevRiftClient()
    {
    }

    /// <summary>Creates a client with its own connection pool (dispose it when done).</summary>
    /// <param name="options">Address, key and the rest; checked now.</param>
    /// <exception cref="InvalidOperationException">The options are incomplete or inconsistent.</exception>
    public DevRiftClient(DevRiftClientOptions options)
        : this(new HttpClient(CreateHandler(Checked(options))) { Timeout = Timeout.InfiniteTimeSpan }, options, ownsHttpClient: true)
    {
    }

    /// <summary>
    /// Creates a client on an <see cref="HttpClient"/> the caller manages (such as one from IHttpClientFactory). Its
    /// handler carries any client certificate; see <see cref="CreateHandler"/>. Its own Timeout should be infinite:
    /// <see cref="DevRiftClientOptions.NetworkTimeout"/> limits each attempt.
    /// </summary>
    /// <param name="httpClient">The HTTP client.</param>
    /// <param name="options">Address, key and the rest; checked now.</param>
    public DevRiftClient(HttpClient httpClient, DevRiftClientOptions options) : this(httpClient, options, ownsHttpClient: false)
    {
    }

    private DevRiftClient(HttpClient httpClient, DevRiftClientOptions options, bool ownsHttpClient)
    {
        ArgumentNullException.ThrowIfNull(httpClient);
        _options = Checked(options);
        _http = httpClient;
        _ownsHttpClient = ownsHttpClient;
        var b = options.BaseAddress!.ToString();
        _base = new Uri(b.EndsWith('/') ? b : b + "/");
    }

    /// <summary>True when the key is a live key (<c>sk_live_…</c>): codes really leave the appliance.</summary>
    public virtual bool IsLiveMode => _options.ApiKey!.StartsWith("sk_live_", StringComparison.Ordinal);

    /// <summary>True when the key is a test key (<c>sk_test_…</c>): messages stay in the test outbox.</summary>
    public virtual bool IsTestMode => !IsLiveMode;

    /// <summary>
    /// The primary handler the client needs: the options' client certificate and server-certificate check. Used by
    /// <see cref="DevRiftClient(DevRiftClientOptions)"/> and by <c>AddDevRiftClient</c>.
    /// </summary>
    /// <param name="options">The options.</param>
    /// <returns>A new handler.</returns>
    public static SocketsHttpHandler CreateHandler(DevRiftClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var handler = new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
        if (options.ClientCertificate is { } certificate)
        {
            handler.SslOptions.ClientCertificates = [certificate];
            handler.SslOptions.LocalCertificateSelectionCallback = (_, _, _, _, _) => certificate;
        }

        if (options.ServerCertificateValidation is { } validate)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, cert, chain, errors) =>
                cert is System.Security.Cryptography.X509Certificates.X509Certificate2 c && chain is not null && validate(c, chain, errors);
        }

        return handler;
    }

    /// <summary>Sends a one-time code (<c>POST /v1/mfa</c>). The code is never in the answer.</summary>
    /// <param name="request">User, channel, locale, an optional idempotency key and an optional transaction to bind the code to.</param>
    /// <param name="cancellationToken">Cancels the call, waits between retries included.</param>
    /// <returns>The challenge, status <c>pending</c>.</returns>
    /// <exception cref="DevRiftException">Refused (e.g. 400 <c>invalid_user</c>, 403 <c>method_disabled</c>, 429 <c>rate_limited</c>); a phone
    /// the appliance's fraud guard refuses is 403 <c>country_not_allowed</c> (not in the application's allowed countries) or
    /// <c>destination_blocked</c> (a premium-rate, shared-cost or otherwise blocked range), or 429 <c>rate_limited</c> for its velocity limits.</exception>
    /// <exception cref="InvalidPhoneNumberException">The user's phone number is not valid.</exception>
    public virtual Task<Challenge> SendCodeAsync(SendCodeRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var body = new Dictionary<string, object?>
        {
            ["user"] = User(request.User),
            ["type"] = Wire(request.Type),
            ["locale"] = request.Locale,
            ["transaction"] = request.Transaction,
            ["client_ip"] = Wire(request.ClientIp),
            ["user_id"] = request.UserId,
        };
        // One key per logical send, fixed before the first attempt: every retry carries the same one.
        var idempotencyKey = request.IdempotencyKey ?? Guid.NewGuid().ToString("N");
        return SendAsync<Challenge>(HttpMethod.Post, "v1/mfa", body, idempotencyKey, cancellationToken);
    }

    /// <summary>Sends a one-time code to <paramref name="user"/> by <paramref name="type"/>.</summary>
    /// <param name="user">Email, phone number or email:phone.</param>
    /// <param name="type">The channel.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The challenge.</returns>
    public virtual Task<Challenge> SendCodeAsync(string user, DeliveryChannel type, CancellationToken cancellationToken = default) =>
        SendCodeAsync(new SendCodeRequest { User = user, Type = type }, cancellationToken);

    /// <summary>A challenge's status and per-channel delivery (<c>GET /v1/mfa/{id}</c>).</summary>
    /// <param name="id">The challenge id, <c>mfa_…</c>.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The challenge.</returns>
    /// <exception cref="DevRiftException">404 <c>not_found</c> for an unknown id or another application's.</exception>
    public virtual Task<Challenge> GetChallengeAsync(string id, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        return SendAsync<Challenge>(HttpMethod.Get, "v1/mfa/" + Uri.EscapeDataString(id), null, null, cancellationToken);
    }

    /// <summary>
    /// Verifies a code or a security key's assertion (<c>POST /v1/mfa/verify</c>). A code that does not pass is a
    /// <see cref="DevRiftException"/> with status 401 and its reason as <see cref="DevRiftException.Code"/>.
    /// </summary>
    /// <param name="request">User, type and the code (or credential for KEY).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The verification.</returns>
    /// <exception cref="DevRiftException">401 <c>invalid_code</c>, <c>code_expired</c>, <c>no_pending_challenge</c>, <c>not_enrolled</c>, <c>transaction_mismatch</c>; 429 <c>too_many_attempts</c> …</exception>
    public virtual Task<Verification> VerifyAsync(VerifyRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var body = new Dictionary<string, object?>
        {
            ["user"] = User(request.User),
            ["type"] = Wire(request.Type),
            ["code"] = request.Code,
            ["credential"] = request.Credential,
            ["transaction"] = request.Transaction,
            ["client_ip"] = Wire(request.ClientIp),
            ["user_id"] = request.UserId,
        };
        return SendAsync<Verification>(HttpMethod.Post, "v1/mfa/verify", body, null, cancellationToken);
    }

    /// <summary>Verifies the code a user typed.</summary>
    /// <param name="user">The user, as in the send.</param>
    /// <param name="type">Email, Phone, App, Dual or Backup.</param>
    /// <param name="code">What the user typed.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The verification.</returns>
    public virtual Task<Verification> VerifyCodeAsync(string user, VerificationType type, string code, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(code);
        return VerifyAsync(new VerifyRequest { User = user, Type = type, Code = code }, cancellationToken);
    }

    /// <summary>Starts authenticator-app enrolment (<c>POST /v1/mfa/app</c>); the seed is in this answer only.</summary>
    /// <param name="user">The user.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The QR code, otpauth URI and secret; confirm with a <see cref="VerificationType.App"/> verify.</returns>
    public virtual Task<AppEnrollment> EnrollAppAsync(string user, CancellationToken cancellationToken = default) =>
        SendAsync<AppEnrollment>(HttpMethod.Post, "v1/mfa/app", new Dictionary<string, object?> { ["user"] = User(user) }, null, cancellationToken);

    /// <summary>Starts authenticator-app enrolment for the end user you know as <paramref name="userId"/> (<c>user_id</c>).</summary>
    /// <param name="user">The user's contact.</param>
    /// <param name="userId">Your own identifier of the user: it names the identity, so the app verifies with any of the user's contacts and this id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The QR code, otpauth URI and secret; confirm with a <see cref="VerificationType.App"/> verify.</returns>
    /// <exception cref="DevRiftException">409 <c>identity_conflict</c> when the contact belongs to another user_id; 400 <c>invalid_user_id</c>.</exception>
    public virtual Task<AppEnrollment> EnrollAppAsync(string user, string userId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(userId);
        return SendAsync<AppEnrollment>(HttpMethod.Post, "v1/mfa/app", new Dictionary<string, object?> { ["user"] = User(user), ["user_id"] = userId }, null, cancellationToken);
    }

    /// <summary>Removes the user's authenticator-app factor and clears their lockout (<c>DELETE /v1/mfa/app</c>).</summary>
    /// <param name="user">The user.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>When removed.</returns>
    public virtual Task RemoveAppAsync(string user, CancellationToken cancellationToken = default) =>
        SendAsync<object>(HttpMethod.Delete, "v1/mfa/app" + UserQuery(user), null, null, cancellationToken);

    /// <summary>Generates a new set of backup codes and delivers it to the user (<c>POST /v1/mfa/backup</c>); the previous set stops working.</summary>
    /// <param name="request">User, where to deliver, locale.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The set's description (never the codes).</returns>
    /// <exception cref="DevRiftException">Refused (e.g. 403 <c>method_disabled</c>; for a phone the fraud guard refuses, 403
    /// <c>country_not_allowed</c> or <c>destination_blocked</c>).</exception>
    public virtual Task<BackupCodeSet> GenerateBackupCodesAsync(GenerateBackupCodesRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var body = new Dictionary<string, object?>
        {
            ["user"] = User(request.User),
            ["type"] = request.Type.ToString().ToUpperInvariant(),
            ["locale"] = request.Locale,
            ["user_id"] = request.UserId,
        };
        return SendAsync<BackupCodeSet>(HttpMethod.Post, "v1/mfa/backup", body, null, cancellationToken);
    }

    /// <summary>Starts security-key registration (<c>POST /v1/mfa/keys/registration/options</c>).</summary>
    /// <param name="user">The user.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>WebAuthn creation options (JSON, base64url), to hand to <c>navigator.credentials.create</c> as they are.</returns>
    public virtual Task<JsonElement> CreateSecurityKeyRegistrationOptionsAsync(string user, CancellationToken cancellationToken = default) =>
        SendAsync<JsonElement>(HttpMethod.Post, "v1/mfa/keys/registration/options", new Dictionary<string, object?> { ["user"] = User(user) }, null, cancellationToken);

    /// <summary>Finishes registration with the browser's attestation response (<c>POST /v1/mfa/keys/registration</c>).</summary>
    /// <param name="user">The user.</param>
    /// <param name="credential">The attestation response as JSON.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The registered key.</returns>
    public virtual Task<SecurityKey> RegisterSecurityKeyAsync(string user, JsonElement credential, CancellationToken cancellationToken = default) =>
        SendAsync<SecurityKey>(HttpMethod.Post, "v1/mfa/keys/registration",
            new Dictionary<string, object?> { ["user"] = User(user), ["credential"] = credential }, null, cancellationToken);

    /// <summary>Starts a security-key check (<c>POST /v1/mfa/keys/assertion/options</c>); then verify with <see cref="VerifySecurityKeyAsync"/>.</summary>
    /// <param name="user">The user.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>WebAuthn request options (JSON, base64url).</returns>
    public virtual Task<JsonElement> CreateSecurityKeyAssertionOptionsAsync(string user, CancellationToken cancellationToken = default) =>
        SendAsync<JsonElement>(HttpMethod.Post, "v1/mfa/keys/assertion/options", new Dictionary<string, object?> { ["user"] = User(user) }, null, cancellationToken);

    /// <summary>
    /// Starts a security-key check for a payment: the WebAuthn challenge is derived from <paramref name="transaction"/>, so
    /// the key's signature covers it; verify with <see cref="VerifyAsync"/> and the same transaction.
    /// </summary>
    /// <param name="user">The user.</param>
    /// <param name="transaction">The payment the user approves.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>WebAuthn request options (JSON, base64url).</returns>
    public virtual Task<JsonElement> CreateSecurityKeyAssertionOptionsAsync(string user, Transaction transaction, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transaction);
        return SendAsync<JsonElement>(HttpMethod.Post, "v1/mfa/keys/assertion/options",
            new Dictionary<string, object?> { ["user"] = User(user), ["transaction"] = transaction }, null, cancellationToken);
    }

    /// <summary>Verifies a security key's assertion (Type=KEY).</summary>
    /// <param name="user">The user.</param>
    /// <param name="credential">The assertion response as JSON.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The verification.</returns>
    public virtual Task<Verification> VerifySecurityKeyAsync(string user, JsonElement credential, CancellationToken cancellationToken = default) =>
        VerifyAsync(new VerifyRequest { User = user, Type = VerificationType.Key, Credential = credential }, cancellationToken);

    /// <summary>Lists the user's security keys (<c>GET /v1/mfa/keys</c>).</summary>
    /// <param name="user">The user.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The keys.</returns>
    public virtual async Task<IReadOnlyList<SecurityKey>> ListSecurityKeysAsync(string user, CancellationToken cancellationToken = default) =>
        (await SendAsync<DevRiftList<SecurityKey>>(HttpMethod.Get, "v1/mfa/keys" + UserQuery(user), null, null, cancellationToken).ConfigureAwait(false)).Data;

    /// <summary>Removes a security key (<c>DELETE /v1/mfa/keys/{id}</c>).</summary>
    /// <param name="id">The key's id, <c>key_…</c>.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>When removed.</returns>
    public virtual Task RemoveSecurityKeyAsync(string id, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        return SendAsync<object>(HttpMethod.Delete, "v1/mfa/keys/" + Uri.EscapeDataString(id), null, null, cancellationToken);
    }

    /// <summary>What the user has (<c>GET /v1/mfa/factors</c>): app status, security keys, backup codes left, lockout.</summary>
    /// <param name="user">The user.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The factors.</returns>
    public virtual Task<Factors> GetFactorsAsync(string user, CancellationToken cancellationToken = default) =>
        SendAsync<Factors>(HttpMethod.Get, "v1/mfa/factors" + UserQuery(user), null, null, cancellationToken);

    /// <summary>Test keys only: the messages the appliance would have sent to the user, newest first (<c>GET /v1/test/messages</c>).</summary>
    /// <param name="user">The user (email, phone, or email:phone for both).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The messages.</returns>
    /// <exception cref="DevRiftException">403 <c>live_mode_forbidden</c> with a live key.</exception>
    public virtual async Task<IReadOnlyList<TestMessage>> ListTestMessagesAsync(string user, CancellationToken cancellationToken = default) =>
        (await SendAsync<DevRiftList<TestMessage>>(HttpMethod.Get, "v1/test/messages" + UserQuery(user), null, null, cancellationToken).ConfigureAwait(false)).Data;

    /// <summary>Test keys only: the code in the newest test message to the user on <paramref name="channel"/>.</summary>
    /// <param name="user">The user.</param>
    /// <param name="channel">The channel sent on (DUAL reads the email).</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The code.</returns>
    /// <exception cref="InvalidOperationException">No such message in the test outbox.</exception>
    public virtual async Task<string> GetLatestTestCodeAsync(string user, DeliveryChannel channel, CancellationToken cancellationToken = default)
    {
        var wanted = channel == DeliveryChannel.Dual ? "EMAIL" : Wire(channel);
        foreach (var message in await ListTestMessagesAsync(user, cancellationToken).ConfigureAwait(false))
        {
            if (message.Channel == wanted)
            {
                // A call spells the digits out ("1, 2, 3 …").
                var text = wanted == "CALL" ? message.Body.Replace(", ", "", StringComparison.Ordinal) : message.Body;
                if (CodePattern().Match(text) is { Success: true } m)
                {
                    return m.Value;
                }
            }
        }

        throw new InvalidOperationException($"no {wanted} message with a code in the test outbox for this user");
    }

    /// <summary>Disposes the connection pool the client created (not an <see cref="HttpClient"/> passed in).</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Disposes owned resources.</summary>
    /// <param name="disposing">True from <see cref="Dispose()"/>.</param>
    protected virtual void Dispose(bool disposing)
    {
        if (disposing && _ownsHttpClient)
        {
            _http.Dispose();
        }
    }

    private static DevRiftClientOptions Checked(DevRiftClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return options;
    }

    private string User(string user) => PhoneNumberFormatter.NormalizeUser(user, _options.DefaultRegion);

    private string UserQuery(string user) => "?user=" + Uri.EscapeDataString(User(user));

    private static string Wire(DeliveryChannel channel) => channel.ToString().ToUpperInvariant();

    private static string Wire(VerificationType type) => type.ToString().ToUpperInvariant();

    /// <summary>An address as the appliance reads it: without an IPv6 zone (<c>%eth0</c>), which is only meaningful on this host.</summary>
    private static string? Wire(System.Net.IPAddress? ip) =>
        ip is null ? null
        : ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 && ip.ScopeId != 0 ? new System.Net.IPAddress(ip.GetAddressBytes()).ToString()
        : ip.ToString();

    // A run of digits standing alone (not part of a name such as "shop-2024").
    [GeneratedRegex(@"(?<![\w-])\d{4,10}(?![\w-])", RegexOptions.CultureInvariant)]
    private static partial Regex CodePattern();
}
