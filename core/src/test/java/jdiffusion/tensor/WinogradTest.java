package jdiffusion.tensor;

import static jdiffusion.tensor.Oracle.abs;
import static jdiffusion.tensor.Oracle.assertClose;
import static jdiffusion.tensor.Oracle.random;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * Winograd F(2x2,3x3) and F(4x4,3x3) against the direct convolution (the oracle) and the float64-accumulated
 * reference, on random shapes: odd sizes, paddings 0 / 1 / asymmetric, batches, channel counts off the vector and
 * panel widths, with and without bias, and enough tiles for several chunks.
 *
 * <p>Error bound: |y - y_ref| <= rel * sum |x| |w| (the magnitude behind each output, as the other kernel tests).
 * The direct GEMM is held to 1e-5 there. Winograd adds rounding in its transforms, whose coefficients grow the
 * intermediate values: for m = 2, B, G and A have entries of magnitude <= 1, so a few more roundings of values no
 * larger than the magnitude (measured worst ratio 1e-7, as the direct path); for m = 4 the transforms carry
 * coefficients up to 8 (A) and 5 (B), and G's 1/6 and 1/24 are inexact in binary, so the error grows about 20x
 * (measured worst ratio 1.8e-6 on the larger shapes below). The bounds are 1e-5 (the direct path's) and 2e-5,
 * about 10x the measured worst; {@link #errorStaysWellInsideTheBound} keeps the measured worst under a fifth.
 */
class WinogradTest {
    static final double REL2 = 1e-5;
    static final double REL4 = 2e-5;

    /** batch, h, w, in, out, padTop, padLeft, padBottom, padRight, bias (0/1) */
    private static final int[][] CASES = {
        {1, 4, 4, 1, 1, 1, 1, 1, 1, 1},
        {2, 7, 5, 3, 5, 1, 1, 1, 1, 1},
        {1, 9, 9, 17, 33, 1, 1, 1, 1, 0},
        {2, 13, 11, 16, 48, 1, 1, 1, 1, 1},
        {1, 12, 11, 3, 4, 0, 0, 0, 0, 1},
        {3, 10, 7, 20, 21, 0, 1, 2, 0, 1},
        {1, 3, 3, 8, 8, 1, 1, 1, 1, 1},
        {1, 3, 5, 5, 9, 0, 0, 0, 0, 0},
        {2, 33, 31, 40, 70, 1, 1, 1, 1, 1},
        {1, 64, 48, 64, 64, 1, 1, 1, 1, 1},
        {2, 23, 37, 130, 66, 1, 1, 1, 1, 0},
    };

    @TestFactory
    Stream<DynamicTest> winogradMatchesDirectAndReference() {
        List<DynamicTest> tests = new ArrayList<>();
        for (int[] t : CASES) {
            for (int m : new int[] {2, 4}) {
                tests.add(DynamicTest.dynamicTest("F(" + m + "x" + m + ",3x3) " + java.util.Arrays.toString(t),
                        () -> check(t, m)));
            }
        }
        return tests.stream();
    }

    private static void check(int[] t, int m) {
        SplittableRandom rnd = new SplittableRandom(java.util.Arrays.hashCode(t) * 31L + m);
        int batch = t[0];
        int h = t[1];
        int w = t[2];
        int in = t[3];
        int out = t[4];
        float[] x = random(rnd, batch * h * w * in);
        float[] wt = random(rnd, out * in * 9);
        float[] bias = t[9] == 1 ? random(rnd, out) : null;
        Conv2d conv = Conv2d.of(wt, bias, out, in, 3, 3, 1, t[5], t[6], t[7], t[8]);
        float[] expected = Reference.conv2d(x, batch, h, w, in, wt, bias, out, 3, 3, 1, t[5], t[6], t[7], t[8]);
        float[] mag = Reference.conv2d(abs(x), batch, h, w, in, abs(wt), bias == null ? null : abs(bias), out, 3, 3,
                1, t[5], t[6], t[7], t[8]);
        float[] direct = conv.forwardPath(x, batch, h, w, true);
        float[] wino = conv.forwardWinograd(x, batch, h, w, m);
        double rel = m == 2 ? REL2 : REL4;
        String name = "F(" + m + ") " + java.util.Arrays.toString(t);
        assertClose(name + " vs reference", expected, wino, mag, rel, 1e-30);
        assertClose(name + " vs direct", direct, wino, mag, rel + 1e-5, 1e-30);
    }

    /**
     * A call of many chunks keeps one scratch buffer per running task, not one per chunk: the pool once grew to
     * every chunk's buffer (1.6 GB after one full-resolution convolution of a 512x512 VAE decode).
     */
    @Test
    void scratchStaysOneBufferPerThreadWhateverTheChunks() {
        Winograd.releaseScratch();
        SplittableRandom rnd = new SplittableRandom(7);
        int in = 64;
        int out = 64;
        int h = 96;
        int w = 96;
        Conv2d conv = Conv2d.of(random(rnd, out * in * 9), null, out, in, 3, 1, 1);
        float[] x = random(rnd, h * w * in);
        for (int m : new int[] {2, 4}) {
            float[] y = conv.forwardWinograd(x, 1, h, w, m);
            assertEquals(h * w * out, y.length);
        }
        long tiles = Winograd.tiles(2, 1, h, w);
        assertTrue(tiles / Winograd.MAX_CHUNK >= 4 * Parallel.threads(), "the case must have many chunks per thread");
        int pooled = Winograd.pooledBuffers();
        assertTrue(pooled >= 1 && pooled <= Parallel.threads(), "pooled buffers " + pooled + " for "
                + Parallel.threads() + " threads");
        Winograd.releaseScratch();
        assertEquals(0, Winograd.pooledBuffers());
    }

    /** The worst error relative to the magnitude on the larger shapes, printed for the bound in the class note. */
    @Test
    void errorStaysWellInsideTheBound() {
        for (int m : new int[] {2, 4}) {
            double worst = 0;
            for (int[] t : new int[][] {CASES[8], CASES[9], CASES[10]}) {
                SplittableRandom rnd = new SplittableRandom(7);
                int batch = t[0];
                int h = t[1];
                int w = t[2];
                int in = t[3];
                int out = t[4];
                float[] x = random(rnd, batch * h * w * in);
                float[] wt = random(rnd, out * in * 9);
                Conv2d conv = Conv2d.of(wt, null, out, in, 3, 1, 1);
                float[] expected = Reference.conv2d(x, batch, h, w, in, wt, null, out, 3, 3, 1, 1, 1, 1, 1);
                float[] mag = Reference.conv2d(abs(x), batch, h, w, in, abs(wt), null, out, 3, 3, 1, 1, 1, 1, 1);
                float[] got = conv.forwardWinograd(x, batch, h, w, m);
                for (int i = 0; i < got.length; i++) {
                    worst = Math.max(worst, Math.abs(got[i] - expected[i]) / mag[i]);
                }
            }
            System.out.printf("Winograd F(%dx%d,3x3): worst |error| / magnitude %.3g%n", m, m, worst);
            assertTrue(worst > 0, "the error is measured (an exact result would mean the path did not run)");
            assertTrue(worst < (m == 2 ? REL2 : REL4) / 5, "F(" + m + ") worst relative error " + worst);
        }
    }

    @Test
    void propertyPicksThePathAndAutoChoosesByShape() {
        String old = System.getProperty(Winograd.PROPERTY);
        try {
            System.clearProperty(Winograd.PROPERTY);
            // big enough: 64 channels, 32x32 (256 tiles of 2x2)
            assertEquals(2, Winograd.choose(64, 64, 1, 32, 32));
            // too few channels, too few tiles, too many weights per tile (a UNet 16x16 level at 1280 channels)
            assertEquals(0, Winograd.choose(32, 64, 1, 64, 64));
            assertEquals(0, Winograd.choose(64, 64, 1, 16, 16));
            assertEquals(0, Winograd.choose(1280, 1280, 2, 16, 16));
            // the VAE decoder's layers all qualify, and the UNet's first level
            assertEquals(2, Winograd.choose(512, 512, 1, 64, 64));
            assertEquals(2, Winograd.choose(128, 128, 1, 512, 512));
            assertEquals(2, Winograd.choose(320, 320, 2, 64, 64));
            // a layer that allows F(4x4): where 4x4 tiles pay (the VAE decoder's 256 and 512 levels), else F(2x2)
            assertEquals(4, Winograd.choose(256, 256, 1, 256, 256, 4));
            assertEquals(4, Winograd.choose(256, 128, 1, 512, 512, 4));
            assertEquals(2, Winograd.choose(512, 512, 1, 64, 64, 4), "U of 6x6 tiles too large per tile");
            assertEquals(2, Winograd.choose(64, 64, 1, 40, 40, 4), "too few 4x4 tiles, enough 2x2 ones");
            assertEquals(0, Winograd.choose(32, 64, 1, 256, 256, 4));
            assertEquals(2, Winograd.choose(256, 256, 1, 256, 256), "F(2x2) only by default");
            System.setProperty(Winograd.PROPERTY, "direct");
            assertEquals(0, Winograd.choose(512, 512, 1, 128, 128));
            assertEquals(0, Winograd.choose(256, 256, 1, 256, 256, 4));
            System.setProperty(Winograd.PROPERTY, "f2");
            assertEquals(2, Winograd.choose(256, 256, 1, 256, 256, 4));
            System.setProperty(Winograd.PROPERTY, "f4");
            assertEquals(4, Winograd.choose(3, 5, 1, 3, 3));
            System.setProperty(Winograd.PROPERTY, "sideways");
            assertThrows(IllegalArgumentException.class, () -> Winograd.choose(64, 64, 1, 32, 32));

            // forward() under each setting gives the same convolution
            SplittableRandom rnd = new SplittableRandom(11);
            int in = 64;
            int out = 72;
            float[] x = random(rnd, 2 * 20 * 26 * in);
            float[] wt = random(rnd, out * in * 9);
            float[] bias = random(rnd, out);
            Conv2d conv = Conv2d.of(wt, bias, out, in, 3, 1, 1);
            float[] expected = Reference.conv2d(x, 2, 20, 26, in, wt, bias, out, 3, 3, 1, 1, 1, 1, 1);
            float[] mag = Reference.conv2d(abs(x), 2, 20, 26, in, abs(wt), abs(bias), out, 3, 3, 1, 1, 1, 1, 1);
            for (String mode : new String[] {"direct", "f2", "f4", "auto"}) {
                System.setProperty(Winograd.PROPERTY, mode);
                assertClose(mode, expected, conv.forward(x, 2, 20, 26), mag, REL4, 1e-30);
            }
        } finally {
            SystemProperties.restore(Winograd.PROPERTY, old);
        }
    }

    @Test
    void sixteenBitWeightsAreTransformedFromTheirWidenedValues() {
        SplittableRandom rnd = new SplittableRandom(12);
        float[] x = random(rnd, 2 * 9 * 10 * 24);
        float[] wt = random(rnd, 40 * 24 * 9);
        for (int i = 0; i < wt.length; i++) {
            wt[i] = Float.float16ToFloat(Float.floatToFloat16(wt[i]));
        }
        Conv2d conv = Conv2d.of(wt, null, 40, 24, 3, 1, 1, WeightFormat.F16);
        assertClose("f16 weights", Reference.conv2d(x, 2, 9, 10, 24, wt, null, 40, 3, 3, 1, 1, 1, 1, 1),
                conv.forwardWinograd(x, 2, 9, 10, 2),
                Reference.conv2d(abs(x), 2, 9, 10, 24, abs(wt), null, 40, 3, 3, 1, 1, 1, 1, 1), REL2, 1e-30);
    }
}
