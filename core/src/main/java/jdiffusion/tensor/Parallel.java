package jdiffusion.tensor;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.IntConsumer;

/**
 * The engine's one thread pool. Kernels split their work with {@link #forRange}.
 *
 * <p>A fork/join pool parks its workers as soon as they run dry, and waking a parked thread costs tens of
 * microseconds, as long as a whole small product (a 77-token text layer is about a quarter of a millisecond on two
 * cores). So this pool works as OpenMP runtimes do: the calling thread takes part in the work, and the workers, once
 * done, spin for a short while ({@link #SPIN_NANOS}) waiting for the next range before they park. Indices are handed
 * out one at a time from a shared counter, so a slow core never holds up the others with a fixed share.
 *
 * <p>One range runs at a time: a second thread calling {@link #forRange} waits for the pool, and a call from inside a
 * running range (a kernel called by a kernel) runs on the calling thread alone.
 */
public final class Parallel {
    /** How long an idle worker spins before it parks (the gaps between the kernels of one layer are shorter). */
    static final long SPIN_NANOS = 2_000_000L;

    private static volatile Pool pool = new Pool(Runtime.getRuntime().availableProcessors());
    private static final ThreadLocal<Boolean> INSIDE = ThreadLocal.withInitial(() -> false);
    /** The calling thread's cancellation check (throws to stop), run before each index of its ranges; or null. */
    private static final ThreadLocal<Runnable> CANCEL = new ThreadLocal<>();

    private Parallel() {
    }

    /** The most threads {@link #setThreads} accepts: a small multiple of the cores, never thousands. */
    public static int maxThreads() {
        return 4 * Runtime.getRuntime().availableProcessors();
    }

    /** Null when threads is within 1 .. {@link #maxThreads()}, else the one-line reason. */
    public static String threadsProblem(long threads) {
        if (threads < 1 || threads > maxThreads()) {
            return "threads must be 1.." + maxThreads() + " (4 x the " + Runtime.getRuntime().availableProcessors()
                    + " cores here), got " + threads;
        }
        return null;
    }

    /** Sets the number of threads that run a range, the caller included (the CLI's -t); 1 .. {@link #maxThreads()}. */
    public static synchronized void setThreads(int threads) {
        String problem = threadsProblem(threads);
        if (problem != null) {
            throw new IllegalArgumentException(problem);
        }
        if (threads != pool.threads) {
            Pool old = pool;
            pool = new Pool(threads);
            old.shutdown();
        }
    }

    public static int threads() {
        return pool.threads;
    }

    /**
     * Runs body on this thread with check installed: every range this thread starts runs check before each of its
     * indices (an attention block, a convolution tile), so a long operation stops soon after check starts throwing
     * (an interrupt), not at the end of a whole sampling step. The previous check is restored afterwards.
     */
    public static <T> T cancellable(Runnable check, java.util.function.Supplier<T> body) {
        Runnable previous = CANCEL.get();
        CANCEL.set(check);
        try {
            return body.get();
        } finally {
            CANCEL.set(previous);
        }
    }

    /** Runs this thread's cancellation check, if any (for long loops that are not ranges). */
    public static void checkCancelled() {
        Runnable check = CANCEL.get();
        if (check != null) {
            check.run();
        }
    }

    /**
     * Lets the idle workers park now instead of spinning for the next range: call before handing the cores to
     * another runtime's threads (oneDNN's OpenMP team), which the spinning would slow down.
     */
    public static void rest() {
        pool.resting = true;
    }

    /** Runs body(i) for i in [0, n), spread over the pool; returns when all are done. */
    public static void forRange(int n, IntConsumer body) {
        if (n <= 0) {
            return;
        }
        Runnable check = CANCEL.get();
        if (check != null) {
            check.run();
            IntConsumer inner = body;
            body = i -> {
                check.run();
                inner.accept(i);
            };
        }
        Pool p = pool;
        if (n == 1 || p.threads == 1 || INSIDE.get()) {
            for (int i = 0; i < n; i++) {
                body.accept(i);
            }
            return;
        }
        p.run(n, body);
    }

