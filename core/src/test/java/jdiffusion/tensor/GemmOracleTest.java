package jdiffusion.tensor;

import static jdiffusion.tensor.Oracle.abs;
import static jdiffusion.tensor.Oracle.assertClose;
import static jdiffusion.tensor.Oracle.random;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The SIMD GEMM, Linear and Conv2d against the scalar oracle, on shapes that are not multiples of the tiles. */
class GemmOracleTest {
    /** Relative to the sum of |products| behind each output: float32 accumulation, a different order than double. */
    private static final double REL = 1e-5;

    private static final int[][] MATMUL_SHAPES = {
        {1, 1, 1}, {5, 7, 3}, {6, 32, 256}, {7, 33, 257}, {13, 16, 513}, {77, 40, 300}, {150, 100, 70},
        {300, 17, 31}, {12, 64, 600}, {291, 65, 129}, {2, 500, 9}, {900, 20, 33}, {437, 200, 300},
    };

    @Test
    void matmulMatchesOracle() {
        SplittableRandom rnd = new SplittableRandom(1);
        for (int[] s : MATMUL_SHAPES) {
            int m = s[0];
            int n = s[1];
            int k = s[2];
            float[] a = random(rnd, m * k);
            float[] b = random(rnd, k * n);
            assertClose("matmul " + m + "x" + n + "x" + k, Reference.matmul(a, b, m, n, k), Ops.matmul(a, b, m, n, k),
                    Reference.matmul(abs(a), abs(b), m, n, k), REL, 1e-30);
        }
    }

    /**
     * Last panels two vectors and at most half a third wide run the paired-rows kernel (attention's P V at head
     * size 40): every width around that range, with and without bias, onto zeros and accumulating, tails of rows,
     * C with no room past n (masked stores must not touch the next row) and with padded rows.
     */
    @Test
    void narrowLastPanelsMatchOracle() {
        SplittableRandom rnd = new SplittableRandom(11);
        int l = Gemm.L;
        int[] widths = {2 * l, 2 * l + 1, 2 * l + l / 4, 2 * l + l / 2, 2 * l + l / 2 + 1, Gemm.NR + 2 * l + l / 2};
        for (int n : widths) {
            for (int[] mk : new int[][] {{8, 5}, {13, 300}, {64, 700}}) {
                int m = mk[0];
                int k = mk[1];
                float[] a = random(rnd, m * k);
                float[] b = random(rnd, k * n);
                float[] bias = random(rnd, n);
                float[] start = random(rnd, m * n);
                float[] ab = Reference.matmul(a, b, m, n, k);
                float[] mag = Reference.matmul(abs(a), abs(b), m, n, k);
                String what = m + "x" + n + "x" + k;
                // the packed scratch is reused: a wider product first leaves old values in its padding lanes
                Ops.matmul(random(rnd, m * k), random(rnd, k * Gemm.NR * 2), m, Gemm.NR * 2, k);
                assertClose("matmul " + what, ab, Ops.matmul(a, b, m, n, k), mag, REL, 1e-30);

                Gemm.PackedB packed = Gemm.pack(b, 0, n, 1, k, n);
                float[] c = new float[m * n];
                Gemm.multiply(new Gemm.Dense(a, 0, k), m, packed, c, 0, n, bias, false);
                float[] expected = new float[m * n];
                float[] magBias = new float[m * n];
                for (int i = 0; i < m * n; i++) {
                    expected[i] = ab[i] + bias[i % n];
                    magBias[i] = mag[i] + Math.abs(bias[i % n]);
                }
                assertClose("with bias " + what, expected, c, magBias, REL, 1e-30);

                c = start.clone();
                Gemm.multiply(new Gemm.Dense(a, 0, k), m, packed, c, 0, n, bias, true);
                for (int i = 0; i < m * n; i++) {
                    expected[i] = start[i] + ab[i] + bias[i % n];
                    magBias[i] = Math.abs(start[i]) + mag[i] + Math.abs(bias[i % n]);
                }
                assertClose("accumulating " + what, expected, c, magBias, REL, 1e-30);

                // padded C rows (whole panels, as attention's output scratch): columns past n are the caller's
                int ldc = packed.panels() * Gemm.NR;
                float[] padded = new float[m * ldc];
                Gemm.block(new Gemm.Dense(a, 0, k), 0, m, packed, 0, packed.panels(), 0, k, padded, 0, ldc, null,
                        false, true);
                float[] got = new float[m * n];
                for (int i = 0; i < m; i++) {
                    System.arraycopy(padded, i * ldc, got, i * n, n);
                }
                assertClose("padded C " + what, ab, got, mag, REL, 1e-30);
            }
        }
    }

