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
public sealed class Database
{
    private readonly string _connectionString;

    public Database(IOptions<StorageOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var o = options.Value;
        Provider = ParseProvider(o);
        _connectionString = Provider == StorageProvider.Sqlite ? SqliteConnectionString(o.ConnectionString) : o.ConnectionString;
        Dialect = new Dialect(Provider);
    }

    public StorageProvider Provider { get; }

    public Dialect Dialect { get; }

    public async Task<DbConnection> OpenAsync(CancellationToken cancellationToken = default)
    {
        DbConnection connection = Provider == StorageProvider.Sqlite
            ? new SqliteConnection(_connectionString)
            : new NpgsqlConnection(_connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken);
            if (connection is SqliteConnection sqlite)
            {
                await using var pragma = sqlite.CreateCommand();
                pragma.CommandText = "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000;";
                await pragma.ExecuteNonQueryAsync(cancellationToken);
            }

            return connection;
        }
        catch (Exception e) when (e is DbException or InvalidOperationException or TimeoutException)
        {
            await connection.DisposeAsync();
            throw new StorageUnavailableException($"the database cannot be reached ({e.GetType().Name})", e);
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> in one transaction (SQLite: <c>BEGIN IMMEDIATE</c>, so writers queue instead of
    /// failing on upgrade). Database errors become <see cref="StorageUnavailableException"/>.
    /// </summary>
    public async Task<T> InTransactionAsync<T>(Func<DbConnection, DbTransaction, Task<T>> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        await using var connection = await OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken);
        try
        {
            var result = await work(connection, transaction);
            await transaction.CommitAsync(cancellationToken);
            return result;
        }
        catch (DbException e)
        {
            throw Unavailable(e);
        }
    }

    /// <summary>SQLSTATE or SQLite error code only: driver messages can quote the data of the failing row.</summary>
    internal static StorageUnavailableException Unavailable(DbException e) =>
        new($"a database operation failed ({e.GetType().Name} {e.SqlState ?? (e as SqliteException)?.SqliteErrorCode.ToString(System.Globalization.CultureInfo.InvariantCulture)})", e);

    /// <summary>Runs <paramref name="work"/> on an open connection outside any explicit transaction.</summary>
    public async Task<T> WithConnectionAsync<T>(Func<DbConnection, Task<T>> work, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(work);
        await using var connection = await OpenAsync(cancellationToken);
        try
        {
            return await work(connection);
        }
        catch (DbException e)
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
