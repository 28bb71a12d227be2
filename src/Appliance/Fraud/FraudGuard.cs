using System.Data.Common;
using System.Text.Json.Nodes;
using Dapper;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Audit;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Appliance.Users;
using PhoneNumbers;

namespace DevRift.Hsm.Appliance.Fraud;

/// <summary>Why the fraud guard refused (or would refuse) a send: the <c>reason</c> label of its counts.</summary>
public static class FraudReasons
{
    public const string Country = "country";
    public const string Range = "range";
    public const string Velocity = "velocity";

    public static readonly string[] All = [Country, Range, Velocity];
}

/// <summary>What the fraud guard did: refused (<c>enforce</c>) or only recorded (<c>shadow</c>).</summary>
public static class FraudDecisions
{
    public const string Blocked = "blocked";
    public const string WouldBlock = "would_block";

    public static readonly string[] All = [Blocked, WouldBlock];
}

/// <summary>How many sends of one mode the guard refused or would have refused for one reason.</summary>
public sealed record FraudGuardCount(string Mode, string Reason, string Decision, long Total);

/// <summary>
/// The on-premises fraud guard against SMS pumping and toll fraud. Before a phone send (SMS, WHATSAPP, CALL, the phone
/// of DUAL, SMS backup codes) does any HSM work or stores anything, it checks the destination against the application's
/// <c>allowed_countries</c>, its <c>blocked_ranges</c>, the shipped <see cref="PremiumRanges"/> and libphonenumber's
/// number type (premium-rate and shared-cost numbers), then counts the send against the velocity limits per country
/// calling code and per number range. Every lookup is local (libphonenumber's metadata, the shipped list, the
/// database): no end-user data leaves the appliance.
/// <para>
/// The counters are rows locked in the guard's own transaction, so every node sharing the database counts together;
/// a send the guard lets through is counted even if a later limit (per destination, per application) refuses it. A
/// refusal, and in shadow mode a would-be refusal, adds one to the application's counts and one audit record
/// (<c>fraud_guard.block</c> / <c>fraud_guard.would_block</c>) in that same transaction: the counts survive restarts and
/// agree with the log. A send the guard passes with no velocity limit set writes nothing.
/// </para>
/// </summary>
public sealed class FraudGuard(Database db, AuditLog audit, ApplianceMetrics metrics, TimeProvider time)
{
    /// <summary>A number range is the E.164 number without this many trailing digits (a block of 1,000 numbers).</summary>
    public const int RangeTrailingDigits = 3;

    private const long HourMs = 3_600_000;
    private static readonly PhoneNumberUtil s_phones = PhoneNumberUtil.GetInstance();

    /// <summary>
    /// Checks the phone of <paramref name="user"/> (a user without one passes). In <c>enforce</c> mode a match is 403
    /// <c>country_not_allowed</c> or <c>destination_blocked</c>, or 429 <c>rate_limited</c> with Retry-After for a velocity
    /// limit, each naming <c>user</c>; in <c>shadow</c> mode it is only recorded; <c>off</c> checks nothing.
    /// </summary>
    public async Task CheckAsync(ApiCaller caller, string type, MfaUser user, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(user);
        var settings = caller.Application.Settings;
        if (user.Phone is not { } phone || settings.FraudGuardMode == FraudGuardModes.Off)
        {
            return;
        }

        var enforce = settings.FraudGuardMode == FraudGuardModes.Enforce;
        var number = s_phones.Parse(phone, null);
        var country = Countries.RegionOf(number);
        var ruled = RuleFinding(settings, phone, number, country);
        var buckets = VelocityBuckets(settings, phone, number);
        if (ruled is null && buckets.Count == 0)
        {
            return;
        }

        var decision = enforce ? FraudDecisions.Blocked : FraudDecisions.WouldBlock;
        var now = time.GetUtcNow();
        var finding = await db.InTransactionAsync(async (c, tx) =>
        {
            // A send refused by a rule is not counted against the velocity limits; one that goes ahead (shadow) is.
            var counted = enforce && ruled is not null ? null : await CountAsync(c, tx, caller, buckets, enforce, now);
            var found = ruled ?? counted;
            if (found is not null)
            {
                await c.ExecuteAsync(
                    """
                    INSERT INTO fraud_guard_counts (application_id, mode, reason, decision, total) VALUES (@app, @mode, @reason, @decision, 1)
                    ON CONFLICT (application_id, mode, reason, decision) DO UPDATE SET total = fraud_guard_counts.total + 1
                    """,
                    new { app = caller.Application.Id, mode = caller.Mode, reason = found.Reason, decision }, tx);
                var detail = new JsonObject { ["type"] = type, ["reason"] = found.Reason, ["rule"] = found.Rule, ["country"] = country };
                if (found.Matched is not null)
                {
                    detail["matched"] = found.Matched;
                }

                await audit.AppendAsync(c, tx, AuditEntry.ByCaller(
                    caller, enforce ? AuditEvents.FraudGuardBlock : AuditEvents.FraudGuardWouldBlock, user.Key, found.Error.Code, detail));
            }

            return found;
        }, ct);
        if (finding is null)
        {
            return;
        }

        metrics.FraudGuardDecision(finding.Reason, decision);
        if (enforce)
        {
            throw new MfaException(finding.Error, finding.Detail, "user") { RetryAfterSeconds = finding.RetryAfterSeconds };
        }
    }

    /// <summary>The application's counts, every mode, reason and decision that has one.</summary>
    public async Task<IReadOnlyList<FraudGuardCount>> CountsAsync(string applicationId, CancellationToken ct = default) =>
        (await db.WithConnectionAsync(c => c.QueryAsync<FraudGuardCount>(
            "SELECT mode, reason, decision, total FROM fraud_guard_counts WHERE application_id = @applicationId",
            new { applicationId }), ct)).ToList();