    private static final class Pool {
        final int threads;
        private final Thread[] workers;
        private final AtomicIntegerArray parked;
        /** Spin only when every thread has a processor of its own; oversubscribed, spinning steals from work. */
        private final long spinNanos;
        private final ReentrantLock lock = new ReentrantLock();
        /** Incremented for every range; workers wait for it to change. */
        private volatile long generation;
        private volatile boolean shutdown;
        /** Set by {@link Parallel#rest}: idle workers park at once; the next range clears it. */
        private volatile boolean resting;
        private volatile IntConsumer body;
        private volatile int size;
        private final AtomicInteger next = new AtomicInteger();
        private final AtomicInteger done = new AtomicInteger();
        /** Workers still inside the current range (the caller waits for them before the next one may start). */
        private final AtomicInteger busy = new AtomicInteger();
        private volatile Throwable failure;

        Pool(int threads) {
            this.threads = threads;
            workers = new Thread[threads - 1];
            parked = new AtomicIntegerArray(threads - 1);
            spinNanos = threads <= Runtime.getRuntime().availableProcessors() ? SPIN_NANOS : 0;
            for (int i = 0; i < workers.length; i++) {
                int slot = i;
                workers[i] = Thread.ofPlatform().daemon().name("jdiffusion-worker-" + (i + 1))
                        .start(() -> workerLoop(slot));
            }
        }

        void shutdown() {
            lock.lock();
            try {
                shutdown = true;
                for (Thread w : workers) {
                    LockSupport.unpark(w);
                }
            } finally {
                lock.unlock();
            }
        }

        void run(int n, IntConsumer task) {
            lock.lock();
            try {
                if (shutdown) {
                    // replaced by setThreads while this call was on its way: run here alone
                    for (int i = 0; i < n; i++) {
                        task.accept(i);
                    }
                    return;
                }
                failure = null;
                resting = false;
                body = task;
                size = n;
                next.set(0);
                done.set(0);
                busy.set(workers.length);
                generation = generation + 1;
                for (int i = 0; i < workers.length; i++) {
                    if (parked.get(i) != 0) {
                        LockSupport.unpark(workers[i]);
                    }
                }
                INSIDE.set(true);
                try {
                    work(task, n);
                } finally {
                    INSIDE.set(false);
                }
                // wait for the indices other threads took, then for the workers to leave the range
                for (long spins = 0; done.get() < n || busy.get() > 0; spins++) {
                    if (spinNanos > 0 && spins < 1_000_000) {
                        Thread.onSpinWait();
                    } else {
                        Thread.yield();
                    }
                }
                body = null;
                Throwable t = failure;
                if (t instanceof RuntimeException e) {
                    throw e;
                }
                if (t instanceof Error e) {
                    throw e;
                }
                if (t != null) {
                    throw new IllegalStateException(t);
                }
            } finally {
                lock.unlock();
            }
        }

        private void work(IntConsumer task, int n) {
            for (int i = next.getAndIncrement(); i < n; i = next.getAndIncrement()) {
                try {
                    if (failure == null) { // after a failure (a cancellation) the rest is skipped, only counted
                        task.accept(i);
                    }
                } catch (Throwable t) {
                    if (failure == null) {
                        failure = t;
                    }
                } finally {
                    done.incrementAndGet();
                }
            }
        }

        private void workerLoop(int slot) {
            INSIDE.set(true);
            long seen = 0; // the value before any range (not read here: a range may already have started)
            while (!shutdown) {
                long spinEnd = System.nanoTime() + spinNanos;
                while (generation == seen && !shutdown) {
                    if (System.nanoTime() < spinEnd && !resting) {
                        Thread.onSpinWait();
                    } else {
                        parked.set(slot, 1);
                        // re-check after publishing the flag: run() unparks only workers it sees parked
                        if (generation == seen && !shutdown) {
                            LockSupport.park(this);
                        }
                        parked.set(slot, 0);
                        spinEnd = System.nanoTime() + spinNanos;
                    }
                }
                if (shutdown) {
                    return;
                }
                seen = generation;
                IntConsumer task = body;
                int n = size;
                if (task != null) {
                    work(task, n);
                }
                busy.decrementAndGet();
            }
        }
    }
}
