using DevRift.Hsm.Appliance.Applications;
using DevRift.Hsm.Appliance.Storage;
using DevRift.Hsm.Appliance.Users;
using DevRift.Hsm.Crypto;

namespace DevRift.Hsm.Appliance;

/// <summary>
/// What <c>init</c> made, with the secrets that exist only in this result. <paramref name="RecoveryToken"/> is an
/// operator token minted on an existing install at the operator's request (the way back in when every token is lost).
/// </summary>
public sealed record InitResult(IReadOnlyList<string> KeysCreated, Application? DemoApplication, string? DemoTestKey, string? OperatorToken,
    CreatedOperatorToken? RecoveryToken = null);

/// <summary>
/// First-run set-up, idempotent: the HSM key hierarchy, the database schema, and on an empty database a demo
/// application (enterprise plan) with a test key and an operator token, returned once.
/// </summary>
public sealed class ApplianceInitializer(HsmConnection hsm, Database db, ApplicationStore applications, ApiKeys keys, OperatorTokens operators,
    Identities identities, Microsoft.Extensions.Options.IOptions<StorageOptions> storage)
{
    /// <summary>
    /// Creates what is missing. A token that already holds every key meeting a database <c>init</c> never set up is
    /// refused unless <paramref name="newDatabase"/>: that is most often a mistyped database path, and going on would
    /// start a second, empty appliance (with its own demo application and operator token) on the same keys.
    /// </summary>
    /// <remarks>
    /// With <paramref name="newOperatorToken"/> on an install that already has its demo application or tokens, a new
    /// operator token is minted and returned in <see cref="InitResult.RecoveryToken"/>. It is reached only after the
    /// HSM session has logged in with the user PIN (the keys are read first), so only someone who holds the PIN can
    /// mint one; the caller audits it.
    /// </remarks>
    public async Task<InitResult> InitializeAsync(bool createDemo, bool newDatabase = false, CancellationToken ct = default) =>
        await InitializeAsync(createDemo, newDatabase, newOperatorToken: false, ct);

    public async Task<InitResult> InitializeAsync(bool createDemo, bool newDatabase, bool newOperatorToken, CancellationToken ct = default)
    {
        CheckConnectionString();
        // Reached before anything is created, so an unreachable server is one line naming the driver's reason.
        await db.WithConnectionAsync(_ => Task.FromResult(true), ct);
        var freshDatabase = !await JournalExistsAsync(ct);
        if (freshDatabase && !newDatabase && hsm.KeyVersions().All(v => v.Value.Count > 0))
        {
            throw new StorageConfigurationException(
                $"token '{hsm.TokenLabel}' already holds this appliance's keys but {DatabaseName()} was never initialised: correct Data:Directory or Storage:ConnectionString, or pass --Init:NewDatabase=true to start an empty appliance on these keys");
        }

        var created = hsm.InitializeKeys();
        db.Migrate();
        await identities.BackfillAsync(ct);
        if (!createDemo || (await applications.ListAsync(ct)).Count > 0 || await operators.AnyAsync(ct))
        {
            var recovery = newOperatorToken ? await operators.CreateTokenAsync("recovery (init)", ct) : null;
            return new InitResult(created, null, null, null, recovery);
        }

        var demo = await applications.CreateAsync("Demo", Plans.Enterprise, ct);
        // Relying party localhost; with no origins listed the appliance's own listening URLs are allowed.
        demo = await applications.UpdateSettingsAsync(demo.Id, new System.Text.Json.Nodes.JsonObject { ["webauthn_rp_id"] = "localhost" }, ct);
        var key = await keys.CreateAsync(demo.Id, Modes.Test, ct);
        var token = await operators.CreateAsync("init", ct);
        return new InitResult(created, demo, key.Secret, token);
    }

    /// <summary>Checks at start that the HSM has its keys and the schema is current; throws with one line if not.</summary>
    public void CheckReady()
    {
        var missing = hsm.KeyVersions().Where(v => v.Value.Count == 0).Select(v => KeyLabels.Label(v.Key, 1)).ToList();
        if (missing.Count > 0)
        {
            throw new HsmConfigurationException($"token '{hsm.TokenLabel}' lacks {string.Join(", ", missing)}; run 'init' first");
        }

        if (hsm.KeyProblems() is [var first, ..])
        {
            throw new HsmConfigurationException($"token '{hsm.TokenLabel}': {first}");
        }

        CheckInitialised();
        db.Migrate();
        identities.BackfillAsync().GetAwaiter().GetResult();
    }

    /// <summary>
    /// Refuses a database that <c>init</c> never set up, instead of creating it: a mistyped SQLite path would otherwise
    /// start a new, empty appliance beside the real one. SQLite: the file must exist; both: the migration journal must.
    /// </summary>
    private void CheckInitialised()
    {
        CheckConnectionString();
        if (db.Provider == StorageProvider.Sqlite
            && new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder(storage.Value.ConnectionString).DataSource is { Length: > 0 } file
            && file != ":memory:" && !File.Exists(file))
        {
            throw new StorageConfigurationException($"the database '{Path.GetFullPath(file)}' does not exist: run 'init' first, or correct Data:Directory or Storage:ConnectionString");
        }

        var journal = db.Provider == StorageProvider.Sqlite
            ? "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schemaversions' COLLATE NOCASE"
            : "SELECT COUNT(*) FROM information_schema.tables WHERE lower(table_name) = 'schemaversions' AND table_schema = current_schema()";
        var found = db.WithConnectionAsync(async c =>
        {
            await using var command = c.CreateCommand();
            command.CommandText = journal;
            var tables = Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
            if (db.Provider == StorageProvider.Sqlite)
            {
                // A read-only file (or Mode=ReadOnly) would serve until its first write: refuse it now.
                command.CommandText = "PRAGMA user_version";
                var version = Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
                command.CommandText = $"BEGIN IMMEDIATE; PRAGMA user_version = {version}; ROLLBACK;";
                await command.ExecuteNonQueryAsync();
            }

            return tables;
        }).GetAwaiter().GetResult();
        if (found == 0)
        {
            throw new StorageConfigurationException("the database has never been initialised: run 'init' first, or correct Storage:ConnectionString");
        }
    }

    private Task<bool> JournalExistsAsync(CancellationToken ct) => db.WithConnectionAsync(async c =>
    {
        await using var command = c.CreateCommand();
        command.CommandText = db.Provider == StorageProvider.Sqlite
            ? "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schemaversions' COLLATE NOCASE"
            : "SELECT COUNT(*) FROM information_schema.tables WHERE lower(table_name) = 'schemaversions' AND table_schema = current_schema()";
        return Convert.ToInt64(await command.ExecuteScalarAsync(ct), System.Globalization.CultureInfo.InvariantCulture) > 0;
    }, ct);

    private string DatabaseName() =>
        db.Provider == StorageProvider.Sqlite
            && new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder(storage.Value.ConnectionString).DataSource is { Length: > 0 } file
            ? $"the database '{Path.GetFullPath(file)}'"
            : "the database";

    /// <summary>A connection string the driver cannot read is one line naming the setting (the driver's message names the keyword).</summary>
    private void CheckConnectionString()
    {
        try
        {
            using var connection = db.Provider == StorageProvider.Sqlite
                ? (System.Data.Common.DbConnection)new Microsoft.Data.Sqlite.SqliteConnection(storage.Value.ConnectionString)
                : new Npgsql.NpgsqlConnection(storage.Value.ConnectionString);
        }
        catch (ArgumentException e)
        {
            throw new StorageConfigurationException($"Storage:ConnectionString cannot be read: {e.Message.ReplaceLineEndings(" ")}", e);
        }
    }
}