    /// <summary>The first rule the destination matches: its country, a blocked range, a high-cost number type.</summary>
    private static Finding? RuleFinding(ApplicationSettings settings, string phone, PhoneNumber number, string country)
    {
        if (settings.AllowedCountries.Count > 0 && !settings.AllowedCountries.Contains(country, StringComparer.Ordinal))
        {
            var where = country == "001" ? $"an international service (+{number.CountryCode}), not a country" : $"in {country}";
            return new(FraudReasons.Country, "allowed_countries", country, ErrorCode.CountryNotAllowed,
                $"the destination is {where}, which is not in this application's allowed_countries; nothing was sent");
        }

        if (PremiumRanges.LongestMatch(phone, settings.BlockedRanges) is { } own)
        {
            return Blocked("blocked_ranges", own, $"the destination is in {own}, a range in this application's blocked_ranges; nothing was sent");
        }

        if (PremiumRanges.LongestMatch(phone, PremiumRanges.Shipped) is { } shipped)
        {
            return Blocked("shipped_ranges", shipped, $"the destination is in {shipped}, a high-cost range on the appliance's shipped list; nothing was sent");
        }

        return s_phones.GetNumberType(number) switch
        {
            PhoneNumberType.PREMIUM_RATE => Blocked("number_type", "premium_rate", "the destination is a premium-rate number; nothing was sent"),
            PhoneNumberType.SHARED_COST => Blocked("number_type", "shared_cost", "the destination is a shared-cost number; nothing was sent"),
            _ => null,
        };

        static Finding Blocked(string rule, string matched, string detail) => new(FraudReasons.Range, rule, matched, ErrorCode.DestinationBlocked, detail);
    }

    private static List<Bucket> VelocityBuckets(ApplicationSettings settings, string phone, PhoneNumber number)
    {
        var buckets = new List<Bucket>(2);
        if (settings.VelocityPerPrefixPerHour > 0)
        {
            buckets.Add(new("prefix", $"+{number.CountryCode}", settings.VelocityPerPrefixPerHour));
        }

        if (settings.VelocityPerRangePerHour > 0)
        {
            buckets.Add(new("range", phone[..Math.Max(2, phone.Length - RangeTrailingDigits)], settings.VelocityPerRangePerHour));
        }

        return buckets;
    }

    /// <summary>
    /// Locks each bucket's row (prefix before range: one lock order everywhere), reads this clock hour's sends, and
    /// adds this send unless a limit is reached in enforce mode. The first limit reached, or null.
    /// </summary>
    private async Task<Finding?> CountAsync(DbConnection c, DbTransaction tx, ApiCaller caller, List<Bucket> buckets, bool enforce, DateTimeOffset now)
    {
        var nowMs = now.ToUnixTimeMilliseconds();
        var hour = nowMs - (nowMs % HourMs);
        Finding? reached = null;
        foreach (var bucket in buckets)
        {
            var key = new { app = caller.Application.Id, mode = caller.Mode, scope = bucket.Scope, bucket = bucket.Value, hour };
            await c.ExecuteAsync(
                """
                INSERT INTO fraud_guard_velocity (application_id, mode, scope, bucket, window_start, sends) VALUES (@app, @mode, @scope, @bucket, @hour, 0)
                ON CONFLICT (application_id, mode, scope, bucket) DO NOTHING
                """, key, tx);
            var row = await c.QuerySingleAsync<VelocityRow>(
                "SELECT window_start AS WindowStart, sends FROM fraud_guard_velocity WHERE application_id = @app AND mode = @mode AND scope = @scope AND bucket = @bucket"
                + db.Dialect.ForUpdate, key, tx);
            var sends = row.WindowStart == hour ? row.Sends : 0;
            if (sends >= bucket.Limit && reached is null)
            {
                var what = bucket.Scope == "prefix"
                    ? $"numbers with the country calling code {bucket.Value}"
                    : $"numbers of one range (the number without its last {RangeTrailingDigits} digits)";
                reached = new(FraudReasons.Velocity, $"velocity_per_{bucket.Scope}_per_hour", bucket.Scope == "prefix" ? bucket.Value : null, ErrorCode.RateLimited,
                    $"this application may send at most {bucket.Limit} codes per hour to {what}; nothing was sent")
                {
                    RetryAfterSeconds = (int)Math.Max(1, Math.Ceiling((hour + HourMs - nowMs) / 1000.0)),
                };
            }
        }

        if (reached is not null && enforce)
        {
            return reached;
        }

        foreach (var bucket in buckets)
        {
            await c.ExecuteAsync(
                """
                UPDATE fraud_guard_velocity SET sends = CASE WHEN window_start = @hour THEN sends + 1 ELSE 1 END, window_start = @hour
                WHERE application_id = @app AND mode = @mode AND scope = @scope AND bucket = @bucket
                """,
                new { app = caller.Application.Id, mode = caller.Mode, scope = bucket.Scope, bucket = bucket.Value, hour }, tx);
        }

        return reached;
    }

    /// <summary>What a rule found: the reason counted, the rule, what it matched (never the number) and the refusal.</summary>
    private sealed record Finding(string Reason, string Rule, string? Matched, ErrorCode Error, string Detail)
    {
        public int? RetryAfterSeconds { get; init; }
    }

    private sealed record Bucket(string Scope, string Value, int Limit);

    private sealed class VelocityRow
    {
        public long WindowStart { get; init; }

        public long Sends { get; init; }
    }
}
