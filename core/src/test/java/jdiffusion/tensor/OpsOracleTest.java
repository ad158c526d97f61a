package jdiffusion.tensor;

import static jdiffusion.tensor.Oracle.abs;
import static jdiffusion.tensor.Oracle.assertClose;
import static jdiffusion.tensor.Oracle.random;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The vectorised operations of {@link Ops} against the scalar oracle, with odd sizes and batch > 1. */
class OpsOracleTest {
    @Test
    void groupNormMatchesOracle() {
        SplittableRandom rnd = new SplittableRandom(11);
        // batch, hw, c, groups
        int[][] cases = {{2, 67, 96, 32}, {1, 5, 3, 1}, {3, 1, 64, 32}, {1, 300, 40, 8}, {2, 33, 18, 9}};
        for (int[] t : cases) {
            int n = t[0] * t[1] * t[2];
            // an offset mean of 3 exercises the centred variance (E[x^2] - mean^2 would lose digits)
            float[] x = random(rnd, n, 2, 4);
            float[] gamma = random(rnd, t[2]);
            float[] beta = random(rnd, t[2]);
            for (boolean silu : new boolean[] {false, true}) {
                float[] expected = Reference.groupNorm(x, t[0], t[1], t[2], t[3], gamma, beta, 1e-5f, silu);
                float[] actual = Ops.groupNorm(x, t[0], t[1], t[2], t[3], gamma, beta, 1e-5f, silu);
                // normalised values are O(1); float32 statistics and affine are good to a few 1e-6
                assertClose("group norm " + java.util.Arrays.toString(t) + " silu " + silu, expected, actual, null,
                        1e-5, 1e-5);
            }
        }
    }

    @Test
    void layerNormMatchesOracle() {
        SplittableRandom rnd = new SplittableRandom(12);
        int[][] cases = {{5, 77}, {3, 1280}, {1, 1}, {20, 17}, {77, 768}};
        for (int[] t : cases) {
            float[] x = random(rnd, t[0] * t[1], -3, 5);
            float[] gamma = random(rnd, t[1]);
            float[] beta = random(rnd, t[1]);
            assertClose("layer norm " + t[0] + "x" + t[1], Reference.layerNorm(x, t[0], t[1], gamma, beta, 1e-5f),
                    Ops.layerNorm(x, t[0], t[1], gamma, beta, 1e-5f), null, 1e-5, 1e-5);
            assertClose("layer norm without beta", Reference.layerNorm(x, t[0], t[1], gamma, null, 1e-5f),
                    Ops.layerNorm(x, t[0], t[1], gamma, null, 1e-5f), null, 1e-5, 1e-5);
        }
    }

    @Test
    void softmaxMatchesOracle() {
        SplittableRandom rnd = new SplittableRandom(13);
        for (int cols : new int[] {1, 7, 16, 33, 77, 300}) {
            int rows = 5;
            float[] x = random(rnd, rows * cols, -20, 20);
            float[] expected = x.clone();
            Reference.softmaxRows(expected, rows, cols);
            float[] actual = x.clone();
            Ops.softmaxRows(actual, rows, cols);
            assertClose("softmax " + rows + "x" + cols, expected, actual, null, 2e-6, 1e-9);
        }
    }

    /** batch, nq, nk, heads, hd, causal */
    private static final int[][] ATTENTION_CASES = {
        {2, 37, 300, 3, 40, 0},     // crosses a key block, odd query count
        {1, 77, 77, 2, 64, 1},      // CLIP: causal self-attention
        {1, 200, 77, 2, 40, 0},     // cross-attention: queries cross a query block
        {2, 1, 1, 1, 7, 0},
        {1, 5, 9, 4, 3, 1},
        {1, 300, 530, 1, 8, 1},     // causal over several key and query blocks
        {1, 70, 600, 2, 80, 0},
    };

    @Test
    void attentionMatchesOracle() {
        SplittableRandom rnd = new SplittableRandom(14);
        for (int[] t : ATTENTION_CASES) {
            int c = t[3] * t[4];
            float[] q = random(rnd, t[0] * t[1] * c, -2, 2);
            float[] k = random(rnd, t[0] * t[2] * c, -2, 2);
            float[] v = random(rnd, t[0] * t[2] * c);
            boolean causal = t[5] == 1;
            float[] expected = Reference.attention(q, k, v, t[0], t[1], t[2], t[3], t[4], causal);
            float[] actual = Ops.attention(q, k, v, t[0], t[1], t[2], t[3], t[4], causal);
            // outputs are convex combinations of v (|v| <= 1): an absolute tolerance fits; scores carry float32
            // dot-product rounding (~1e-6 relative) into the weights
            assertClose("attention " + java.util.Arrays.toString(t), expected, actual, null, 0, 2e-5);
        }
    }

