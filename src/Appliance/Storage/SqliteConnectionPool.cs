using System.Collections.Concurrent;
using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using Microsoft.Data.Sqlite;

namespace DevRift.Hsm.Appliance.Storage;

/// <summary>
/// SQLite connections that stay open between requests, each keeping the statements it has prepared. Microsoft.Data.Sqlite
/// keeps a prepared statement only as long as its own command object lives, and finalises it when the connection is
/// closed (dotnet/efcore#14044), while Dapper makes a new command for every call: every statement of every request was
/// parsed and planned again, which was most of the CPU SQLite spent on a read. A connection handed out here is a
/// <see cref="DbConnection"/> like any other; the commands made on it look their SQL text up in the connection's cache
/// and run the statement prepared the first time. At most <see cref="MaxIdle"/> connections are kept, each with at most
/// <see cref="MaxStatements"/> statements (a text seen for the first time when the cache is full replaces all of them).
/// A connection that comes back inside a transaction, or no longer open, is closed rather than kept.
/// </summary>
internal sealed class SqliteConnectionPool(string connectionString, Func<SqliteConnection, CancellationToken, Task> configure) : IAsyncDisposable
{
    public const int MaxIdle = 32;
    public const int MaxStatements = 128;

    private readonly ConcurrentQueue<Physical> _idle = new();
    private int _idleCount;
    private volatile bool _disposed;

    public async Task<DbConnection> OpenAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        while (_idle.TryDequeue(out var idle))
        {
            Interlocked.Decrement(ref _idleCount);
            if (idle.Connection.State == ConnectionState.Open)
            {
                return new PooledSqliteConnection(idle, this);
            }

            idle.Dispose();
        }

        var connection = new SqliteConnection(connectionString);
        try
        {
            await connection.OpenAsync(cancellationToken);
            await configure(connection, cancellationToken);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }

