package jdiffusion.tensor;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.SplittableRandom;

/** Shared helpers for the kernel-vs-oracle tests: random data and tolerance checks. */
final class Oracle {
    private Oracle() {
    }

    static float[] random(SplittableRandom rnd, int n, double lo, double hi) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (lo + (hi - lo) * rnd.nextDouble());
        }
        return x;
    }

    /** n values uniform in [-scale, scale), as (u * 2 - 1) * scale. */
    static float[] symmetric(SplittableRandom r, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) ((r.nextDouble() * 2 - 1) * scale);
        }
        return a;
    }

    /** x rounded to bf16 (nearest even, as the bf16 kernels round their inputs), as a float. */
    static float bf16Round(float x) {
        return Float.intBitsToFloat(OneDnn.bf16(x) << 16);
    }

    static float[] random(SplittableRandom rnd, int n) {
        return random(rnd, n, -1, 1);
    }

    static float[] abs(float[] x) {
        float[] y = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = Math.abs(x[i]);
        }
        return y;
    }

    /**
     * |actual - expected| <= rel * magnitude[i] + abs for every element, where magnitude is the sum of absolute
     * products behind each output (float32 accumulation in another order is off by a few ulps of that sum).
     */
    static void assertClose(String what, float[] expected, float[] actual, float[] magnitude, double rel, double abs) {
        if (expected.length != actual.length) {
            fail(what + ": length " + actual.length + ", expected " + expected.length);
        }
        for (int i = 0; i < expected.length; i++) {
            double tol = rel * (magnitude == null ? Math.abs(expected[i]) : magnitude[i]) + abs;
            double err = Math.abs((double) actual[i] - expected[i]);
            if (!(err <= tol)) {
                fail(what + ": element " + i + " is " + actual[i] + ", expected " + expected[i] + " (error " + err
                        + " > tolerance " + tol + ")");
            }
        }
    }
}
