using System.Data.Common;
using Dapper;
using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Errors;
using DevRift.Hsm.Appliance.Storage;
using Microsoft.Extensions.Logging;

namespace DevRift.Hsm.Appliance.Users;

/// <summary>
/// One end user across contacts. An identity (<c>idn_…</c>) owns the user's authenticator apps, backup codes,
/// security keys and lockout; its contacts are email addresses, phone numbers and at most one integrator
/// <c>user_id</c>, each belonging to one identity per application and mode.
/// <list type="bullet">
/// <item>Writes that create factors (an enrolment, a backup set, a key registration), DUAL sends and any request
/// naming a <c>user_id</c> <see cref="LinkAsync">link</see>: contacts not yet known join the identity, and two
/// identities the request shows to be one person (a DUAL pair, or a contact and a <c>user_id</c>) merge into the
/// older, keeping everything both owned. Two different <c>user_id</c>s are never merged: 409 <c>identity_conflict</c>.</item>
/// <item>Checks and reads only <see cref="KeyAsync">resolve</see>: the <c>user_id</c>'s identity when given, else
/// the contact's; a contact no identity holds has no factors (every write that makes one links first), so its
/// checks find nothing and count nothing.</item>
/// </list>
/// Data written before identities existed, keyed by contact strings, is moved onto identities once at start
/// (<see cref="BackfillAsync"/>), by the same linking.
/// </summary>
public sealed class Identities(Database db, TimeProvider time, ILogger<Identities> log)
{
    /// <summary>The prefix of identity keys; contact keys never start with it (an email has an '@', a phone a '+').</summary>
    public const string Prefix = "idn_";

    private const string Email = "email", Phone = "phone", UserIdKind = "user_id";

    private const string BackfillTask = "identity_backfill";

    /// <summary>
    /// The tables whose <c>user_key</c> names the owner of a user's factors. Challenges stay keyed by the contact they
    /// were sent to; the audit log names the contact the integrator gave.
    /// </summary>
    private static readonly string[] s_ownedTables = ["totp_factors", "backup_sets", "backup_codes", "security_keys", "webauthn_ceremonies"];

    /// <summary>The key the user's factors are stored under: their identity's, or the contact's own while no identity holds it.</summary>
    public async Task<string> KeyAsync(ApiCaller caller, MfaUser user, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(user);
        var rows = await db.WithConnectionAsync(c => FindAsync(c, null, caller.Application.Id, caller.Mode, user), ct);
        if (user.UserId is not null)
        {
            if (rows.FirstOrDefault(r => r.Kind == UserIdKind) is { } named)
            {
                return named.IdentityId;
            }

            // A user_id not seen yet names no identity; the contact's serves unless it is another user_id's.
            if (rows.FirstOrDefault(r => r.UserId is not null) is not null)
            {
                throw Conflict("user_id");
            }
        }

        return rows.FirstOrDefault(r => r.Kind == Email)?.IdentityId ?? rows.FirstOrDefault()?.IdentityId ?? user.Key;
    }

    /// <summary>
    /// The identity of <paramref name="user"/> inside the caller's transaction, created or extended so that it holds
    /// every contact the request names (and its <c>user_id</c>), merging identities the request shows to be one.
    /// </summary>
    public Task<string> LinkAsync(DbConnection c, DbTransaction tx, ApiCaller caller, MfaUser user)
    {
        ArgumentNullException.ThrowIfNull(c);
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(user);
        return LinkAsync(c, tx, caller.Application.Id, caller.Mode, user);
    }