        return new PooledSqliteConnection(new Physical(connection), this);
    }

    public ValueTask DisposeAsync()
    {
        _disposed = true;
        while (_idle.TryDequeue(out var idle))
        {
            idle.Dispose();
        }

        return ValueTask.CompletedTask;
    }

    private void Return(Physical physical)
    {
        // Inside a transaction still (the caller did not end it): closing rolls it back; keeping it would hand the
        // next caller somebody else's open transaction.
        var reusable = !_disposed && physical.Connection.State == ConnectionState.Open && physical.Connection.Handle is { } handle
            && SQLitePCL.raw.sqlite3_get_autocommit(handle) != 0;
        if (reusable && Interlocked.Increment(ref _idleCount) <= MaxIdle)
        {
            _idle.Enqueue(physical);
            if (_disposed && _idle.TryDequeue(out var late))
            {
                late.Dispose();
            }

            return;
        }

        if (reusable)
        {
            Interlocked.Decrement(ref _idleCount);
        }

        physical.Dispose();
    }

    /// <summary>One open SQLite connection and the commands prepared on it, by SQL text.</summary>
    private sealed class Physical(SqliteConnection connection) : IDisposable
    {
        private readonly Dictionary<string, SqliteCommand> _statements = new(StringComparer.Ordinal);

        public SqliteConnection Connection { get; } = connection;

        /// <summary>The command prepared for <paramref name="sql"/>, taken out of the cache while it is in use.</summary>
        public SqliteCommand Rent(string sql)
        {
            lock (_statements)
            {
                if (_statements.Remove(sql, out var cached))
                {
                    return cached;
                }
            }

            var command = Connection.CreateCommand();
            command.CommandText = sql;
            return command;
        }

        public void Return(SqliteCommand command)
        {
            command.Parameters.Clear();
            command.Transaction = null;
            lock (_statements)
            {
                if (_statements.Count >= MaxStatements && !_statements.ContainsKey(command.CommandText))
                {
                    foreach (var old in _statements.Values)
                    {
                        old.Dispose();
                    }

                    _statements.Clear();
                }

                if (_statements.TryAdd(command.CommandText, command))
                {
                    return;
                }
            }

            command.Dispose(); // the same text was in use twice at once: one copy is enough
        }

        public void Dispose()
        {
            lock (_statements)
            {
                _statements.Clear();
            }

            Connection.Dispose(); // finalises every statement prepared on it
        }
    }

    /// <summary>A lease of a <see cref="Physical"/> connection; disposing it gives the connection back to the pool.</summary>
    private sealed class PooledSqliteConnection(Physical physical, SqliteConnectionPool pool) : DbConnection
    {
        private readonly Physical _owner = physical;
        private Physical? _physical = physical;

        private Physical Leased => _physical ?? throw new InvalidOperationException("the connection was closed");

        internal SqliteConnection Inner => Leased.Connection;

        [AllowNull]
        public override string ConnectionString
        {
            get => _owner.Connection.ConnectionString;
            set => throw new NotSupportedException("a pooled connection's connection string is fixed");
        }

        public override string Database => _owner.Connection.Database;

        public override string DataSource => _owner.Connection.DataSource;

        public override string ServerVersion => _owner.Connection.ServerVersion;

        public override ConnectionState State => _physical?.Connection.State ?? ConnectionState.Closed;

        public override void ChangeDatabase(string databaseName) => Inner.ChangeDatabase(databaseName);

        public override void Open()
        {
            if (_physical is null)
            {
                throw new InvalidOperationException("a pooled connection cannot be opened again once closed");
            }
        }

        public override void Close()
        {
            var leased = Interlocked.Exchange(ref _physical, null);
            if (leased is not null)
            {
                pool.Return(leased);
            }
        }

        protected override DbTransaction BeginDbTransaction(IsolationLevel isolationLevel) => Inner.BeginTransaction(isolationLevel);

        protected override DbCommand CreateDbCommand() => new CachedSqliteCommand(this);

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                Close();
            }

            base.Dispose(disposing);
        }

        public override ValueTask DisposeAsync()
        {
            Close();
            return base.DisposeAsync();
        }

        internal SqliteCommand Rent(string sql) => Leased.Rent(sql);

        internal void Return(SqliteCommand command)
        {
            // Returned to the connection it was prepared on, even if this lease has ended meanwhile.
            if (ReferenceEquals(command.Connection, _owner.Connection))
            {
                _owner.Return(command);
            }
            else
            {
                command.Dispose();
            }
        }
    }

    /// <summary>
    /// A command whose statement comes from its connection's cache: parameters are collected here and bound to the
    /// cached statement when it runs. A reader keeps the statement until this command is disposed.
    /// </summary>
    private sealed class CachedSqliteCommand(PooledSqliteConnection connection) : DbCommand
    {
        private readonly PooledSqliteConnection _owner = connection;
        private readonly ParameterList _parameters = new();
        private DbConnection? _connection = connection;
        private SqliteCommand? _rented;
        private string _commandText = "";

        [AllowNull]
        public override string CommandText
        {
            get => _commandText;
            set
            {
                ReleaseRented();
                _commandText = value ?? "";
            }
        }

        /// <summary>The connection string's <c>Default Timeout</c>, as on any command of Microsoft.Data.Sqlite's.</summary>
        public override int CommandTimeout { get; set; } = connection.Inner.DefaultTimeout;

        public override CommandType CommandType
        {
            get => CommandType.Text;
            set
            {
                if (value != CommandType.Text)
                {
                    throw new NotSupportedException("SQLite runs text commands only");
                }
            }
        }

        public override bool DesignTimeVisible { get; set; }

        public override UpdateRowSource UpdatedRowSource { get; set; }

        protected override DbConnection? DbConnection
        {
            get => _connection;
            set => _connection = value;
        }

        protected override DbParameterCollection DbParameterCollection => _parameters;

        protected override DbTransaction? DbTransaction { get; set; }

        /// <summary>
        /// Does nothing, as Microsoft.Data.Sqlite's own does; forwarding it could reach a statement that has already
        /// gone back to the cache and on to another lease.
        /// </summary>
        public override void Cancel()
        {
        }

        public override int ExecuteNonQuery()
        {
            var command = Bind();
            try
            {
                var rows = command.ExecuteNonQuery();
                ReleaseRented();
                return rows;
            }
            catch
            {
                DiscardRented();
                throw;
            }
        }

        public override object? ExecuteScalar()
        {
            var command = Bind();
            try
            {
                var value = command.ExecuteScalar();
                ReleaseRented();
                return value;
            }
            catch
            {
                DiscardRented();
                throw;
            }
        }

        public override void Prepare()
        {
        }

        protected override DbParameter CreateDbParameter() => new SqliteParameter();

        protected override DbDataReader ExecuteDbDataReader(CommandBehavior behavior)
        {
            var command = Bind();
            try
            {
                return command.ExecuteReader(behavior);
            }
            catch
            {
                DiscardRented();
                throw;
            }
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                ReleaseRented();
            }

            base.Dispose(disposing);
        }

        public override ValueTask DisposeAsync()
        {
            ReleaseRented();
            return base.DisposeAsync();
        }

        private SqliteCommand Bind()
        {
            if (!ReferenceEquals(_connection, _owner))
            {
                throw new InvalidOperationException("a pooled SQLite command runs on the connection that made it");
            }

            ReleaseRented();
            var command = _owner.Rent(_commandText);
            _rented = command;
            command.Transaction = DbTransaction as SqliteTransaction;
            command.CommandTimeout = CommandTimeout;
            foreach (SqliteParameter parameter in _parameters)
            {
                command.Parameters.Add(parameter);
            }

            return command;
        }

        private void ReleaseRented()
        {
            var rented = _rented;
            _rented = null;
            if (rented is not null)
            {
                _owner.Return(rented);
            }
        }

        /// <summary>After a failed execution the statement's state is unknown: it is not kept.</summary>
        private void DiscardRented()
        {
            var rented = _rented;
            _rented = null;
            rented?.Dispose();
        }

        private sealed class ParameterList : SqliteParameterCollection;
    }
}
