package jdiffusion.tensor;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The machine's measured fp32 FMA peak: a tight loop of independent vector FMA chains per thread (no loads, no
 * dependencies longer than the FMA latency), run on every thread at once. Benchmarks report their GFLOP/s as a
 * share of this number.
 */
public final class FmaPeak {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static volatile float sink;
    private static volatile boolean warm;

    private FmaPeak() {
    }

    /**
     * GFLOP/s of all threads together: the best of three runs of the FMA loop, each about a third of the given
     * time (after a warm-up). The best, because early in a process the JIT's compiler threads compete for the same
     * cores and one run can see a fraction of the machine (a first run right after start-up measured 57 GFLOP/s
     * where the next two measured 406).
     */
    public static double measure(int threads, long millis) {
        double best = 0;
        for (int i = 0; i < 3; i++) {
            best = Math.max(best, run(threads, Math.max(1, millis / 3)).gflops());
        }
        return best;
    }

    /**
     * A measurement: wall-clock GFLOP/s of all threads together, and GFLOP per CPU-second of one thread (what a
     * core does while it runs this thread; on a machine shared with other work this stays near the true peak
     * while the wall-clock figure drops).
     */
    public record Result(double gflops, double perCpuSecond) {
    }

    public static Result run(int threads, long millis) {
        warmUp();
        long iters = calibrate(millis);
        Thread[] ts = new Thread[threads];
        long[] cpuNanos = new long[threads];
        java.lang.management.ThreadMXBean mx = java.lang.management.ManagementFactory.getThreadMXBean();
        long t0 = System.nanoTime();
        for (int i = 0; i < threads; i++) {
            int slot = i;
            ts[i] = Thread.ofPlatform().start(() -> {
                long c0 = mx.getCurrentThreadCpuTime();
                sink += chains(iters);
                cpuNanos[slot] = mx.getCurrentThreadCpuTime() - c0;
            });
        }
        for (Thread t : ts) {
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while measuring the FMA peak", e);
            }
        }
        double seconds = (System.nanoTime() - t0) * 1e-9;
        double cpu = java.util.Arrays.stream(cpuNanos).sum() * 1e-9;
        return new Result(flops(iters) * threads / seconds * 1e-9, flops(iters) * threads / Math.max(cpu, 1e-9) * 1e-9);
    }

    /** Calls the loop until the JIT has compiled it (a first long call would run interpreted or on-stack-replaced). */
    private static void warmUp() {
        if (warm) {
            return;
        }
        warm = true;
        long end = System.nanoTime() + 300_000_000L;
        while (System.nanoTime() < end) {
            sink += chains(100_000);
        }
    }

    private static long calibrate(long millis) {
        long iters = 1_000_000;
        long t0 = System.nanoTime();
        sink += chains(iters);
        double s = Math.max(1e-6, (System.nanoTime() - t0) * 1e-9);
        return Math.max(iters, (long) (iters * (millis * 1e-3) / s));
    }

    private static double flops(long iters) {
        return 2.0 * 12 * S.length() * iters;
    }

    /** Twelve independent FMA chains: enough to keep two FMA pipes busy over a 4-cycle latency. */
    private static float chains(long iters) {
        FloatVector a0 = FloatVector.broadcast(S, 1f);
        FloatVector a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
        FloatVector a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        FloatVector x = FloatVector.broadcast(S, 0.9999999f);
        FloatVector y = FloatVector.broadcast(S, 1e-7f);
        for (long i = 0; i < iters; i++) {
            a0 = a0.fma(x, y);
            a1 = a1.fma(x, y);
            a2 = a2.fma(x, y);
            a3 = a3.fma(x, y);
            a4 = a4.fma(x, y);
            a5 = a5.fma(x, y);
            a6 = a6.fma(x, y);
            a7 = a7.fma(x, y);
            a8 = a8.fma(x, y);
            a9 = a9.fma(x, y);
            a10 = a10.fma(x, y);
            a11 = a11.fma(x, y);
        }
        return a0.add(a1).add(a2).add(a3).add(a4).add(a5).add(a6).add(a7).add(a8).add(a9).add(a10).add(a11)
                .reduceLanes(VectorOperators.ADD);
    }
}
