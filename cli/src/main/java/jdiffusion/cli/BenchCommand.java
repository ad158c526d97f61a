package jdiffusion.cli;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import jdiffusion.tensor.FmaPeak;
import jdiffusion.tensor.Gemm;
import jdiffusion.tensor.Parallel;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** `jdiffusion bench ...`: speed measurements (commands, not tests). Each benchmark is a subcommand. */
@Command(name = "bench", description = "Measure the engine's speed.", mixinStandardHelpOptions = true,
        subcommands = {BenchCommand.GemmBench.class, ModelBench.UnetBench.class, ModelBench.VaeBench.class,
            ModelBench.TextBench.class, ModelBench.GenerateBench.class, UpscaleBench.class, ControlNetBench.class})
public final class BenchCommand implements Runnable {
    @picocli.CommandLine.Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    /** Sets the pool size from -t (default: all available processors). */
    static int applyThreads(Integer threads) {
        int t = threads == null ? Runtime.getRuntime().availableProcessors() : threads;
        if (t < 1) {
            throw new CliException("--threads must be at least 1, got " + t);
        }
        Parallel.setThreads(t);
        return t;
    }

    /** An SD1.5 UNet GEMM: weights packed once (a layer), or both operands activations (attention). */
    record Shape(String name, int m, int n, int k, boolean activations) {
        double flops() {
            return 2.0 * m * n * k;
        }
    }

    static final List<Shape> SD15_SHAPES = List.of(
            new Shape("proj 320", 4096, 320, 320, false),
            new Shape("ff up 320", 4096, 1280, 320, false),
            new Shape("conv3x3 320", 4096, 320, 2880, false),
            new Shape("conv3x3 640", 1024, 640, 5760, false),
            new Shape("conv3x3 1280", 256, 1280, 11520, false),
            new Shape("text 768", 77, 768, 768, false),
            new Shape("attn QK^T", 4096, 4096, 40, true),
            new Shape("attn PV", 4096, 40, 4096, true),
            new Shape("big 1280", 8192, 1280, 1280, false));

    @Command(name = "gemm", mixinStandardHelpOptions = true,
            description = "GFLOP/s of the SD1.5 UNet GEMM shapes beside the measured fp32 FMA peak.")
    static final class GemmBench implements Runnable {
        @Option(names = {"-t", "--threads"}, description = "Worker threads (default: available processors).")
        Integer threads;

        @Option(names = "--seconds", description = "Timed seconds per shape (default: ${DEFAULT-VALUE}).")
        double seconds = 1.5;

        @picocli.CommandLine.Mixin
        PrecisionOption precision = new PrecisionOption();

        @Override
        public void run() {
            int t = applyThreads(threads);
            if (seconds <= 0) {
                throw new CliException("--seconds must be positive, got " + seconds);
            }
            jdiffusion.tensor.Precision p = precision.apply();
            List<Case> cases = SD15_SHAPES.stream().map(Case::new).toList();
            System.out.printf("bench gemm: %d threads, %d-float vectors; precision: %s (weight products; attention"
                    + " after the table, fp32 and bf16); warming up...%n", t, Gemm.L, jdiffusion.tensor.Precision.describe(p));
            // Vector API code runs boxed, orders of magnitude slower, until C2 compiles it: warm up by time too
            long warmEnd = System.nanoTime() + 6_000_000_000L;
            for (int round = 0; round < 3 || System.nanoTime() < warmEnd; round++) {
                cases.forEach(Case::run);
            }
            FmaPeak.measure(t, 200);
            CpuClock clock = new CpuClock();
            // the peak is measured right before and after each shape, so a machine whose load changes during the
            // run still compares each shape with the peak it could have had at that moment; the CPU-second columns
            // count only the time our threads actually ran (other work on the machine does not dilute them)
            System.out.printf("%-14s %6s %6s %6s %9s %9s %8s %11s %11s %8s%n", "shape", "M", "N", "K", "GFLOP/s",
                    "peak", "of peak", "GFLOP/cpu-s", "peak/cpu-s", "of peak");
            List<Double> rates = new ArrayList<>();
            List<Double> shares = new ArrayList<>();
            List<Double> cpuShares = new ArrayList<>();
            double peakSum = 0;
            double cpuPeakSum = 0;
            for (Case c : cases) {
                FmaPeak.Result before = FmaPeak.run(t, 400);
                double[] rate = c.measure(seconds, clock);
                FmaPeak.Result after = FmaPeak.run(t, 400);
                double peak = (before.gflops() + after.gflops()) / 2;
                double cpuPeak = (before.perCpuSecond() + after.perCpuSecond()) / 2;
                peakSum += peak;
                cpuPeakSum += cpuPeak;
                rates.add(rate[0]);
                shares.add(rate[0] / peak);
                cpuShares.add(rate[1] / cpuPeak);
                Shape s = c.shape;
                System.out.printf("%-14s %6d %6d %6d %9.1f %9.1f %7.1f%% %11.1f %11.1f %7.1f%%%n", s.name(), s.m(),
                        s.n(), s.k(), rate[0], peak, 100 * rate[0] / peak, rate[1], cpuPeak, 100 * rate[1] / cpuPeak);
            }
            double peak = peakSum / cases.size();
            System.out.printf("measured fp32 FMA peak: %.1f GFLOP/s (%d threads, %.1f per thread; mean of the "
                    + "measurements beside the shapes); per CPU-second of one thread: %.1f GFLOP%n", peak, t, peak / t,
                    cpuPeakSum / cases.size());
            System.out.printf("geometric mean %.1f GFLOP/s; share of peak: geometric mean %.1f%%, lowest %.1f%%%n",
                    geoMean(rates), 100 * geoMean(shares), 100 * shares.stream().mapToDouble(x -> x).min().orElse(0));
            System.out.printf("per CPU-second: geometric mean %.1f%% of the per-thread peak, lowest %.1f%%%n",
                    100 * geoMean(cpuShares), 100 * cpuShares.stream().mapToDouble(x -> x).min().orElse(0));
            if (p == jdiffusion.tensor.Precision.BF16) {
                AttentionBench.run(seconds);
            }
            System.out.printf("machine load average now: %.2f on %d processors%n",
                    java.lang.management.ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage(),
                    Runtime.getRuntime().availableProcessors());
        }