    @Test
    void matmulTransposedMatchesOracle() {
        SplittableRandom rnd = new SplittableRandom(7);
        int m = 37;
        int n = 45;
        int k = 300;
        float[] a = random(rnd, m * k);
        float[] b = random(rnd, n * k);
        float[] bt = new float[k * n];
        for (int j = 0; j < n; j++) {
            for (int p = 0; p < k; p++) {
                bt[p * n + j] = b[j * k + p];
            }
        }
        assertClose("a b^T", Reference.matmul(a, bt, m, n, k), Ops.matmulTransposed(a, b, m, n, k),
                Reference.matmul(abs(a), abs(bt), m, n, k), REL, 1e-30);
    }

    @Test
    void matmulOnOneAndTwoThreads() {
        int saved = Parallel.threads();
        try {
            SplittableRandom rnd = new SplittableRandom(2);
            for (int threads : new int[] {1, 2, 3}) {
                Parallel.setThreads(threads);
                float[] a = random(rnd, 200 * 97);
                float[] b = random(rnd, 97 * 70);
                assertClose("matmul on " + threads + " threads", Reference.matmul(a, b, 200, 70, 97),
                        Ops.matmul(a, b, 200, 70, 97), Reference.matmul(abs(a), abs(b), 200, 70, 97), REL, 1e-30);
            }
        } finally {
            Parallel.setThreads(saved);
        }
    }

    @Test
    void resultsAreBitIdenticalForAnyThreadCount() {
        // the GEMM splits work by thread count but never an output's summation order; the group norm's statistics
        // chunks are fixed too (600 pixels: more chunks than a per-thread split of 8 per thread would make)
        int saved = Parallel.threads();
        SplittableRandom rnd = new SplittableRandom(8);
        float[] x = random(rnd, 2 * 600 * 16);
        float[] w = random(rnd, 64 * 16 * 9);
        float[] gamma = random(rnd, 64);
        float[] beta = random(rnd, 64);
        float[] lw = random(rnd, 130 * 64);
        float[][] results = new float[3][];
        try {
            for (int threads = 1; threads <= 3; threads++) {
                Parallel.setThreads(threads);
                float[] y = Conv2d.of(w, null, 64, 16, 3, 1, 1).forward(x, 2, 20, 30);
                float[] g = Ops.groupNorm(y, 2, 600, 64, 32, gamma, beta, 1e-5f, false);
                results[threads - 1] = Linear.of(lw, null, 130, 64).forward(g, 1200);
            }
        } finally {
            Parallel.setThreads(saved);
        }
        org.junit.jupiter.api.Assertions.assertArrayEquals(results[0], results[1], "1 vs 2 threads");
        org.junit.jupiter.api.Assertions.assertArrayEquals(results[0], results[2], "1 vs 3 threads");
    }

