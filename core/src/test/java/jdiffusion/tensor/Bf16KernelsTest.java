package jdiffusion.tensor;

import static jdiffusion.tensor.Oracle.bf16Round;
import static jdiffusion.tensor.Oracle.symmetric;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The bf16 kernels against exact arithmetic. Rounding a and b to bf16 (8 significant bits, nearest) gives each
 * factor a relative error of at most 2^-9, so each product a*b at most 2^-8 (plus 2^-18); fp32 accumulation adds
 * n * 2^-24 at most. Hence |y_bf16 - y| <= (2^-8 + 2^-17 + n * 2^-24) * sum |a_i b_i|, per output, which the tests
 * assert (and that the error is not zero, so the bf16 path really ran), and that the result matches the product of
 * the bf16-rounded inputs to fp32 accumulation accuracy.
 */
class Bf16KernelsTest {

    private static double bound(int n, double absSum) {
        return (Math.scalb(1.0, -8) + Math.scalb(1.0, -17) + n * Math.scalb(1.0, -24)) * absSum + 1e-30;
    }

    @Test
    void linearWithinBf16Bound() {
        assumeTrue(OneDnn.usable(), () -> "native bf16 unavailable: " + OneDnn.unavailableReason());
        SplittableRandom r = new SplittableRandom(7);
        int rows = 37;
        int in = 200;
        int out = 72;
        int ldx = 211;
        int ldy = 80;
        float[] w = symmetric(r, out * in, 0.5);
        float[] b = symmetric(r, out, 1);
        float[] x = symmetric(r, 3 + rows * ldx, 2);
        float[] y0 = symmetric(r, 5 + rows * ldy, 1);
        for (boolean accumulate : new boolean[] {false, true}) {
            Linear lin;
            try (var s = Precision.scope(Precision.BF16)) {
                lin = Linear.of(w, b, out, in);
            }
            assertEquals(2L * out * in + 4L * out, lin.weightBytes(), "bf16 weights, fp32 bias");
            float[] y = y0.clone();
            lin.forward(x, 3, ldx, rows, y, 5, ldy, accumulate);
            double maxErr = 0;
            for (int i = 0; i < rows; i++) {
                for (int o = 0; o < out; o++) {
                    double exact = b[o];
                    double abs = Math.abs(b[o]);
                    double rounded = b[o];
                    for (int k = 0; k < in; k++) {
                        double xv = x[3 + i * ldx + k];
                        double wv = w[o * in + k];
                        exact += xv * wv;
                        abs += Math.abs(xv * wv);
                        rounded += (double) bf16Round((float) xv) * bf16Round((float) wv);
                    }
                    double base = accumulate ? y0[5 + i * ldy + o] : 0;
                    double got = y[5 + i * ldy + o] - base;
                    assertTrue(Math.abs(got - exact) <= bound(in, abs),
                            "row " + i + " out " + o + ": " + got + " vs " + exact + " (bound " + bound(in, abs) + ")");
                    assertEquals(rounded, got, in * Math.scalb(1.0, -22) * abs + Math.ulp((float) base) * 2,
                            "bf16-rounded inputs, fp32 accumulation");
                    maxErr = Math.max(maxErr, Math.abs(got - exact));
                }
                for (int o = out; o < ldy && 5 + i * ldy + o < y.length; o++) {
                    assertEquals(y0[5 + i * ldy + o], y[5 + i * ldy + o], "outside the output columns: untouched");
                }
            }
            assertTrue(maxErr > 0, "bf16 rounding must show (the native path ran)");
        }
    }

    @Test
    void convolutionWithinBf16Bound() {
        assumeTrue(OneDnn.usable(), () -> "native bf16 unavailable: " + OneDnn.unavailableReason());
        SplittableRandom r = new SplittableRandom(11);
        // 3x3 pad 1, 3x3 stride 2 with the asymmetric padding of a downsampler, 1x1, 2x2 (UpsampleConv's phases)
        int[][] cases = {{3, 3, 1, 1, 1, 1, 1}, {3, 3, 2, 0, 0, 1, 1}, {1, 1, 1, 0, 0, 0, 0}, {2, 2, 1, 1, 0, 0, 1}};
        for (int[] c : cases) {
            int kh = c[0];
            int kw = c[1];
            int stride = c[2];
            int pt = c[3];
            int pl = c[4];
            int pb = c[5];
            int pr = c[6];
            int batch = 2;
            int h = 9;
            int wd = 7;
            int in = 24;
            int out = 40;
            float[] w = symmetric(r, out * in * kh * kw, 0.3);
            float[] b = symmetric(r, out, 1);
            float[] x = symmetric(r, batch * h * wd * in, 2);
            Conv2d conv;
            try (var s = Precision.scope(Precision.BF16)) {
                conv = Conv2d.of(w, b, out, in, kh, kw, stride, pt, pl, pb, pr);
            }
            float[] y = conv.forward(x, batch, h, wd);
            int oh = conv.outH(h);
            int ow = conv.outW(wd);
            assertEquals(batch * oh * ow * out, y.length);
            double maxErr = 0;
            for (int n = 0; n < batch; n++) {
                for (int oy = 0; oy < oh; oy++) {
                    for (int ox = 0; ox < ow; ox++) {
                        for (int o = 0; o < out; o++) {
                            double exact = b[o];
                            double abs = Math.abs(b[o]);
                            for (int ky = 0; ky < kh; ky++) {
                                int iy = oy * stride + ky - pt;
                                for (int kx = 0; kx < kw; kx++) {
                                    int ix = ox * stride + kx - pl;
                                    if (iy < 0 || iy >= h || ix < 0 || ix >= wd) {
                                        continue;
                                    }
                                    for (int ci = 0; ci < in; ci++) {
                                        double p = (double) x[((n * h + iy) * wd + ix) * in + ci]
                                                * w[((o * in + ci) * kh + ky) * kw + kx];
                                        exact += p;
                                        abs += Math.abs(p);
                                    }
                                }
                            }
                            double got = y[((n * oh + oy) * ow + ox) * out + o];
                            assertTrue(Math.abs(got - exact) <= bound(in * kh * kw, abs), "conv " + java.util.Arrays
                                    .toString(c) + " at " + n + "," + oy + "," + ox + "," + o + ": " + got + " vs " + exact);
                            maxErr = Math.max(maxErr, Math.abs(got - exact));
                        }
                    }
                }
            }
            assertTrue(maxErr > 0, "bf16 rounding must show (the native path ran)");
        }
    }