    @Test
    void activationsMatchOracle() {
        SplittableRandom rnd = new SplittableRandom(15);
        float[] x = random(rnd, 1000 + 13, -12, 12);
        float[] extremes = {0f, -0f, 1e-30f, -1e-30f, 100f, -100f, 88f, -88f, 1e6f, -1e6f, 5.5f, -5.5f};
        System.arraycopy(extremes, 0, x, 0, extremes.length);
        float[] gelu = x.clone();
        Ops.geluInPlace(gelu);
        float[] quick = x.clone();
        Ops.quickGeluInPlace(quick);
        float[] silu = x.clone();
        Ops.siluInPlace(silu);
        for (int i = 0; i < x.length; i++) {
            // erf good to ~1.2e-7 absolute, scaled by x/2 in GELU; sigmoid via float exp is good to a few ulps
            double scale = Math.max(1, Math.abs(x[i]));
            check("gelu", x[i], Reference.gelu(x[i]), gelu[i], 3e-7 * scale);
            check("quick gelu", x[i], Reference.quickGelu(x[i]), quick[i], 3e-7 * scale);
            check("silu", x[i], Reference.silu(x[i]), silu[i], 3e-7 * scale);
        }
    }

    private static void check(String what, float x, float expected, float actual, double tol) {
        if (!(Math.abs((double) expected - actual) <= tol)) {
            throw new AssertionError(what + "(" + x + ") = " + actual + ", expected " + expected);
        }
    }

    @Test
    void largeActivationArraysUseEveryChunk() {
        SplittableRandom rnd = new SplittableRandom(16);
        float[] x = random(rnd, (1 << 16) + 5, -6, 6);
        float[] y = x.clone();
        Ops.siluInPlace(y);
        for (int i = 0; i < x.length; i++) {
            check("silu", x[i], Reference.silu(x[i]), y[i], 3e-7 * Math.max(1, Math.abs(x[i])));
        }
    }

    /** ReLU and the residual add-ReLU against their scalar forms, bit for bit, -0, NaN and the vector tail included. */
    @Test
    void reluAndAddReluMatchTheScalarForms() {
        SplittableRandom rnd = new SplittableRandom(19);
        for (int n : new int[] {1, 15, 1000, (1 << 16) + 7}) {
            float[] x = random(rnd, n, -3, 3);
            float[] b = random(rnd, n, -3, 3);
            x[0] = -0f;
            if (n > 2) {
                x[1] = Float.NaN;
                b[2] = -x[2]; // a sum of exactly 0
            }
            float[] relu = x.clone();
            Ops.reluInPlace(relu);
            float[] sum = x.clone();
            Ops.addReluInPlace(sum, b);
            for (int i = 0; i < n; i++) {
                float r = x[i] < 0f ? 0f : x[i];
                float s = Math.max(x[i] + b[i], 0f);
                org.junit.jupiter.api.Assertions.assertEquals(Float.floatToRawIntBits(r),
                        Float.floatToRawIntBits(relu[i]), "relu(" + x[i] + ") at " + i + " of " + n);
                org.junit.jupiter.api.Assertions.assertEquals(Float.floatToRawIntBits(s),
                        Float.floatToRawIntBits(sum[i]), "max(" + x[i] + " + " + b[i] + ", 0) at " + i + " of " + n);
            }
        }
    }

    @Test
    void gegluMatchesOracle() {
        SplittableRandom rnd = new SplittableRandom(17);
        for (int inner : new int[] {1, 16, 37, 160}) {
            int rows = 9;
            float[] x = random(rnd, rows * 2 * inner, -5, 5);
            float[] expected = Reference.geglu(x, rows, inner);
            assertClose("geglu " + inner, expected, Ops.geglu(x, rows, inner),
                    Reference.geglu(abs(x), rows, inner), 1e-6, 1e-6);
        }
    }

    @Test
    void resizeAndElementwiseMatchOracle() {
        SplittableRandom rnd = new SplittableRandom(18);
        float[] img = random(rnd, 2 * 5 * 3 * 7);
        assertArrayEquals(Reference.resizeNearest(img, 2, 5, 3, 7, 10, 6), Ops.resizeNearest(img, 2, 5, 3, 7, 10, 6));
        assertArrayEquals(Reference.resizeNearest(img, 2, 5, 3, 7, 9, 7), Ops.resizeNearest(img, 2, 5, 3, 7, 9, 7));

        float[] a = random(rnd, 40000 + 3);
        float[] b = random(rnd, a.length);
        float[] sum = a.clone();
        Ops.addInPlace(sum, b);
        for (int i = 0; i < a.length; i++) {
            org.junit.jupiter.api.Assertions.assertEquals(a[i] + b[i], sum[i], "a + b at " + i);
        }

        int batch = 2;
        int rows = 11;
        int c = 19;
        float[] x = random(rnd, batch * rows * c);
        float[] v = random(rnd, batch * c);
        float[] got = x.clone();
        Ops.addPerImageChannels(got, batch, rows, c, v);
        for (int bi = 0; bi < batch; bi++) {
            for (int p = 0; p < rows; p++) {
                for (int j = 0; j < c; j++) {
                    int idx = (bi * rows + p) * c + j;
                    org.junit.jupiter.api.Assertions.assertEquals(x[idx] + v[bi * c + j], got[idx], "at " + idx);
                }
            }
        }
    }
}
