using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;

namespace DevRift.Hsm.Crypto;

/// <summary>
/// Dedicated threads that make the native calls, so that a caller can stop waiting for an HSM that does not answer.
/// The caller hands an operation over and waits at most <see cref="HsmOptions.OperationTimeout"/>; past it the caller
/// gets <see cref="HsmUnavailableException"/> while the thread stays in the call until the module returns (a native
/// call cannot be interrupted), after which the operation's own clean-up discards its session. While a timed-out call
/// is still outstanding, further operations fail at once, except one probe per reconnect interval that finds out whether
/// the module answers again: a stuck HSM costs callers the deadline once, not once per request. Dedicated threads
/// rather than the thread pool: a thread-pool caller waiting on another thread-pool item starves the pool under load.
/// Neither side of the hand-over spins: an HMAC on the module takes tens of microseconds, and the spin-then-yield waits
/// of <see cref="BlockingCollection{T}"/> and a default <see cref="ManualResetEventSlim"/> made about 100 sched_yield
/// calls per verify, CPU taken from the requests on a machine with few cores. Both sides sleep in the kernel instead.
/// </summary>
internal sealed class HsmWorkers : IDisposable
{
    private readonly Queue<WorkItem> _queue = new();
    private readonly object _gate = new();
    private bool _completed;
    private readonly Thread[] _threads;
    private readonly TimeSpan _timeout;
    private readonly TimeSpan _probeInterval;
    private readonly TimeProvider _time;
    private int _outstanding;
    private long _nextProbe;
    private int _probing;

    public HsmWorkers(int threads, TimeSpan timeout, TimeSpan probeInterval, TimeProvider time)
    {
        _timeout = timeout;
        _probeInterval = probeInterval;
        _time = time;
        _threads = new Thread[threads];
        for (var i = 0; i < threads; i++)
        {
            _threads[i] = new Thread(Run) { IsBackground = true, Name = $"devrift-hsm-{i}" };
            _threads[i].Start();
        }
    }

    /// <summary>Runs <paramref name="work"/> on an HSM thread and waits for it at most the deadline.</summary>
    /// <param name="work">The operation; it receives whether its caller gave up on it by the time it ends (then its session must be discarded).</param>
    /// <param name="name">The operation's name, for the message.</param>
    public T Run<T>(Func<Func<bool>, T> work, string name) => Run(work, name, _timeout);

    /// <summary>As <see cref="Run{T}(Func{Func{bool}, T}, string)"/> with a deadline of its own (key generation: an RSA-3072 pair takes seconds).</summary>
    public T Run<T>(Func<Func<bool>, T> work, string name, TimeSpan timeout)
    {
        var probe = false;
        if (Volatile.Read(ref _outstanding) > 0)
        {
            var now = _time.GetTimestamp();
            if (now < Interlocked.Read(ref _nextProbe) || Interlocked.CompareExchange(ref _probing, 1, 0) != 0)
            {
                throw new HsmUnavailableException($"HSM operation {name} refused: an earlier call has not returned after {_timeout.TotalSeconds:0.###} s");
            }

            probe = true;
            Interlocked.Exchange(ref _nextProbe, NextProbe(now));
        }

        if (t_onWorker)
        {
            // An operation inside an operation (an unwrap inside an HMAC): already on an HSM thread, already timed.
            return work(static () => false);
        }

        var item = new WorkItem<T>(work);
        var abandoned = false;
        try
        {
            Enqueue(item);
            if (!item.Done.Wait(timeout))
            {
                if (item.Abandon())
                {
                    abandoned = true;
                    Interlocked.Increment(ref _outstanding);
                    Interlocked.Exchange(ref _nextProbe, NextProbe(_time.GetTimestamp()));
                    throw new HsmUnavailableException($"HSM operation {name} did not answer within {timeout.TotalSeconds:0.###} s");
                }

                item.Done.Wait();
            }

            if (probe)
            {
                // The module answers again: the outstanding calls are its past, not its present.
                Interlocked.Exchange(ref _outstanding, 0);
            }

            return item.Result();
        }
        finally
        {
            if (probe)
            {
                Volatile.Write(ref _probing, 0);
            }

            if (!abandoned)
            {
                item.Dispose();
            }
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _completed = true;
            Monitor.PulseAll(_gate);
        }

        var started = _time.GetTimestamp();
        foreach (var thread in _threads)
        {
            // A thread stuck in a native call is a background thread: the process does not wait for it.
            var left = TimeSpan.FromSeconds(1) - _time.GetElapsedTime(started);
            thread.Join(left > TimeSpan.Zero ? left : TimeSpan.Zero);
        }
    }

    private void Enqueue(WorkItem item)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_completed, this);
            _queue.Enqueue(item);
            Monitor.Pulse(_gate);
        }
    }

    /// <summary>The next item, waiting without spinning; null once disposed and drained.</summary>
    private WorkItem? Take()
    {
        lock (_gate)
        {
            while (_queue.Count == 0)
            {
                if (_completed)
                {
                    return null;
                }

                Monitor.Wait(_gate);
            }

            return _queue.Dequeue();
        }
    }

    private long NextProbe(long now) => now + (long)(_probeInterval.TotalSeconds * _time.TimestampFrequency);

    private void Run()
    {
        t_onWorker = true;
        while (Take() is { } item)
        {
            if (item.Execute())
            {
                item.Dispose();
                // The caller had given up; its call has now returned.
                var left = Interlocked.Decrement(ref _outstanding);
                if (left < 0)
                {
                    Interlocked.CompareExchange(ref _outstanding, 0, left);
                }
            }
        }
    }

    [ThreadStatic]
    private static bool t_onWorker;

    private abstract class WorkItem : IDisposable
    {
        private const int Pending = 0, Finished = 1, Abandoned = 2;
        private int _state;

        /// <summary>Set when the work has ended; a waiter sleeps at once rather than spinning (see the class summary).</summary>
        public ManualResetEventSlim Done { get; } = new(initialState: false, spinCount: 0);

        /// <summary>True when this call abandons the item (it has not finished).</summary>
        public bool Abandon() => Interlocked.CompareExchange(ref _state, Abandoned, Pending) == Pending;

        protected bool IsAbandoned => Volatile.Read(ref _state) == Abandoned;

        /// <summary>Runs the work; returns true when its caller had given up on it.</summary>
        public bool Execute()
        {
            Invoke();
            var abandoned = Interlocked.CompareExchange(ref _state, Finished, Pending) == Abandoned;
            Done.Set();
            return abandoned;
        }

        public void Dispose() => Done.Dispose();

        protected abstract void Invoke();
    }

    private sealed class WorkItem<T>(Func<Func<bool>, T> work) : WorkItem
    {
        private T? _result;
        private ExceptionDispatchInfo? _error;

        public T Result()
        {
            _error?.Throw();
            return _result!;
        }

        protected override void Invoke()
        {
            try
            {
                _result = work(() => IsAbandoned);
            }
            catch (Exception e)
            {
                _error = ExceptionDispatchInfo.Capture(e);
            }
        }
    }
}