    private async Task<string> LinkAsync(DbConnection c, DbTransaction tx, string app, string mode, MfaUser user)
    {
        var wanted = Contacts(user);
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        string? created = null;

        // A contact inserted by a racing request (PostgreSQL) is seen on the next round, which merges it.
        for (var round = 0; ; round++)
        {
            var rows = await FindAsync(c, tx, app, mode, user);
            var identities = rows.GroupBy(r => r.IdentityId).Select(g => g.First()).ToList();
            var userIds = identities.Select(i => i.UserId).Concat([user.UserId]).OfType<string>().Distinct(StringComparer.Ordinal).ToList();
            if (userIds.Count > 1)
            {
                throw Conflict(user.UserId is null ? "user" : "user_id");
            }

            var missing = wanted.Where(w => !rows.Any(r => r.Kind == w.Kind && r.Value == w.Value)).ToList();
            var target = identities.Where(i => i.IdentityId != created).OrderBy(i => i.CreatedAt).ThenBy(i => i.IdentityId, StringComparer.Ordinal)
                .FirstOrDefault()?.IdentityId ?? created;
            if (missing.Count == 0 && identities.Count == 1 && (created is null || created == target))
            {
                if (user.UserId is not null && identities[0].UserId is null)
                {
                    await c.ExecuteAsync("UPDATE identities SET user_id = @userId WHERE id = @id", new { userId = user.UserId, id = target }, tx);
                }

                return target!;
            }

            if (target is null)
            {
                created = target = Ids.New(Prefix);
                await c.ExecuteAsync(
                    "INSERT INTO identities (id, application_id, mode, user_id, created_at) VALUES (@id, @app, @mode, @userId, @now)",
                    new { id = target, app, mode, userId = user.UserId, now }, tx);
            }

            var raced = false;
            foreach (var (kind, value) in missing)
            {
                raced |= await c.ExecuteAsync(
                    """
                    INSERT INTO identity_contacts (application_id, mode, kind, value, identity_id, created_at) VALUES (@app, @mode, @kind, @value, @target, @now)
                    ON CONFLICT (application_id, mode, kind, value) DO NOTHING
                    """,
                    new { app, mode, kind, value, target, now }, tx) == 0;
            }

            if (raced && round < 3)
            {
                continue;
            }

            // The other identities found, and the one this request created if a racing request's won.
            foreach (var other in identities.Select(i => i.IdentityId).Append(created).OfType<string>().Distinct(StringComparer.Ordinal).Where(i => i != target))
            {
                await MergeAsync(c, tx, app, mode, other, target);
            }

            if (user.UserId is not null)
            {
                await c.ExecuteAsync("UPDATE identities SET user_id = @userId WHERE id = @id AND user_id IS NULL", new { userId = user.UserId, id = target }, tx);
            }

            return target;
        }
    }

    /// <summary>
    /// Moves data keyed by contact strings (written before identities existed) onto identities, once: each distinct
    /// key is linked as a request naming it would be (so <c>email:phone</c> joins its email's and its phone's
    /// identities), one transaction per key, so an interrupted run resumes where it stopped.
    /// </summary>
    public async Task BackfillAsync(CancellationToken ct = default)
    {
        var pending = await db.WithConnectionAsync(c => c.ExecuteScalarAsync<long>(
            "SELECT COUNT(*) FROM maintenance WHERE name = @name AND done_at IS NULL", new { name = BackfillTask }), ct);
        if (pending == 0)
        {
            return;
        }

        var union = string.Join(" UNION ", s_ownedTables.Append("webauthn_users").Append("lockouts").Append("lockout_sources")
            .Select(t => $"SELECT DISTINCT application_id, mode, user_key FROM {t} WHERE substr(user_key, 1, 4) <> '{Prefix}'"));
        var keys = (await db.WithConnectionAsync(c => c.QueryAsync<(string App, string Mode, string UserKey)>(union), ct)).ToList();
        var moved = 0;
        foreach (var (app, mode, userKey) in keys)
        {
            MfaUser user;
            try
            {
                user = MfaUser.Parse(userKey);
            }
            catch (MfaException)
            {
                log.LogWarning("identity backfill: a stored user key of application {Application} is not an email, phone or email:phone; its rows stay keyed by it", app);
                continue;
            }

            await db.InTransactionAsync(async (c, tx) =>
            {
                var target = await LinkAsync(c, tx, app, mode, user);
                await MergeAsync(c, tx, app, mode, userKey, target);
                return target;
            }, ct);
            moved++;
        }

        await db.InTransactionAsync((c, tx) => c.ExecuteAsync(
            "UPDATE maintenance SET done_at = @now WHERE name = @name", new { now = time.GetUtcNow().ToUnixTimeMilliseconds(), name = BackfillTask }, tx), ct);
        if (moved > 0)
        {
            log.LogInformation("identity backfill: {Count} users moved onto identities", moved);
        }
    }

