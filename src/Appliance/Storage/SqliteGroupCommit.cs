using System.Data.Common;
using System.Threading.Channels;

namespace DevRift.Hsm.Appliance.Storage;

/// <summary>
/// Group commit for SQLite: write transactions from concurrent requests go through one writer, which runs whatever is
/// waiting (up to <see cref="MaxBatch"/>) in one transaction, each in a savepoint of its own, and commits once. The
/// commit is the only fsync of the batch (<c>synchronous=FULL</c> stays); every caller is answered only after its
/// batch is durable, so a 2xx is never lost by a crash. One caller's failure rolls back its savepoint alone: the others
/// commit. A failed commit fails every caller of the batch, so nothing unacknowledged is taken for done.
/// SQLite has one writer at a time anyway: batching turns a queue of fsyncs into one per batch.
/// </summary>
internal sealed class SqliteGroupCommit : IAsyncDisposable
{
    /// <summary>Most transactions in one commit (bounds the latency a batch adds to its last member).</summary>
    public const int MaxBatch = 64;

    private static readonly AsyncLocal<bool> s_inWriter = new();

    private readonly Channel<Item> _queue = Channel.CreateUnbounded<Item>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Func<CancellationToken, Task<DbConnection>> _open;
    private readonly Task _loop;

    public SqliteGroupCommit(Func<CancellationToken, Task<DbConnection>> open)
    {
        _open = open;
        _loop = Task.Run(RunAsync);
    }

    /// <summary>Runs <paramref name="work"/> in the next batch; completes when that batch has committed.</summary>
    public Task<T> RunAsync<T>(Func<DbConnection, DbTransaction, Task<T>> work, CancellationToken cancellationToken)
    {
        if (s_inWriter.Value)
        {
            // A transaction opened from inside another would wait for the batch it is part of.
            throw new InvalidOperationException("a write transaction was started inside another one; pass its connection and transaction instead");
        }

        var item = new Item<T>(work, cancellationToken);
        return _queue.Writer.TryWrite(item) ? item.Task : throw new StorageUnavailableException("the database writer has stopped");
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _loop;
    }

    private async Task RunAsync()
    {
        s_inWriter.Value = true;
        var reader = _queue.Reader;
        var batch = new List<Item>(MaxBatch);
        while (await reader.WaitToReadAsync())
        {
            batch.Clear();
            while (batch.Count < MaxBatch && reader.TryRead(out var item))
            {
                if (item.CancellationToken.IsCancellationRequested)
                {
                    item.Fail(new OperationCanceledException(item.CancellationToken));
                }
                else
                {
                    batch.Add(item);
                }
            }

            if (batch.Count > 0)
            {
                await CommitAsync(batch);
            }
        }
    }

    private async Task CommitAsync(List<Item> batch)
    {
        var done = new List<Item>(batch.Count);
        var settled = 0; // members failed on their own or answered
        DbConnection? connection = null;
        try
        {
            connection = await _open(CancellationToken.None);
            await using var transaction = await connection.BeginTransactionAsync(System.Data.IsolationLevel.ReadCommitted);
            for (var i = 0; i < batch.Count; i++)
            {
                var item = batch[i];
                var savepoint = "m" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
                await transaction.SaveAsync(savepoint);
                try
                {
                    await item.RunAsync(connection, transaction);
                    await transaction.ReleaseAsync(savepoint);
                    done.Add(item);
                }
                catch (Exception e)
                {
                    // This member's own failure (a refusal, a conflict, a bug): undo its writes only. Where SQLite has
                    // already rolled the whole transaction back (I/O error, full disk), the savepoint is gone, this
                    // throws, and the batch fails as a whole below.
                    await transaction.RollbackAsync(savepoint);
                    await transaction.ReleaseAsync(savepoint);
                    item.Fail(Translate(e, connection));
                }

                settled = i + 1;
            }

            await transaction.CommitAsync();
        }
        catch (Exception e)
        {
            // The batch could not be committed: nobody's work is done, the members not yet settled fail with the cause.
            var failure = Translate(e, connection);
            foreach (var item in done)
            {
                item.Fail(failure);
            }

            for (var i = settled; i < batch.Count; i++)
            {
                if (!done.Contains(batch[i]))
                {
                    batch[i].Fail(failure);
                }
            }

            if (connection is not null)
            {
                await connection.DisposeAsync();
            }

            return;
        }

        await connection.DisposeAsync();
        foreach (var item in done)
        {
            item.Complete();
        }
    }

    private static Exception Translate(Exception e, DbConnection? connection) =>
        e is StorageUnavailableException or OperationCanceledException || !Database.IsUnavailable(e, connection) ? e : Database.Unavailable(e);

    private abstract class Item(CancellationToken cancellationToken)
    {
        public CancellationToken CancellationToken { get; } = cancellationToken;

        public abstract Task RunAsync(DbConnection connection, DbTransaction transaction);

        public abstract void Complete();

        public abstract void Fail(Exception e);
    }

    private sealed class Item<T>(Func<DbConnection, DbTransaction, Task<T>> work, CancellationToken cancellationToken) : Item(cancellationToken)
    {
        private readonly TaskCompletionSource<T> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private T _result = default!;

        public Task<T> Task => _completion.Task;

        public override async Task RunAsync(DbConnection connection, DbTransaction transaction) => _result = await work(connection, transaction);

        public override void Complete() => _completion.TrySetResult(_result);

        public override void Fail(Exception e) => _completion.TrySetException(e);
    }
}
