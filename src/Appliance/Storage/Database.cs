using System.Data;
using System.Data.Common;
using System.Reflection;
using DbUp;
using DbUp.Engine;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using Npgsql;

namespace DevRift.Hsm.Appliance.Storage;

/// <summary>
/// Connections, transactions and migrations for SQLite and PostgreSQL. The same SQL serves both, apart from
/// the few places the <see cref="Dialect"/> names.
/// </summary>
public sealed class Database : IAsyncDisposable
{
    private readonly string _connectionString;
    private readonly SqliteConnectionPool? _sqlitePool;
    private readonly SqliteGroupCommit? _groupCommit;

    public Database(IOptions<StorageOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var o = options.Value;
        Provider = ParseProvider(o);
        _connectionString = Provider == StorageProvider.Sqlite ? SqliteConnectionString(o.ConnectionString) : PostgresConnectionString(o.ConnectionString);
        Dialect = new Dialect(Provider);
        if (Provider == StorageProvider.Sqlite)
        {
            _sqlitePool = new SqliteConnectionPool(_connectionString, ConfigureSqliteAsync);
        }

        if (Provider == StorageProvider.Sqlite && o.GroupCommit)
        {
            _groupCommit = new SqliteGroupCommit(OpenAsync);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_groupCommit is not null)
        {
            await _groupCommit.DisposeAsync();
        }

        if (_sqlitePool is not null)
        {
            await _sqlitePool.DisposeAsync();
        }
    }

    public StorageProvider Provider { get; }

    public Dialect Dialect { get; }

    /// <summary>
    /// An open connection; disposing it gives it back. SQLite's come from <see cref="SqliteConnectionPool"/>, open and
    /// with their prepared statements; PostgreSQL's from Npgsql's pool.
    /// </summary>
    public async Task<DbConnection> OpenAsync(CancellationToken cancellationToken = default)
    {
        DbConnection? connection = null;
        try
        {
            if (_sqlitePool is not null)
            {
                return await _sqlitePool.OpenAsync(cancellationToken);
            }

            connection = new NpgsqlConnection(_connectionString);
            await connection.OpenAsync(cancellationToken);
            return connection;
        }
        catch (Exception e) when (e is DbException or InvalidOperationException or TimeoutException)
        {
            // Failing to open is never the query's fault: a server that is down, refusing connections, or a full pool.
            if (connection is not null)
            {
                await connection.DisposeAsync();
            }

            throw new StorageUnavailableException($"the database cannot be reached ({e.GetType().Name})", e);
        }
    }