    @Test
    void linearMatchesOracleWithAndWithoutBias() {
        SplittableRandom rnd = new SplittableRandom(3);
        int[][] shapes = {{1, 3, 5}, {77, 768, 64}, {10, 40, 33}, {37, 100, 320}, {6, 17, 1}};
        for (int[] s : shapes) {
            int rows = s[0];
            int in = s[1];
            int out = s[2];
            float[] x = random(rnd, rows * in);
            float[] w = random(rnd, out * in);
            float[] bias = random(rnd, out);
            float[] mag = Reference.linear(abs(x), rows, abs(w), abs(bias), out, in);
            assertClose("linear " + rows + "x" + in + "->" + out, Reference.linear(x, rows, w, bias, out, in),
                    Linear.of(w, bias, out, in).forward(x, rows), mag, REL, 1e-30);
            assertClose("linear no bias", Reference.linear(x, rows, w, null, out, in),
                    Linear.of(w, null, out, in).forward(x, rows), mag, REL, 1e-30);
        }
    }

    @Test
    void linearAddsIntoResidualAndReadsStridedRows() {
        SplittableRandom rnd = new SplittableRandom(4);
        int rows = 29;
        int in = 45;
        int out = 35;
        float[] x = random(rnd, rows * in);
        float[] w = random(rnd, out * in);
        float[] bias = random(rnd, out);
        Linear lin = Linear.of(w, bias, out, in);
        float[] residual = random(rnd, rows * out);
        float[] expected = Reference.linear(x, rows, w, bias, out, in);
        for (int i = 0; i < expected.length; i++) {
            expected[i] += residual[i];
        }
        float[] mag = Reference.linear(abs(x), rows, abs(w), abs(bias), out, in);
        for (int i = 0; i < mag.length; i++) {
            mag[i] += Math.abs(residual[i]);
        }
        assertClose("linear + residual", expected, lin.forwardAdd(x, rows, residual.clone()), mag, REL, 1e-30);

        // x as the second half of wider rows, y into the middle of wider rows; the other columns stay untouched
        float[] wide = random(rnd, rows * (in + 10));
        float[] xs = new float[rows * in];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(wide, r * (in + 10) + 10, xs, r * in, in);
        }
        float[] y = new float[rows * (out + 7)];
        java.util.Arrays.fill(y, 42f);
        lin.forward(wide, 10, in + 10, rows, y, 3, out + 7, false);
        float[] got = new float[rows * out];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(y, r * (out + 7) + 3, got, r * out, out);
            for (int j = 0; j < out + 7; j++) {
                if (j < 3 || j >= out + 3) {
                    org.junit.jupiter.api.Assertions.assertEquals(42f, y[r * (out + 7) + j], "untouched column " + j);
                }
            }
        }
        assertClose("strided linear", Reference.linear(xs, rows, w, bias, out, in), got,
                Reference.linear(abs(xs), rows, abs(w), abs(bias), out, in), REL, 1e-30);
    }

    /** batch, h, w, in, out, kh, kw, stride, padTop, padLeft, padBottom, padRight */
    private static final int[][] CONV_CASES = {
        {2, 7, 5, 3, 5, 3, 3, 1, 1, 1, 1, 1},
        {1, 9, 9, 17, 33, 3, 3, 1, 1, 1, 1, 1},
        {2, 8, 6, 16, 32, 3, 3, 2, 1, 1, 1, 1},
        {1, 9, 7, 5, 7, 3, 3, 2, 1, 1, 1, 1},
        {2, 8, 8, 6, 9, 3, 3, 2, 0, 0, 1, 1},      // the VAE encoder's downsample: pad right/bottom only
        {1, 7, 10, 4, 40, 3, 3, 2, 0, 0, 1, 1},
        {2, 6, 5, 19, 21, 1, 1, 1, 0, 0, 0, 0},
        {1, 5, 6, 8, 3, 1, 1, 2, 0, 0, 0, 0},
        {1, 12, 11, 3, 4, 3, 3, 1, 0, 0, 0, 0},
        {1, 4, 4, 2, 3, 1, 1, 1, 1, 1, 1, 1},
        {1, 6, 7, 3, 5, 2, 3, 1, 0, 1, 1, 0},
    };

    @Test
    void convMatchesOracleOnBothPaths() {
        SplittableRandom rnd = new SplittableRandom(5);
        for (int[] t : CONV_CASES) {
            int batch = t[0];
            int h = t[1];
            int w = t[2];
            int in = t[3];
            int out = t[4];
            float[] x = random(rnd, batch * h * w * in);
            float[] wt = random(rnd, out * in * t[5] * t[6]);
            float[] bias = random(rnd, out);
            Conv2d conv = Conv2d.of(wt, bias, out, in, t[5], t[6], t[7], t[8], t[9], t[10], t[11]);
            float[] expected = Reference.conv2d(x, batch, h, w, in, wt, bias, out, t[5], t[6], t[7], t[8], t[9],
                    t[10], t[11]);
            float[] mag = Reference.conv2d(abs(x), batch, h, w, in, abs(wt), abs(bias), out, t[5], t[6], t[7], t[8],
                    t[9], t[10], t[11]);
            String name = "conv " + java.util.Arrays.toString(t);
            assertClose(name, expected, conv.forward(x, batch, h, w), mag, REL, 1e-30);
            assertClose(name + " grid", expected, conv.forwardPath(x, batch, h, w, true), mag, REL, 1e-30);
            assertClose(name + " im2col", expected, conv.forwardPath(x, batch, h, w, false), mag, REL, 1e-30);
            // into an array holding garbage: every value overwritten, the same bits as forward
            float[] into = random(rnd, batch * conv.outH(h) * conv.outW(w) * out, 1e6, 2e6);
            assertSame(into, conv.forwardInto(x, batch, h, w, into));
            org.junit.jupiter.api.Assertions.assertArrayEquals(conv.forward(x, batch, h, w), into, name + " into");
        }
    }

    /** forwardInto on Winograd-sized layers (64 channels at 64x64): F(2x2), and F(4x4) where allowed. */
    @Test
    void convForwardIntoOverwritesOnTheWinogradPath() {
        SplittableRandom rnd = new SplittableRandom(6);
        int c = 64;
        Conv2d conv = Conv2d.of(random(rnd, c * c * 9), random(rnd, c), c, c, 3, 1, 1);
        for (Conv2d cv : new Conv2d[] {conv, Conv2d.of(random(rnd, c * c * 9), null, c, c, 3, 1, 1)
                .allowLargeWinogradTiles()}) {
            float[] x = random(rnd, 2 * 64 * 64 * c);
            float[] into = random(rnd, x.length, -1e6, 1e6);
            cv.forwardInto(x, 2, 64, 64, into);
            org.junit.jupiter.api.Assertions.assertArrayEquals(cv.forward(x, 2, 64, 64), into);
        }
    }

    /** Rounds to values the format holds exactly, so the oracle sees the same weights the kernel does. */
    private static float[] representable(float[] w, WeightFormat format) {
        float[] r = new float[w.length];
        for (int i = 0; i < w.length; i++) {
            r[i] = format == WeightFormat.F16 ? Float.float16ToFloat(Float.floatToFloat16(w[i]))
                    : Float.intBitsToFloat(Float.floatToRawIntBits(w[i]) & 0xFFFF0000);
        }
        return r;
    }

    @Test
    void halfPrecisionWeightsAreWidenedExactly() {
        SplittableRandom rnd = new SplittableRandom(6);
        for (WeightFormat format : new WeightFormat[] {WeightFormat.F16, WeightFormat.BF16}) {
            // n = 40 runs the few-panel order, n = 170 the panel-by-panel one; 77 rows leave a tail
            for (int out : new int[] {40, 170}) {
                int rows = 77;
                int in = 300;
                float[] x = random(rnd, rows * in);
                float[] w = representable(random(rnd, out * in), format);
                float[] bias = random(rnd, out);
                Linear lin = Linear.of(w, bias, out, in, format);
                org.junit.jupiter.api.Assertions.assertEquals(Linear.of(w, bias, out, in).weightBytes() / 2,
                        lin.weightBytes(), "16-bit weights take half the memory");
                assertClose("linear " + format + " out " + out, Reference.linear(x, rows, w, bias, out, in),
                        lin.forward(x, rows), Reference.linear(abs(x), rows, abs(w), abs(bias), out, in), REL, 1e-30);
            }
            float[] x = random(rnd, 2 * 9 * 7 * 11);
            float[] w = representable(random(rnd, 13 * 11 * 9), format);
            float[] bias = random(rnd, 13);
            Conv2d conv = Conv2d.of(w, bias, 13, 11, 3, 3, 2, 0, 0, 1, 1, format);
            assertClose("conv " + format, Reference.conv2d(x, 2, 9, 7, 11, w, bias, 13, 3, 3, 2, 0, 0, 1, 1),
                    conv.forward(x, 2, 9, 7),
                    Reference.conv2d(abs(x), 2, 9, 7, 11, abs(w), abs(bias), 13, 3, 3, 2, 0, 0, 1, 1), REL, 1e-30);
        }
    }

    @Test
    void bf16RoundsToNearestEven() {
        // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even one, 1
        org.junit.jupiter.api.Assertions.assertEquals((short) 0x3F80, WeightFormat.BF16.encode(1f + 0x1p-8f));
        org.junit.jupiter.api.Assertions.assertEquals((short) 0x3F81, WeightFormat.BF16.encode(1f + 0x1.8p-8f));
        org.junit.jupiter.api.Assertions.assertEquals((short) 0xBF80, WeightFormat.BF16.encode(-1f));
    }

    @Test
    void parallelSplitBalancesWholeRounds() {
        // 3 row blocks x 20 panels on 2 threads: 2 column blocks give 6 equal tasks, 3 rounds of 10 panels
        org.junit.jupiter.api.Assertions.assertEquals(10, Gemm.panelsPerTask(3, 20, 2));
        // enough row blocks already: no column split (A would be read again per column block)
        org.junit.jupiter.api.Assertions.assertEquals(10, Gemm.panelsPerTask(10, 10, 2));
        // one row block (77 text tokens): half the panels per thread
        org.junit.jupiter.api.Assertions.assertEquals(12, Gemm.panelsPerTask(1, 24, 2));
        org.junit.jupiter.api.Assertions.assertEquals(40, Gemm.panelsPerTask(1, 40, 1));
    }

    @Test
    void badShapesAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> Linear.of(new float[5], null, 2, 3));
        assertThrows(IllegalArgumentException.class, () -> Linear.of(new float[6], new float[3], 2, 3));
        assertThrows(IllegalArgumentException.class, () -> Linear.of(new float[6], null, 2, 3).forward(new float[5], 2));
        assertThrows(IllegalArgumentException.class, () -> Conv2d.of(new float[10], null, 2, 3, 3, 1, 1));
        Conv2d conv = Conv2d.of(new float[2 * 3 * 9], null, 2, 3, 3, 1, 1);
        assertThrows(IllegalArgumentException.class, () -> conv.forward(new float[10], 1, 2, 2));
        float[] x = new float[3 * 4 * 4];
        assertThrows(IllegalArgumentException.class, () -> conv.forwardInto(x, 1, 4, 4, new float[2 * 16 - 1]));
        assertThrows(IllegalArgumentException.class, () -> conv.forwardInto(x, 1, 4, 4, null));
        assertThrows(IllegalArgumentException.class, () -> conv.forwardInto(x, 1, 4, 4, x), "the output is the input");
        Conv2d square = Conv2d.of(new float[3 * 3 * 9], null, 3, 3, 3, 1, 1);
        assertThrows(IllegalArgumentException.class, () -> square.forwardInto(x, 1, 4, 4, x), "the output is the input");
    }
}
