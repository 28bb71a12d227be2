using System.Data.Common;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Dapper;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Audit;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Fraud;
using DevRift.Hsm.Appliance.Outbox;
using DevRift.Hsm.Appliance.Payments;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Appliance.Users;
using DevRift.Hsm.Crypto;

namespace DevRift.Hsm.Appliance.Challenges;

/// <summary>One channel of a challenge as the API shows it.</summary>
public sealed record ChannelStatus(string Channel, string To, string Status, string? Reason, DateTimeOffset UpdatedAt);

/// <summary>A challenge as the API shows it (never its code), with the transaction its codes are bound to, if any.</summary>
public sealed record ChallengeView(
    string Id, string User, string Type, string Status, IReadOnlyList<ChannelStatus> Channels,
    DateTimeOffset CreatedAt, DateTimeOffset ExpiresAt, int AttemptsRemaining, bool LiveMode, Transaction? Transaction = null);

/// <summary>A successful verification, with the transaction it authorised, if any.</summary>
public sealed record Verification(string User, string Type, DateTimeOffset VerifiedAt, bool LiveMode, string? ChallengeId = null, Transaction? Transaction = null);

/// <summary>
/// Out-of-band challenges: a code per channel derived in the HSM from (challenge id, channel, nonce and, for a payment,
/// the canonical transaction) and never stored; delivery through the outbox in the same transaction; verification that consumes the
/// challenge with one conditional update, so racing duplicates get exactly one success on any number of nodes.
/// </summary>
public sealed class ChallengeService(
    Database db, OobCodes codes, HsmRandom random, OutboxStore outbox, DeliveryRouting routing, AuditLog audit, FraudGuard fraudGuard, Identities identities, TimeProvider time)
{
    private const string Pending = "pending", Approved = "approved", Canceled = "canceled", Exhausted = "max_attempts_reached";

    /// <summary>
    /// Creates a challenge, derives its codes in the HSM and queues their messages; the challenge, its outbox rows and
    /// its <c>challenge.send</c> audit record commit in one transaction, so an accepted send is always audited and a
    /// send that cannot be audited sends nothing. A repeated idempotency key answers with the first challenge. With a
    /// <paramref name="transactionInput"/> the codes are bound to that payment and the messages name its amount and payee.
    /// </summary>
    public async Task<ChallengeView> SendAsync(ApiCaller caller, string? userValue, string? typeValue, string? locale, string? idempotencyKey,
        TransactionInput? transactionInput = null, CancellationToken ct = default) =>
        await SendAsync(caller, userValue, typeValue, locale, idempotencyKey, transactionInput, null, ct);

    /// <summary>
    /// <see cref="SendAsync(ApiCaller, string?, string?, string?, string?, TransactionInput?, CancellationToken)"/>; a
    /// DUAL send links its email and phone into one identity, and a <paramref name="userId"/> links the contact to the
    /// identity it names, in the send's transaction.
    /// </summary>
    public async Task<ChallengeView> SendAsync(ApiCaller caller, string? userValue, string? typeValue, string? locale, string? idempotencyKey,
        TransactionInput? transactionInput, string? userId, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var type = Channels.ParseSendType(typeValue);
        var settings = caller.Application.Settings;
        if (type == Channels.Dual && caller.Application.Plan != Plans.Enterprise)
        {
            throw new MfaException(ErrorCode.PlanRequired, "the Dual MFA System needs the enterprise plan", "type");
        }

        if (!settings.IsEnabled(type))
        {
            throw new MfaException(ErrorCode.MethodDisabled, $"{type} is not enabled in this application's settings", "type");
        }

        var user = type switch
        {
            Channels.Email => MfaUser.ParseEmail(userValue ?? ""),
            Channels.Dual => MfaUser.ParseDual(userValue),
            _ => MfaUser.ParsePhone(userValue ?? ""),
        };
        user = user.WithUserId(userId);
        var transaction = Transaction.Parse(transactionInput);
        if (idempotencyKey is { Length: > 255 })
        {
            throw new MfaException(ErrorCode.InvalidRequest, "Idempotency-Key is longer than 255 characters", "Idempotency-Key");
        }

        var resolvedLocale = MessageTemplates.ResolveLocale(locale);
        var family = Channels.Family(type);
        var fingerprint = transaction is null ? $"{user.Key}|{type}|{resolvedLocale}" : $"{user.Key}|{type}|{resolvedLocale}|{transaction.Canonical}";
        if (user.UserId is not null)
        {
            fingerprint += $"|user_id={user.UserId}";
        }
        if (idempotencyKey is not null && await FindIdempotentAsync(caller, idempotencyKey, fingerprint, ct) is { } earlier)
        {
            return earlier;
        }

        var channels = type == Channels.Dual
            ? new[] { (Channel: Channels.Email, To: user.Email!), (Channel: Channels.Sms, To: user.Phone!) }
            : [(Channel: type, To: user.Email ?? user.Phone!)];
        if (caller.LiveMode)
        {
            foreach (var (channel, _) in channels)
            {
                if (!routing.IsConfigured(channel))
                {
                    throw new MfaException(ErrorCode.ChannelNotConfigured, $"no delivery provider is configured for {channel}; nothing was sent", "type");
                }
            }
        }

        // The fraud guard before anything else is done or stored (a refusal changes only the guard's own counts).
        await fraudGuard.CheckAsync(caller, type, user, ct);

        // HSM work first (derive, render, seal) so that the database transaction stays short.
        var now = time.GetUtcNow();
        var id = Ids.New("mfa_");
        var nonce = random.GetBytes(16);
        var keyVersion = codes.CurrentVersion;
        var lifetime = TimeSpan.FromSeconds(settings.CodeLifetimeSeconds);
        var expiresAt = now + lifetime;
        var messages = channels.Select(c =>
        {
            var code = codes.Derive(id, c.Channel, nonce, settings.CodeLength, keyVersion, transaction?.Canonical);
            var rendered = MessageTemplates.Code(c.Channel, caller.Application.Name, code, lifetime, resolvedLocale, transaction);
            return outbox.Prepare("code", c.Channel, c.To, resolvedLocale, rendered);
        }).ToList();

        var channelStatus = caller.LiveMode ? "queued" : "sent";
        var channelReason = caller.LiveMode ? null : "test mode: held in the test outbox";
        string? earlierId;
        try
        {
            earlierId = await db.InTransactionAsync(async (c, tx) =>
            {
                if (idempotencyKey is not null
                    && await FindIdempotentInAsync(c, tx, caller, idempotencyKey, fingerprint) is { } concurrent)
                {
                    // A concurrent retry with the same key got here first, in the same SQLite group commit (its rows are
                    // visible here, not yet to other connections): answer with its challenge, change nothing.
                    return concurrent;
                }

                foreach (var (_, to) in channels)
                {
                    await CheckSendLimitsAsync(c, tx, caller, to, family, settings, now);
                }

                if (user.IsDual || user.UserId is not null)
                {
                    await identities.LinkAsync(c, tx, caller, user);
                }

                await c.ExecuteAsync(
                    "UPDATE challenges SET status = @Canceled WHERE application_id = @app AND mode = @mode AND user_key = @user AND family = @family AND status = @Pending",
                    new { Canceled, Pending, app = caller.Application.Id, mode = caller.Mode, user = user.Key, family }, tx);
                await c.ExecuteAsync(
                    """
                    INSERT INTO challenges (id, application_id, mode, user_key, family, type, status, nonce, code_length, code_key_version,
                                            attempts, max_attempts, locale, created_at, expires_at,
                                            transaction_amount, transaction_currency, transaction_payee, transaction_reference)
                    VALUES (@id, @app, @mode, @user, @family, @type, @Pending, @nonce, @length, @keyVersion, 0, @max, @locale, @now, @expires,
                            @amount, @currency, @payee, @reference)
                    """,
                    new
                    {
                        id, app = caller.Application.Id, mode = caller.Mode, user = user.Key, family, type, Pending, nonce,
                        length = settings.CodeLength, keyVersion, max = settings.AttemptsPerChallenge, locale = resolvedLocale,
                        now = now.ToUnixTimeMilliseconds(), expires = expiresAt.ToUnixTimeMilliseconds(),
                        amount = transaction?.Amount, currency = transaction?.Currency, payee = transaction?.Payee, reference = transaction?.Reference,
                    }, tx);
                foreach (var (channel, to) in channels)
                {
                    await c.ExecuteAsync(
                        "INSERT INTO challenge_channels (challenge_id, channel, destination, status, reason, updated_at) VALUES (@id, @channel, @to, @channelStatus, @channelReason, @now)",
                        new { id, channel, to, channelStatus, channelReason, now = now.ToUnixTimeMilliseconds() }, tx);
                }

                await OutboxStore.InsertAsync(c, tx, caller.Application.Id, caller.Mode, id, messages, now, expiresAt);
                if (idempotencyKey is not null)
                {
                    await c.ExecuteAsync(
                        "INSERT INTO idempotency_keys (application_id, mode, key, fingerprint, challenge_id, created_at) VALUES (@app, @mode, @key, @fingerprint, @id, @now)",
                        new { app = caller.Application.Id, mode = caller.Mode, key = idempotencyKey, fingerprint, id, now = now.ToUnixTimeMilliseconds() }, tx);
                }

                var detail = new JsonObject
                {
                    ["type"] = type,
                    ["challenge_id"] = id,
                    ["channels"] = new JsonArray([.. channels.Select(ch => ch.Channel).Order(StringComparer.Ordinal).Select(ch => (JsonNode)JsonValue.Create(ch))]),
                };
                if (transaction is not null)
                {
                    detail["transaction"] = transaction.ToJson();
                }

                await audit.AppendAsync(c, tx, AuditEntry.ByCaller(caller, AuditEvents.ChallengeSend, user.Key, "ok", detail));
                return (string?)null;
            }, ct);
        }
        catch (Exception e) when (idempotencyKey is not null
            && e is StorageUnavailableException or MfaException { Error.Kind: ErrorKind.RateLimited })
        {
            // A concurrent retry with the same key may have won: its insert conflicts with ours, or its send now counts
            // against this destination's limits. Answer with its challenge.
            if (await FindIdempotentAsync(caller, idempotencyKey, fingerprint, ct) is { } winner)
            {
                return winner;
            }

            throw;
        }

        return await GetAsync(caller, earlierId ?? id, ct);
    }

    /// <summary>The challenge id a live (24 h) Idempotency-Key names, read in the send's own transaction; a different request under it is 409.</summary>
    private async Task<string?> FindIdempotentInAsync(DbConnection c, DbTransaction tx, ApiCaller caller, string key, string fingerprint)
    {
        var since = (time.GetUtcNow() - TimeSpan.FromHours(24)).ToUnixTimeMilliseconds();
        var row = await c.QuerySingleOrDefaultAsync<IdempotencyRow>(
            "SELECT fingerprint, challenge_id AS ChallengeId, created_at AS CreatedAt FROM idempotency_keys WHERE application_id = @app AND mode = @mode AND key = @key",
            new { app = caller.Application.Id, mode = caller.Mode, key }, tx);
        return row is null ? null : LiveChallengeId(row, since, fingerprint);
    }

    public async Task<ChallengeView> GetAsync(ApiCaller caller, string id, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        var row = await db.WithConnectionAsync(c => c.QuerySingleOrDefaultAsync<ChallengeRow>(
            $"SELECT {ChallengeRow.Columns} FROM challenges WHERE id = @id AND application_id = @app AND mode = @mode",
            new { id, app = caller.Application.Id, mode = caller.Mode }), ct)
            ?? throw new MfaException(ErrorCode.NotFound, $"no challenge '{id}'", "id");
        var channels = await db.WithConnectionAsync(c => c.QueryAsync<ChannelRow>(
            "SELECT channel, destination, status, reason, updated_at AS UpdatedAt FROM challenge_channels WHERE challenge_id = @id ORDER BY channel",
            new { id }), ct);
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        return new ChallengeView(
            row.Id, row.UserKey, row.Type, row.EffectiveStatus(now),
            channels.Select(ch => new ChannelStatus(ch.Channel, ch.Destination, ch.Status, ch.Reason, DateTimeOffset.FromUnixTimeMilliseconds(ch.UpdatedAt))).ToList(),
            DateTimeOffset.FromUnixTimeMilliseconds(row.CreatedAt), DateTimeOffset.FromUnixTimeMilliseconds(row.ExpiresAt),
            (int)Math.Max(0, row.MaxAttempts - row.Attempts), caller.LiveMode, row.Transaction);
    }

    /// <summary>
    /// The EMAIL, PHONE and DUAL check of the verification pipeline: the code against the newest pending challenge of
    /// the family (the attempt counted first), derived in the HSM over the <paramref name="transaction"/> presented; on
    /// success the challenge is approved and <paramref name="record"/> appended to the audit log in one transaction.
    /// A presented transaction that is not the one the challenge is bound to (or one presented for a challenge without,
    /// or none for a challenge with one) is 401 <c>transaction_mismatch</c> and counts as a failed attempt, whatever the code.
    /// </summary>
    public async Task<Verification> CheckAsync(ApiCaller caller, string family, MfaUser user, string code, Transaction? transaction, AuditEntry? record, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(user);
        var now = time.GetUtcNow();
        var nowMs = now.ToUnixTimeMilliseconds();
        // The pending challenge if there is one (at most one per family): a replaced challenge can carry the same
        // created_at as its replacement (no cool-down), or a later one (its send read the clock later but committed first).
        var row = await db.WithConnectionAsync(c => c.QueryFirstOrDefaultAsync<ChallengeRow>(
            $"""
            SELECT {ChallengeRow.Columns} FROM challenges WHERE application_id = @app AND mode = @mode AND user_key = @user AND family = @family
            ORDER BY CASE WHEN status = @Pending THEN 0 ELSE 1 END, created_at DESC, id DESC LIMIT 1
            """,
            new { app = caller.Application.Id, mode = caller.Mode, user = user.Key, family, Pending }), ct);
        ThrowUnlessVerifiable(row, nowMs);
        var challengeId = row.Id;

        // Count the attempt before checking, in one conditional statement: parallel guesses cannot exceed the limit.
        // A write transaction of its own, so that on SQLite it joins the writer's next batch (one fsync for many).
        var attempts = await db.InTransactionAsync((c, tx) => c.QuerySingleOrDefaultAsync<long?>(
            "UPDATE challenges SET attempts = attempts + 1 WHERE id = @id AND status = @Pending AND attempts < max_attempts AND expires_at > @now RETURNING attempts",
            new { id = challengeId, Pending, now = nowMs }, tx), ct);
        if (attempts is null)
        {
            var again = await db.WithConnectionAsync(c => c.QuerySingleOrDefaultAsync<ChallengeRow>(
                $"SELECT {ChallengeRow.Columns} FROM challenges WHERE id = @id", new { id = challengeId }), ct);
            ThrowUnlessVerifiable(again, nowMs);
            throw new MfaException(ErrorCode.NoPendingChallenge, "the challenge is no longer pending", "code");
        }

        var channels = family == "DUAL" ? new[] { Channels.Email, Channels.Sms } : [row.Type];
        var match = false;
        foreach (var channel in channels)
        {
            // No early exit: every channel's code is derived and compared.
            match |= code.Length == row.CodeLength && codes.Verify(row.Id, channel, row.Nonce, (int)row.CodeLength, (int)row.CodeKeyVersion, code, transaction?.Canonical);
        }

        // The HSM derivation already fails for another transaction; the comparison only names the reason (never the stored transaction).
        var sameTransaction = Transaction.Matches(row.Transaction, transaction);
        if (match && sameTransaction)
        {
            var approved = await db.InTransactionAsync(async (c, tx) =>
            {
                var n = await c.ExecuteAsync(
                    "UPDATE challenges SET status = @Approved, approved_at = @now WHERE id = @id AND status = @Pending",
                    new { Approved, Pending, id = row.Id, now = nowMs }, tx);
                if (n == 1 && record is not null)
                {
                    await audit.AppendAsync(c, tx, record);
                }

                return n;
            }, ct);
            if (approved == 1)
            {
                return new Verification(user.Key, family, now, caller.LiveMode, row.Id, row.Transaction);
            }

            throw new MfaException(ErrorCode.NoPendingChallenge, "this code was already used", "code");
        }

        var remaining = (int)(row.MaxAttempts - attempts.Value);
        if (remaining <= 0)
        {
            await db.InTransactionAsync((c, tx) => c.ExecuteAsync(
                "UPDATE challenges SET status = @Exhausted WHERE id = @id AND status = @Pending",
                new { Exhausted, Pending, id = row.Id }, tx), ct);
        }

        var left = remaining > 0 ? $"{remaining} attempt(s) left on this challenge" : "no attempts left, send a new code";
        throw sameTransaction
            ? new MfaException(ErrorCode.InvalidCode, $"the code is not valid; {left}", "code") { AttemptsRemaining = remaining }
            : new MfaException(ErrorCode.TransactionMismatch, $"the transaction presented is not the one this code was issued for; {left}", "transaction")
            { AttemptsRemaining = remaining };
    }

    /// <summary>Digits only after removing spaces and hyphens; 4–10 of them.</summary>
    public static string NormaliseCode(string? value)
    {
        var code = (value ?? "").Replace(" ", "", StringComparison.Ordinal).Replace("-", "", StringComparison.Ordinal);
        if (code.Length is < OobCodes.MinLength or > OobCodes.MaxLength || !code.All(char.IsAsciiDigit))
        {
            throw new MfaException(ErrorCode.InvalidCodeFormat, "'code' must be 4 to 10 digits", "code");
        }

        return code;
    }

    private static void ThrowUnlessVerifiable([System.Diagnostics.CodeAnalysis.NotNull] ChallengeRow? row, long nowMs)
    {
        if (row is null)
        {
            throw new MfaException(ErrorCode.NoPendingChallenge, "no code was sent to this user for this type; send one first", "user");
        }

        switch (row.EffectiveStatus(nowMs))
        {
            case "expired":
                throw new MfaException(ErrorCode.CodeExpired, "the code has expired; send a new one", "code");
            case Exhausted:
                throw new MfaException(ErrorCode.TooManyAttempts, "too many wrong codes for this challenge; send a new code", "code")
                { AttemptsRemaining = 0, RetryAfterSeconds = (int)Math.Max(1, (row.ExpiresAt - nowMs) / 1000) };
            case Approved:
                throw new MfaException(ErrorCode.NoPendingChallenge, "the newest code for this user was already used; send a new one", "code");
            case Canceled:
                throw new MfaException(ErrorCode.NoPendingChallenge, "the newest challenge was canceled; send a new code", "code");
        }
    }

    private async Task CheckSendLimitsAsync(DbConnection c, DbTransaction tx, ApiCaller caller, string destination, string family, ApplicationSettings settings, DateTimeOffset now)
    {
        // The application's hourly budget first (its lock row, then the destination's: one lock order everywhere).
        await SendLimits.CheckApplicationAsync(c, tx, db.Dialect, caller.Application.Id, caller.Mode, settings.SendsPerApplicationPerHour, now);
        var nowMs = now.ToUnixTimeMilliseconds();
        // Upsert then lock the destination's row: concurrent sends to one destination queue here, on any node.
        await c.ExecuteAsync(
            "INSERT INTO destinations (application_id, mode, destination, last_send_at) VALUES (@app, @mode, @destination, 0) ON CONFLICT (application_id, mode, destination) DO NOTHING",
            new { app = caller.Application.Id, mode = caller.Mode, destination }, tx);
        await c.ExecuteScalarAsync<long>(
            "SELECT last_send_at FROM destinations WHERE application_id = @app AND mode = @mode AND destination = @destination" + db.Dialect.ForUpdate,
            new { app = caller.Application.Id, mode = caller.Mode, destination }, tx);
        var windowStart = nowMs - (settings.SendWindowSeconds * 1000L);
        var recent = (await c.QueryAsync<SendRow>(
            """
            SELECT o.created_at AS CreatedAt, c.family AS Family FROM outbox o JOIN challenges c ON c.id = o.challenge_id
            WHERE o.application_id = @app AND o.mode = @mode AND o.destination = @destination AND o.kind = 'code' AND o.created_at > @windowStart
            ORDER BY o.created_at
            """,
            new { app = caller.Application.Id, mode = caller.Mode, destination, windowStart }, tx)).ToList();
        var lastResend = recent.LastOrDefault(r => r.Family == family);
        if (lastResend is not null && settings.ResendCooldownSeconds > 0)
        {
            // The cool-down is between resends of the same kind of code; the window counts every code.
            var wait = lastResend.CreatedAt + (settings.ResendCooldownSeconds * 1000L) - nowMs;
            if (wait > 0)
            {
                throw new MfaException(ErrorCode.RateLimited, $"a code was sent to this destination less than {settings.ResendCooldownSeconds} s ago", "user")
                { RetryAfterSeconds = (int)Math.Ceiling(wait / 1000.0) };
            }
        }

        if (recent.Count >= settings.SendsPerDestination)
        {
            var wait = recent[^settings.SendsPerDestination].CreatedAt + (settings.SendWindowSeconds * 1000L) - nowMs;
            throw new MfaException(ErrorCode.RateLimited, $"at most {settings.SendsPerDestination} codes per {settings.SendWindowSeconds} s to one destination", "user")
            { RetryAfterSeconds = (int)Math.Max(1, Math.Ceiling(wait / 1000.0)) };
        }

        await c.ExecuteAsync(
            "UPDATE destinations SET last_send_at = @nowMs WHERE application_id = @app AND mode = @mode AND destination = @destination",
            new { nowMs, app = caller.Application.Id, mode = caller.Mode, destination }, tx);
    }

    private async Task<ChallengeView?> FindIdempotentAsync(ApiCaller caller, string key, string fingerprint, CancellationToken ct)
    {
        var since = (time.GetUtcNow() - TimeSpan.FromHours(24)).ToUnixTimeMilliseconds();
        var row = await db.WithConnectionAsync(c => c.QuerySingleOrDefaultAsync<IdempotencyRow>(
            "SELECT fingerprint, challenge_id AS ChallengeId, created_at AS CreatedAt FROM idempotency_keys WHERE application_id = @app AND mode = @mode AND key = @key",
            new { app = caller.Application.Id, mode = caller.Mode, key }), ct);
        if (row is null)
        {
            return null;
        }

        if (LiveChallengeId(row, since, fingerprint) is not { } challengeId)
        {
            await db.WithConnectionAsync(c => c.ExecuteAsync(
                "DELETE FROM idempotency_keys WHERE application_id = @app AND mode = @mode AND key = @key AND created_at <= @since",
                new { app = caller.Application.Id, mode = caller.Mode, key, since }), ct);
            return null;
        }

        return await GetAsync(caller, challengeId, ct);
    }

    /// <summary>The challenge a key's row names while it is live (24 h); null once expired; a different request under it is 409.</summary>
    private static string? LiveChallengeId(IdempotencyRow row, long since, string fingerprint) =>
        row.CreatedAt <= since ? null
        : CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(row.Fingerprint), Encoding.UTF8.GetBytes(fingerprint)) ? row.ChallengeId
        : throw new MfaException(ErrorCode.IdempotencyKeyReused, "this Idempotency-Key was used with a different request in the last 24 hours", "Idempotency-Key");

    private sealed class ChallengeRow
    {
        public const string Columns =
            "id, user_key AS UserKey, type, status, nonce, code_length AS CodeLength, code_key_version AS CodeKeyVersion, attempts, max_attempts AS MaxAttempts, created_at AS CreatedAt, expires_at AS ExpiresAt, "
            + "transaction_amount AS TransactionAmount, transaction_currency AS TransactionCurrency, transaction_payee AS TransactionPayee, transaction_reference AS TransactionReference";

        public string Id { get; init; } = "";

        public string UserKey { get; init; } = "";

        public string Type { get; init; } = "";

        public string Status { get; init; } = "";

        public byte[] Nonce { get; init; } = [];

        public long CodeLength { get; init; }

        public long CodeKeyVersion { get; init; }

        public long Attempts { get; init; }

        public long MaxAttempts { get; init; }

        public long CreatedAt { get; init; }

        public long ExpiresAt { get; init; }

        public string? TransactionAmount { get; init; }

        public string? TransactionCurrency { get; init; }

        public string? TransactionPayee { get; init; }

        public string? TransactionReference { get; init; }

        public Transaction? Transaction => Transaction.FromColumns(TransactionAmount, TransactionCurrency, TransactionPayee, TransactionReference);

        public string EffectiveStatus(long nowMs) =>
            Status == Pending && ExpiresAt <= nowMs ? "expired"
            : Status == Pending && Attempts >= MaxAttempts ? Exhausted
            : Status;
    }

    private sealed class ChannelRow
    {
        public string Channel { get; init; } = "";

        public string Destination { get; init; } = "";

        public string Status { get; init; } = "";

        public string? Reason { get; init; }

        public long UpdatedAt { get; init; }
    }

    private sealed class SendRow
    {
        public long CreatedAt { get; init; }

        public string Family { get; init; } = "";
    }

    private sealed class IdempotencyRow
    {
        public string Fingerprint { get; init; } = "";

        public string ChallengeId { get; init; } = "";

        public long CreatedAt { get; init; }
    }
}
