using System.Data.Common;
using Dapper;
using DevRift.Hsm.Appliance.Storage;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace DevRift.Hsm.Api.Tests.Storage;

/// <summary>
/// SQLite connections kept open with their prepared statements: a statement is parsed once per connection, not once
/// per call, and reusing it never carries one caller's state (parameters, transaction, a failed step) to the next.
/// </summary>
public sealed class SqliteConnectionPoolTests
{
    private static Database NewDatabase(out string path) => ScratchSqlite.NewDatabase("devrift-sqlite-pool", "id INTEGER PRIMARY KEY, who TEXT NOT NULL UNIQUE", groupCommit: false, out path);

    /// <summary>The native connection behind a lease (a transaction's connection is the SQLite one).</summary>
    private static sqlite3 Native(DbConnection c)
    {
        using var tx = c.BeginTransaction();
        var handle = ((SqliteConnection)tx.Connection!).Handle!;
        tx.Rollback();
        return handle;
    }

    /// <summary>The native connection of the pool's next lease, tracking from now on the statements prepared on it.</summary>
    private static Task<sqlite3> TrackedAsync(Database db) => db.WithConnectionAsync(c =>
    {
        var handle = Native(c);
        handle.enable_sqlite3_next_stmt(true);
        return Task.FromResult(handle);
    });

    /// <summary>The statements prepared on a native connection whose SQL is <paramref name="sql"/>.</summary>
    private static List<IntPtr> Statements(sqlite3 db, string sql)
    {
        var found = new List<IntPtr>();
        for (var stmt = raw.sqlite3_next_stmt(db, null); stmt is not null && !stmt.IsInvalid; stmt = raw.sqlite3_next_stmt(db, stmt))
        {
            if (raw.sqlite3_sql(stmt).utf8_to_string() == sql)
            {
                found.Add(stmt.DangerousGetHandle());
            }
        }

        return found;
    }

    [Fact]
    public async Task The_same_query_on_later_leases_runs_the_statement_prepared_the_first_time_with_each_call_s_own_parameters()
    {
        // Given two rows and a query with a parameter
        await using var db = NewDatabase(out _);
        var handle = await TrackedAsync(db);
        await db.WithConnectionAsync(c => c.ExecuteAsync("INSERT INTO t (id, who) VALUES (1, 'ann'), (2, 'bob')"));
        const string sql = "SELECT who FROM t WHERE id = @id";

        // When it runs on one lease, and then twice more on later leases with other values
        var first = await db.WithConnectionAsync(c => c.QuerySingleAsync<string>(sql, new { id = 1 }));
        var statements = Statements(handle, sql);
        var second = await db.WithConnectionAsync(c => c.QuerySingleAsync<string>(sql, new { id = 2 }));
        var third = await db.WithConnectionAsync(c => c.QuerySingleOrDefaultAsync<string>(sql, new { id = 3 }));

        // Then each answer is its own call's, the later leases had the same native connection, and on it the query is
        // one statement, the one prepared by the first call
        Assert.Equal(("ann", "bob", (string?)null), (first, second, third));
        Assert.Single(statements);
        var again = await db.WithConnectionAsync(c => Task.FromResult(Native(c)));
        Assert.Same(handle, again);
        Assert.Equal(statements, Statements(handle, sql));
    }

    [Fact]
    public async Task A_statement_that_failed_is_not_kept_and_the_same_text_runs_again_afterwards()
    {
        // Given a row, and an insert that breaks NOT NULL and one that does not, through the same SQL text
        await using var db = NewDatabase(out _);
        const string insert = "INSERT INTO t (id, who) VALUES (@id, @who)";
        var handle = await TrackedAsync(db);
        await db.WithConnectionAsync(c => c.ExecuteAsync(insert, new { id = 1, who = "ann" }));
        Assert.Single(Statements(handle, insert));

        // When the first fails
        var e = await Assert.ThrowsAsync<SqliteException>(() => db.WithConnectionAsync(c => c.ExecuteAsync(insert, new { id = 2, who = (string?)null })));
        Assert.Equal(1299, e.SqliteExtendedErrorCode); // SQLITE_CONSTRAINT_NOTNULL

        // Then the failed statement was finalised, and the text prepares afresh and inserts
        Assert.Empty(Statements(handle, insert));
        Assert.Equal(1, await db.WithConnectionAsync(c => c.ExecuteAsync(insert, new { id = 3, who = "cyd" })));
        Assert.Equal(["ann", "cyd"], await db.WithConnectionAsync(async c => (await c.QueryAsync<string>("SELECT who FROM t ORDER BY id")).ToList()));
    }

    [Fact]
    public async Task A_connection_given_back_inside_its_transaction_is_closed_so_nobody_inherits_the_transaction_or_its_writes()
    {
        // Given a lease that writes in a transaction and is given back without committing or rolling back
        await using var db = NewDatabase(out var path);
        sqlite3? leaked = null;
        await db.WithConnectionAsync(async c =>
        {
            var tx = await c.BeginTransactionAsync();
            await c.ExecuteAsync("INSERT INTO t (id, who) VALUES (1, 'ghost')", transaction: tx);
            leaked = ((SqliteConnection)tx.Connection!).Handle;
            return 0; // tx is neither committed nor disposed
        });

        // When the next lease writes on its own
        var next = await db.WithConnectionAsync(async c =>
        {
            await c.ExecuteAsync("INSERT INTO t (id, who) VALUES (2, 'real')");
            return Native(c);
        });

        // Then it ran in autocommit mode, and only its write is in the database
        Assert.NotNull(leaked);
        Assert.NotEqual(0, raw.sqlite3_get_autocommit(next));
        await using var check = new SqliteConnection($"Data Source={path}");
        Assert.Equal(["real"], (await check.QueryAsync<string>("SELECT who FROM t")).ToList());
    }

    [Fact]
    public async Task More_distinct_statements_than_the_cache_holds_keep_at_most_its_bound_prepared_on_a_connection()
    {
        // Given one connection, and twice as many distinct SQL texts as a connection keeps
        await using var db = NewDatabase(out _);
        var handle = await TrackedAsync(db);

        // When each runs once
        for (var i = 0; i < SqliteConnectionPool.MaxStatements * 2; i++)
        {
            Assert.Equal(i, await db.WithConnectionAsync(c => c.ExecuteScalarAsync<long>($"SELECT {i}")));
        }

        // Then the connection holds no more prepared statements than the bound
        var count = 0;
        for (var stmt = raw.sqlite3_next_stmt(handle, null); stmt is not null && !stmt.IsInvalid; stmt = raw.sqlite3_next_stmt(handle, stmt))
        {
            count++;
        }

        Assert.InRange(count, 1, SqliteConnectionPool.MaxStatements);
    }

    [Fact]
    public async Task Disposing_the_database_closes_the_connections_it_kept_open()
    {
        // Given a database whose lease was given back (kept open in the pool)
        var db = NewDatabase(out var path);
        await db.WithConnectionAsync(c => c.ExecuteAsync("INSERT INTO t (id, who) VALUES (1, 'ann')"));

        // When it is disposed (and Microsoft.Data.Sqlite's own pool emptied)
        await db.DisposeAsync();
        SqliteConnection.ClearAllPools();

        // Then nothing holds the file: the last connection's close checkpointed the WAL into it and removed it
        Assert.False(File.Exists(path + "-wal"));
        var e = await Assert.ThrowsAsync<StorageUnavailableException>(() => db.OpenAsync());
        Assert.IsType<ObjectDisposedException>(e.InnerException);
    }
}
