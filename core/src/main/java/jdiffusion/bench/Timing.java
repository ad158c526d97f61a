package jdiffusion.bench;

import java.util.Arrays;

/** Warm-up runs, then timed runs; the median is what a benchmark reports (robust to a busy neighbour). */
public final class Timing {
    private Timing() {
    }

    /** Seconds of each timed run, in order. */
    public record Runs(double[] seconds) {
        public double median() {
            return median(seconds);
        }

        public double min() {
            return Arrays.stream(seconds).min().orElse(Double.NaN);
        }

        static double median(double[] xs) {
            if (xs.length == 0) {
                return Double.NaN;
            }
            double[] s = xs.clone();
            Arrays.sort(s);
            int n = s.length;
            return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
        }
    }

    /** Runs work warmup times untimed, then runs times timed. */
    public static Runs run(int warmup, int runs, Runnable work) {
        if (warmup < 0 || runs < 1) {
            throw new IllegalArgumentException("need warmup >= 0 and runs >= 1, got " + warmup + " and " + runs);
        }
        for (int i = 0; i < warmup; i++) {
            work.run();
        }
        double[] s = new double[runs];
        for (int i = 0; i < runs; i++) {
            long t0 = System.nanoTime();
            work.run();
            s[i] = (System.nanoTime() - t0) * 1e-9;
        }
        return new Runs(s);
    }
}
