package jdiffusion.sampling;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * Statistics of the Brownian-tree noise source: each batch element is an independent Brownian path, so moments over
 * many elements of one tree estimate the increments' distribution.
 */
class BrownianTreeNoiseTest {
    private static final int N = 100_000;
    /** Karras-like levels: none of them is a dyadic point of [t0, t1]. */
    private static final double[] SIGMAS = {14.614642, 7.2119, 3.2791, 1.3701, 0.5226, 0.1781, 0.0292, 0.0};

    private static BrownianTreeNoise tree(long seed) {
        return BrownianTreeNoise.forSchedule(seed, N, SIGMAS);
    }

    @Test
    void spansTheSmallestPositiveAndTheLargestSigma() {
        BrownianTreeNoise t = BrownianTreeNoise.forSchedule(1, 4, SIGMAS);
        assertEquals(0.0292, t.t0());
        assertEquals(14.614642, t.t1());
    }

    @Test
    void normalisedIncrementsAreStandardNormal() {
        BrownianTreeNoise t = tree(42);
        for (int i = 0; i + 2 < SIGMAS.length; i++) {
            float[] z = t.next(SIGMAS[i], SIGMAS[i + 1]);
            assertEquals(0.0, mean(z), 0.015, "mean of interval " + i);
            assertEquals(1.0, variance(z), 0.02, "variance of interval " + i);
        }
        // a long and a very short interval too
        assertEquals(1.0, variance(t.next(14.0, 0.05)), 0.02);
        assertEquals(1.0, variance(t.next(0.5, 0.5001)), 0.02);
    }

    @Test
    void rawIncrementVarianceIsTheIntervalLength() {
        BrownianTreeNoise t = tree(7);
        double a = 0.7;
        double b = 5.3;
        double[] wa = t.w(a);
        double[] wb = t.w(b);
        double s = 0;
        for (int i = 0; i < N; i++) {
            double d = wb[i] - wa[i];
            s += d * d;
        }
        assertEquals(b - a, s / N, 0.02 * (b - a));
        assertEquals(t.t1() - t.t0(), variance(t.w(t.t1())), 0.02 * (t.t1() - t.t0()));
    }

    @Test
    void sameIntervalTwiceGivesTheSameNoiseInAnyQueryOrder() {
        BrownianTreeNoise t = tree(3);
        float[] first = t.next(3.2791, 1.3701);
        t.next(14.614642, 7.2119);
        t.next(0.1781, 0.0292);
        assertArrayEquals(first, t.next(3.2791, 1.3701));
        // a fresh tree with the same seed, queried in another order, agrees; the reversed query flips the sign
        BrownianTreeNoise u = tree(3);
        u.next(0.5226, 0.1781);
        assertArrayEquals(first, u.next(3.2791, 1.3701));
        float[] reversed = u.next(1.3701, 3.2791);
        for (int i = 0; i < 100; i++) {
            assertEquals(-first[i], reversed[i], 1e-6f);
        }
    }

    @Test
    void disjointIntervalsAreUncorrelatedAndAdditive() {
        BrownianTreeNoise t = tree(11);
        double a = 7.2119;
        double b = 1.3701;
        double c = 0.1781;
        float[] ab = t.next(a, b);
        float[] bc = t.next(b, c);
        assertEquals(0.0, correlation(ab, bc), 0.015, "disjoint neighbours");
        assertEquals(0.0, correlation(t.next(14.614642, 7.2119), bc), 0.015, "disjoint, apart");
        // W(a, c) = W(a, b) + W(b, c): the normalised pieces recombine with their interval lengths
        float[] ac = t.next(a, c);
        double sab = Math.sqrt(a - b);
        double sbc = Math.sqrt(b - c);
        double sac = Math.sqrt(a - c);
        for (int i = 0; i < 1000; i++) {
            assertEquals(ac[i] * sac, ab[i] * sab + bc[i] * sbc, 1e-5);
        }
        // overlapping intervals correlate as their overlap: corr = overlap / sqrt(len1 * len2)
        double expected = (b - c) / Math.sqrt((a - c) * (b - c));
        assertEquals(expected, correlation(ac, bc), 0.015, "nested");
    }

    @Test
    void differentSeedsGiveIndependentNoise() {
        assertEquals(0.0, correlation(tree(1).next(3.2791, 1.3701), tree(2).next(3.2791, 1.3701)), 0.015);
        assertTrue(tree(5).next(3.2791, 1.3701)[0] != tree(6).next(3.2791, 1.3701)[0]);
    }

    private static double mean(float[] v) {
        double s = 0;
        for (float x : v) {
            s += x;
        }
        return s / v.length;
    }

    private static double variance(float[] v) {
        double m = mean(v);
        double s = 0;
        for (float x : v) {
            s += (x - m) * (x - m);
        }
        return s / v.length;
    }

    private static double variance(double[] v) {
        double s = 0;
        for (double x : v) {
            s += x * x;
        }
        return s / v.length;
    }

    private static double correlation(float[] a, float[] b) {
        double ma = mean(a);
        double mb = mean(b);
        double sab = 0;
        double saa = 0;
        double sbb = 0;
        for (int i = 0; i < a.length; i++) {
            sab += (a[i] - ma) * (b[i] - mb);
            saa += (a[i] - ma) * (a[i] - ma);
            sbb += (b[i] - mb) * (b[i] - mb);
        }
        return sab / Math.sqrt(saa * sbb);
    }
}