    /// <summary>
    /// Once per native connection, when it is opened. (No <c>mmap_size</c>: with WAL, every read transaction after
    /// another connection's write unmaps and remaps the file, and the TLB shootdowns cost more than the reads saved.)
    /// </summary>
    private static async Task ConfigureSqliteAsync(SqliteConnection connection, CancellationToken cancellationToken)
    {
        await using var pragma = connection.CreateCommand();
        pragma.CommandText = "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000;";
        await pragma.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Runs <paramref name="work"/> in one transaction (SQLite: <c>BEGIN IMMEDIATE</c>, so writers queue instead of
    /// failing on upgrade; with <see cref="StorageOptions.GroupCommit"/>, in a savepoint of the writer's next batch).
    /// It returns once the transaction is durable. Database errors become <see cref="StorageUnavailableException"/>.
    /// </summary>
    public async Task<T> InTransactionAsync<T>(Func<DbConnection, DbTransaction, Task<T>> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        if (_groupCommit is not null)
        {
            return await _groupCommit.RunAsync(work, cancellationToken);
        }

        await using var connection = await OpenAsync(cancellationToken);
        try
        {
            await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken);
            var result = await work(connection, transaction);
            await transaction.CommitAsync(cancellationToken);
            return result;
        }
        catch (Exception e) when (IsUnavailable(e, connection))
        {
            throw Unavailable(e);
        }
    }

    /// <summary>SQLSTATE or SQLite error code only: driver messages can quote the data of the failing row.</summary>
    internal static StorageUnavailableException Unavailable(Exception e) =>
        new($"a database operation failed ({e.GetType().Name} {(e as DbException)?.SqlState ?? (e as SqliteException)?.SqliteErrorCode.ToString(System.Globalization.CultureInfo.InvariantCulture)})", e);

    /// <summary>
    /// The one place that decides which failures of a statement mean "the database cannot serve now" (answered
    /// 503 <c>storage_unavailable</c>, retried by the client) rather than a bug. Unavailable: lost or refused
    /// connections, I/O errors, timeouts, an administrator's shutdown, a read-only or full database, SQLite busy or
    /// locked, and the transient conflicts of concurrent writers (serialisation failure, deadlock, a unique key won
    /// by a racing request). Everything else (syntax, unknown table or column, type mismatch, other constraint
    /// violations) propagates unchanged, so that a programming error surfaces as one instead of as an outage.
    /// </summary>
    internal static bool IsUnavailable(Exception e, DbConnection? connection = null) => e switch
    {
        PostgresException p => IsUnavailableSqlState(p.SqlState),
        NpgsqlException => true, // not from the server: the connection broke, a read timed out, the pool ran dry
        SqliteException s => IsUnavailableSqlite(s.SqliteErrorCode & 0xFF, s.SqliteExtendedErrorCode),
        TimeoutException => true,
        InvalidOperationException => connection is not null && connection.State != ConnectionState.Open,
        _ => false,
    };

    private static bool IsUnavailableSqlState(string state) =>
        state.StartsWith("08", StringComparison.Ordinal) // connection exception
        || state.StartsWith("53", StringComparison.Ordinal) // insufficient resources: disk full, too many connections
        || state.StartsWith("57", StringComparison.Ordinal) // operator intervention: admin/crash shutdown, cannot connect now, canceled
        || state.StartsWith("58", StringComparison.Ordinal) // system error: I/O
        || state.StartsWith("28", StringComparison.Ordinal) // credentials no longer accepted
        || state is "3D000" // the database is gone
            or "55000" // database not accepting connections
            or "55P03" // lock not available
            or "25006" // read-only transaction: a standby after failover
            or "40001" or "40P01" // serialisation failure, deadlock
            or "23505" or "23P01"; // unique or exclusion conflict with a concurrent writer

    private static bool IsUnavailableSqlite(int primary, int extended) => primary switch
    {
        5 or 6 => true, // SQLITE_BUSY, SQLITE_LOCKED
        7 or 8 or 10 or 11 or 13 or 14 or 15 or 26 => true, // NOMEM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL, NOTADB
        19 => extended is 1555 or 2067, // SQLITE_CONSTRAINT_PRIMARYKEY / _UNIQUE: a concurrent writer won
        _ => false,
    };

    /// <summary>Runs <paramref name="work"/> on an open connection outside any explicit transaction.</summary>
    public async Task<T> WithConnectionAsync<T>(Func<DbConnection, Task<T>> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        await using var connection = await OpenAsync(cancellationToken);
        try
        {
            return await work(connection);
        }
        catch (Exception e) when (IsUnavailable(e, connection))
        {
            throw Unavailable(e);
        }
    }

    /// <summary>True when a trivial query succeeds now.</summary>
    public async Task<bool> ProbeAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            return await WithConnectionAsync(async c =>
            {
                await using var command = c.CreateCommand();
                command.CommandText = "SELECT 1";
                return Convert.ToInt32(await command.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture) == 1;
            }, cancellationToken);
        }
        catch (StorageUnavailableException)
        {
            return false;
        }
    }

    /// <summary>Applies the versioned migrations that have not run yet (DbUp journal table <c>schemaversions</c>).</summary>
    public void Migrate()
    {
        if (Provider == StorageProvider.Sqlite)
        {
            using var connection = new SqliteConnection(_connectionString);
            connection.Open();
            using var wal = connection.CreateCommand();
            wal.CommandText = "PRAGMA journal_mode = WAL;";
            wal.ExecuteNonQuery();
        }

        var builder = Provider == StorageProvider.Sqlite
            ? DeployChanges.To.SqliteDatabase(_connectionString)
            : DeployChanges.To.PostgresqlDatabase(_connectionString);
        var upgrader = builder
            .WithScriptsEmbeddedInAssembly(Assembly.GetExecutingAssembly(), name => name.Contains(".Storage.Migrations.", StringComparison.Ordinal))
            .WithVariable("bytes", Provider == StorageProvider.Sqlite ? "BLOB" : "BYTEA")
            .WithVariable("serial", Provider == StorageProvider.Sqlite ? "INTEGER PRIMARY KEY AUTOINCREMENT" : "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
            .WithTransactionPerScript()
            .LogToNowhere()
            .Build();
        DatabaseUpgradeResult result;
        try
        {
            result = upgrader.PerformUpgrade();
        }
        catch (Exception e) when (e is DbException or InvalidOperationException)
        {
            throw new StorageConfigurationException($"the database cannot be reached or migrated: {e.Message}", e);
        }

        if (!result.Successful)
        {
            throw new StorageConfigurationException(
                $"database migration {result.ErrorScript?.Name ?? "?"} failed: {result.Error?.Message}", result.Error);
        }
    }

    private static StorageProvider ParseProvider(StorageOptions o)
    {
        if (!string.IsNullOrEmpty(o.Provider))
        {
            return o.Provider.ToLowerInvariant() switch
            {
                "sqlite" => StorageProvider.Sqlite,
                "postgres" or "postgresql" or "npgsql" => StorageProvider.Postgres,
                _ => throw new StorageConfigurationException($"Storage:Provider '{o.Provider}' is not sqlite or postgres"),
            };
        }

        if (string.IsNullOrWhiteSpace(o.ConnectionString))
        {
            throw new StorageConfigurationException("Storage:ConnectionString is empty");
        }

        return o.ConnectionString.Contains("Host=", StringComparison.OrdinalIgnoreCase)
            || o.ConnectionString.Contains("Server=", StringComparison.OrdinalIgnoreCase)
            ? StorageProvider.Postgres
            : StorageProvider.Sqlite;
    }

    /// <summary>
    /// Npgsql prepares on the server the statements a connection runs repeatedly (they are a fixed set here), so a
    /// request's statements are parsed and planned once per pooled connection instead of on every call. An operator's
    /// own <c>Max Auto Prepare</c> (0 turns it off, for a pooler in transaction mode) is kept.
    /// </summary>
    internal static string PostgresConnectionString(string raw)
    {
        var builder = new NpgsqlConnectionStringBuilder(raw);

        // Npgsql's builder answers ContainsKey for every keyword it knows, so ask the operator's own string.
        var given = new DbConnectionStringBuilder { ConnectionString = raw };
        bool OperatorChose(string keyword) =>
            given.Keys.Cast<string>().Any(k => string.Equals(k.Replace(" ", string.Empty, StringComparison.Ordinal), keyword, StringComparison.OrdinalIgnoreCase));
        if (!OperatorChose("MaxAutoPrepare"))
        {
            builder.MaxAutoPrepare = 64;
            builder.AutoPrepareMinUsages = 2;
        }

        // The appliance leaves no session state on a connection it gives back (no SET outside a transaction, no
        // LISTEN, temporary table, cursor or session advisory lock; an open transaction is rolled back by Npgsql
        // either way). The reset Npgsql otherwise sends with the next lease's first statement (SET SESSION
        // AUTHORIZATION DEFAULT; RESET ALL; CLOSE ALL; UNLISTEN *; pg_advisory_unlock_all(); DISCARD SEQUENCES;
        // DISCARD TEMP) is then pure server work on every lease: a request leases five or six times.
        if (!OperatorChose("NoResetOnClose"))
        {
            builder.NoResetOnClose = true;
        }

        return builder.ConnectionString;
    }

    private static string SqliteConnectionString(string raw)
    {
        var builder = new SqliteConnectionStringBuilder(raw) { DefaultTimeout = 30, Pooling = true };
        if (builder.DataSource is { Length: > 0 } path && path != ":memory:")
        {
            var directory = Path.GetDirectoryName(Path.GetFullPath(path));
            if (directory is not null)
            {
                Directory.CreateDirectory(directory);
            }
        }

        return builder.ToString();
    }
}

/// <summary>The few SQL differences between SQLite and PostgreSQL.</summary>
public sealed class Dialect(StorageProvider provider)
{
    /// <summary>Row lock for a SELECT inside a transaction (SQLite's writer lock already serialises).</summary>
    public string ForUpdate => provider == StorageProvider.Postgres ? " FOR UPDATE" : "";

    /// <summary>Claim rows that no other node holds (PostgreSQL); SQLite has one writer at a time.</summary>
    public string ForUpdateSkipLocked => provider == StorageProvider.Postgres ? " FOR UPDATE SKIP LOCKED" : "";
}
