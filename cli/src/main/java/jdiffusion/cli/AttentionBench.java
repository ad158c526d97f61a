package jdiffusion.cli;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import jdiffusion.tensor.Ops;

/**
 * `bench gemm --precision bf16`'s attention lines: whole attention (4096 queries x 4096 keys, two heads, head sizes
 * 64 as SDXL's and 40 as SD1.5's) with the products in fp32 (the Java kernel) and in bf16 (oneDNN), timed
 * alternately in one process so both see the same machine load; also per CPU-second of our threads (both paths run
 * on Java threads only: the bf16 one calls single-threaded primitives from the workers), steadier on a busy machine.
 */
final class AttentionBench {
    private AttentionBench() {
    }

    static void run(double seconds) {
        int tokens = 4096;
        int heads = 2;
        BenchCommand.CpuClock clock = new BenchCommand.CpuClock();
        for (int hd : new int[] {64, 80}) { // heads narrower than 64 stay fp32 (Attention.BF16_MIN_HEAD)
            SplittableRandom r = new SplittableRandom(hd);
            int n = tokens * heads * hd;
            float[] q = random(r, n);
            float[] k = random(r, n);
            float[] v = random(r, n);
            double flops = 4.0 * heads * tokens * tokens * hd;
            for (int w = 0; w < 2; w++) {
                Ops.attention(q, k, v, 1, tokens, tokens, heads, hd, false, false);
                Ops.attention(q, k, v, 1, tokens, tokens, heads, hd, false, true);
            }
            List<Double> fp32 = new ArrayList<>();
            List<Double> bf16 = new ArrayList<>();
            double[] cpu = new double[2];
            long end = System.nanoTime() + (long) (2 * seconds * 1e9);
            while (fp32.size() < 3 || System.nanoTime() < end) {
                for (int path = 0; path < 2; path++) {
                    java.util.Map<Long, Long> c0 = clock.read();
                    long t0 = System.nanoTime();
                    Ops.attention(q, k, v, 1, tokens, tokens, heads, hd, false, path == 1);
                    (path == 0 ? fp32 : bf16).add((System.nanoTime() - t0) * 1e-9);
                    cpu[path] += clock.secondsSince(c0);
                }
            }
            double a = median(fp32);
            double b = median(bf16);
            double ca = flops * fp32.size() / cpu[0] * 1e-9;
            double cb = flops * bf16.size() / cpu[1] * 1e-9;
            System.out.printf("attention %dx%dx%d, %d heads: fp32 %.1f GFLOP/s (%.1f ms, %.1f per cpu-s), bf16 %.1f"
                    + " GFLOP/s (%.1f ms, %.1f per cpu-s): %.2fx wall, %.2fx per cpu-s (medians of %d alternating"
                    + " runs)%n", tokens, tokens, hd, heads, flops / a * 1e-9, a * 1e3, ca, flops / b * 1e-9, b * 1e3,
                    cb, a / b, cb / ca, fp32.size());
        }
    }

    private static double median(List<Double> xs) {
        double[] s = xs.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        return s[s.length / 2];
    }

    private static float[] random(SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (r.nextDouble() * 2 - 1);
        }
        return a;
    }
}