        private static double geoMean(List<Double> xs) {
            return Math.exp(xs.stream().mapToDouble(Math::log).average().orElse(0));
        }
    }

    /**
     * CPU time of all Java threads of this process between two readings (the pool's workers, which the pool may
     * retire and replace during a long run, the caller, and the few JIT threads still busy after the warm-up).
     */
    static final class CpuClock {
        private final java.lang.management.ThreadMXBean mx = java.lang.management.ManagementFactory.getThreadMXBean();

        java.util.Map<Long, Long> read() {
            java.util.Map<Long, Long> cpu = new java.util.HashMap<>();
            for (long id : mx.getAllThreadIds()) {
                long t = mx.getThreadCpuTime(id);
                if (t >= 0) {
                    cpu.put(id, t);
                }
            }
            return cpu;
        }

        double secondsSince(java.util.Map<Long, Long> start) {
            long total = 0;
            for (java.util.Map.Entry<Long, Long> e : read().entrySet()) {
                total += e.getValue() - start.getOrDefault(e.getKey(), 0L);
            }
            return total * 1e-9;
        }
    }

    /** One shape's operands, made once; run() is one multiplication. */
    static final class Case {
        final Shape shape;
        final float[] a;
        final float[] b;
        final Gemm.PackedB packed;
        /** The weight products as a layer of the current precision (bf16 runs oneDNN's kernel). */
        final jdiffusion.tensor.Linear linear;
        final float[] c;

        Case(Shape s) {
            shape = s;
            SplittableRandom rnd = new SplittableRandom(42);
            a = random(rnd, s.m() * s.k());
            b = random(rnd, s.k() * s.n());
            boolean bf16 = jdiffusion.tensor.Precision.current() == jdiffusion.tensor.Precision.BF16;
            packed = s.activations() || bf16 ? null : Gemm.packWeights(b, s.n(), s.k());
            linear = s.activations() || !bf16 ? null : jdiffusion.tensor.Linear.of(b, null, s.n(), s.k());
            c = new float[s.m() * s.n()];
        }

        void run() {
            if (shape.activations()) {
                // activation products pack B on the fly, and that packing is part of the time
                Gemm.matmul(a, b, shape.m(), shape.n(), shape.k(), c);
            } else if (linear != null) {
                linear.forward(a, 0, shape.k(), shape.m(), c, 0, shape.n(), false);
            } else {
                Gemm.multiply(new Gemm.Dense(a, 0, shape.k()), shape.m(), packed, c, 0, shape.n(), null, false);
            }
        }

        /** Median wall-clock GFLOP/s over repeated runs filling the given time, and GFLOP per CPU-second. */
        double[] measure(double seconds, CpuClock clock) {
            List<Double> times = new ArrayList<>();
            long end = System.nanoTime() + (long) (seconds * 1e9);
            java.util.Map<Long, Long> cpu0 = clock.read();
            while (times.size() < 3 || System.nanoTime() < end) {
                long t0 = System.nanoTime();
                run();
                times.add((System.nanoTime() - t0) * 1e-9);
            }
            double cpu = clock.secondsSince(cpu0);
            double[] sorted = times.stream().mapToDouble(Double::doubleValue).sorted().toArray();
            return new double[] {shape.flops() / sorted[sorted.length / 2] * 1e-9,
                shape.flops() * times.size() / cpu * 1e-9};
        }

        private static float[] random(SplittableRandom rnd, int n) {
            float[] x = new float[n];
            for (int i = 0; i < n; i++) {
                x[i] = (float) (rnd.nextDouble() * 2 - 1);
            }
            return x;
        }
    }
}