    /// <summary>
    /// Moves everything keyed by <paramref name="from"/> (an identity or a contact string) onto identity
    /// <paramref name="to"/>. Lockout counters keep the larger of the two; a WebAuthn handle the target lacks is kept
    /// (each key remembers its own handle); the merged identity's contacts and user_id become the target's.
    /// </summary>
    private static async Task MergeAsync(DbConnection c, DbTransaction tx, string app, string mode, string from, string to)
    {
        if (from == to)
        {
            return;
        }

        var key = new { app, mode, from, to };
        const string Where = "application_id = @app AND mode = @mode AND user_key = @from";
        foreach (var table in s_ownedTables)
        {
            await c.ExecuteAsync($"UPDATE {table} SET user_key = @to WHERE {Where}", key, tx);
        }

        await c.ExecuteAsync(
            $"""
            INSERT INTO webauthn_users (application_id, mode, user_key, handle) SELECT application_id, mode, @to, handle FROM webauthn_users WHERE {Where}
            ON CONFLICT (application_id, mode, user_key) DO NOTHING
            """, key, tx);
        await c.ExecuteAsync($"DELETE FROM webauthn_users WHERE {Where}", key, tx);
        await c.ExecuteAsync(
            $"""
            INSERT INTO lockouts (application_id, mode, user_key, failures, locks, locked_until, hard_locked)
            SELECT application_id, mode, @to, failures, locks, locked_until, hard_locked FROM lockouts WHERE {Where}
            ON CONFLICT (application_id, mode, user_key) DO UPDATE SET
                failures = {Larger("lockouts", "failures")}, locks = {Larger("lockouts", "locks")},
                locked_until = {Larger("lockouts", "locked_until")}, hard_locked = {Larger("lockouts", "hard_locked")}
            """, key, tx);
        await c.ExecuteAsync($"DELETE FROM lockouts WHERE {Where}", key, tx);
        await c.ExecuteAsync(
            $"""
            INSERT INTO lockout_sources (application_id, mode, user_key, source, failures, blocks, blocked_until, last_failure_at, last_success_at)
            SELECT application_id, mode, @to, source, failures, blocks, blocked_until, last_failure_at, last_success_at FROM lockout_sources WHERE {Where}
            ON CONFLICT (application_id, mode, user_key, source) DO UPDATE SET
                failures = {Larger("lockout_sources", "failures")}, blocks = {Larger("lockout_sources", "blocks")},
                blocked_until = {Larger("lockout_sources", "blocked_until")}, last_failure_at = {Larger("lockout_sources", "last_failure_at")},
                last_success_at = {Larger("lockout_sources", "last_success_at")}
            """, key, tx);
        await c.ExecuteAsync($"DELETE FROM lockout_sources WHERE {Where}", key, tx);

        if (from.StartsWith(Prefix, StringComparison.Ordinal))
        {
            await c.ExecuteAsync("UPDATE identity_contacts SET identity_id = @to WHERE identity_id = @from", key, tx);
            await c.ExecuteAsync(
                "UPDATE identities SET user_id = (SELECT f.user_id FROM identities f WHERE f.id = @from) WHERE id = @to AND user_id IS NULL", key, tx);
            await c.ExecuteAsync("DELETE FROM identities WHERE id = @from", key, tx);
        }
    }

    /// <summary>The larger of the stored and the incoming value in an upsert (both dialects).</summary>
    private static string Larger(string table, string column) =>
        $"CASE WHEN excluded.{column} > {table}.{column} THEN excluded.{column} ELSE {table}.{column} END";

    private static List<(string Kind, string Value)> Contacts(MfaUser user)
    {
        var contacts = new List<(string, string)>(3);
        if (user.Email is not null)
        {
            contacts.Add((Email, user.Email));
        }

        if (user.Phone is not null)
        {
            contacts.Add((Phone, user.Phone));
        }

        if (user.UserId is not null)
        {
            contacts.Add((UserIdKind, user.UserId));
        }

        return contacts;
    }

    /// <summary>
    /// The identities of the request's contacts: one primary-key lookup per contact (a UNION ALL, so that each branch
    /// uses the key; an OR across kinds would make SQLite scan every contact of the application).
    /// </summary>
    private static async Task<List<ContactRow>> FindAsync(DbConnection c, DbTransaction? tx, string app, string mode, MfaUser user)
    {
        const string Select = """
            SELECT ic.kind, ic.value, ic.identity_id AS IdentityId, i.user_id AS UserId, i.created_at AS CreatedAt
            FROM identity_contacts ic JOIN identities i ON i.id = ic.identity_id
            WHERE ic.application_id = @app AND ic.mode = @mode AND ic.kind =
            """;
        var contacts = Contacts(user);
        if (contacts.Count == 0)
        {
            return [];
        }

        var parameters = new DynamicParameters(new { app, mode });
        var branches = new List<string>(contacts.Count);
        for (var i = 0; i < contacts.Count; i++)
        {
            branches.Add($"{Select} '{contacts[i].Kind}' AND ic.value = @v{i}");
            parameters.Add($"v{i}", contacts[i].Value);
        }

        return (await c.QueryAsync<ContactRow>(string.Join(" UNION ALL ", branches), parameters, tx)).ToList();
    }

    private static MfaException Conflict(string param) => new(ErrorCode.IdentityConflict, param == "user_id"
        ? "this contact belongs to an end user with another user_id; nothing was changed"
        : "these contacts belong to end users with different user_ids; nothing was changed", param);

    private sealed class ContactRow
    {
        public string Kind { get; init; } = "";

        public string Value { get; init; } = "";

        public string IdentityId { get; init; } = "";

        public string? UserId { get; init; }

        public long CreatedAt { get; init; }
    }
}