    @Test
    void forcedFallbackRunsTheFp32KernelsExactly() {
        SplittableRandom r = new SplittableRandom(3);
        float[] w = symmetric(r, 48 * 64, 0.5);
        float[] b = symmetric(r, 48, 1);
        float[] x = symmetric(r, 10 * 64, 1);
        float[] cw = symmetric(r, 16 * 8 * 9, 0.5);
        float[] cx = symmetric(r, 6 * 5 * 8, 1);
        String before = System.getProperty("jdiffusion.bf16");
        System.setProperty("jdiffusion.bf16", "off");
        try {
            assertTrue(!OneDnn.usable());
            assertTrue(Precision.describe(Precision.BF16).startsWith("fp32 Java (bf16 unavailable: forced off"),
                    Precision.describe(Precision.BF16));
            Linear fallback;
            Conv2d convFallback;
            try (var s = Precision.scope(Precision.BF16)) {
                assertEquals(Precision.BF16, Precision.current());
                fallback = Linear.of(w, b, 48, 64);
                convFallback = Conv2d.of(cw, null, 16, 8, 3, 1, 1);
            }
            assertEquals(Precision.FP32, Precision.current(), "the scope ends at close");
            Linear fp32 = Linear.of(w, b, 48, 64);
            assertEquals(fp32.weightBytes(), fallback.weightBytes());
            assertArrayEquals(fp32.forward(x, 10), fallback.forward(x, 10));
            assertArrayEquals(Conv2d.of(cw, null, 16, 8, 3, 1, 1).forward(cx, 1, 6, 5), convFallback.forward(cx, 1, 6, 5));
        } finally {
            SystemProperties.restore("jdiffusion.bf16", before);
        }
    }

    @Test
    void describesThePathThatRuns() {
        assertEquals("fp32 Java", Precision.describe(Precision.FP32));
        String d = Precision.describe(Precision.BF16);
        if (OneDnn.usable()) {
            assertTrue(d.matches("bf16 via oneDNN 3\\.8\\.1, isa .+"), d);
        } else {
            assertTrue(d.startsWith("fp32 Java (bf16 unavailable: "), d);
        }
    }

    @Test
    void parsesTheFlag() {
        assertEquals(Precision.BF16, Precision.parse("bf16"));
        assertEquals(Precision.FP32, Precision.parse("FP32"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Precision.parse("fp16"));
        assertEquals("precision must be fp32 or bf16, got fp16", e.getMessage());
    }

    @Test
    void roundsToNearestEven() {
        assertEquals((short) 0x3F80, OneDnn.bf16(1.0f));
        assertEquals((short) 0x3F80, OneDnn.bf16(Float.intBitsToFloat(0x3F808000)), "tie to even (down)");
        assertEquals((short) 0x3F82, OneDnn.bf16(Float.intBitsToFloat(0x3F818000)), "tie to even (up)");
        assertEquals((short) 0x3F81, OneDnn.bf16(Float.intBitsToFloat(0x3F808001)));
        float[] v = new float[37];
        for (int i = 0; i < v.length; i++) {
            v[i] = Float.intBitsToFloat(0x3F800000 + i * 0x1234567 % 0x7FFFFF) * (i % 2 == 0 ? 1 : -1);
        }
        java.lang.foreign.MemorySegment seg = java.lang.foreign.Arena.ofAuto().allocate(2L * v.length);
        OneDnn.toBf16(v, 0, seg, 0, v.length);
        for (int i = 0; i < v.length; i++) {
            assertEquals(OneDnn.bf16(v[i]), seg.getAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT, i), "vector lane " + i);
        }
    }
}
