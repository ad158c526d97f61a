package jdiffusion.tensor;

/**
 * The named operations model code calls (besides {@link Linear} and {@link Conv2d}). Same layouts and semantics
 * as {@link Reference}, which is their test oracle.
 */
public final class Ops {
    private Ops() {
    }

    /** Group norm over [B][HW][C] (consecutive channel groups), optionally fused with SiLU; returns a new array. */
    public static float[] groupNorm(float[] x, int batch, int hw, int c, int groups, float[] gamma, float[] beta,
                                    float eps, boolean silu) {
        return Reference.groupNorm(x, batch, hw, c, groups, gamma, beta, eps, silu);
    }

    /** Layer norm of every row of [rows][c]; returns a new array. */
    public static float[] layerNorm(float[] x, int rows, int c, float[] gamma, float[] beta, float eps) {
        return Reference.layerNorm(x, rows, c, gamma, beta, eps);
    }

    /** Softmax of each row, in place. */
    public static void softmaxRows(float[] x, int rows, int cols) {
        Reference.softmaxRows(x, rows, cols);
    }

    /** Multi-head attention, see {@link Reference#attention}. */
    public static float[] attention(float[] q, float[] k, float[] v, int batch, int nq, int nk, int heads, int hd,
                                    boolean causal) {
        return Reference.attention(q, k, v, batch, nq, nk, heads, hd, causal);
    }

    /** C = A (m x k) times B (k x n), row-major. */
    public static float[] matmul(float[] a, float[] b, int m, int n, int k) {
        return Reference.matmul(a, b, m, n, k);
    }

    public static void geluInPlace(float[] x) {
        for (int i = 0; i < x.length; i++) {
            x[i] = Reference.gelu(x[i]);
        }
    }

    public static void quickGeluInPlace(float[] x) {
        for (int i = 0; i < x.length; i++) {
            x[i] = Reference.quickGelu(x[i]);
        }
    }

    public static void siluInPlace(float[] x) {
        for (int i = 0; i < x.length; i++) {
            x[i] = Reference.silu(x[i]);
        }
    }

    /** GEGLU of rows [a | gate]: a * gelu(gate). */
    public static float[] geglu(float[] x, int rows, int inner) {
        return Reference.geglu(x, rows, inner);
    }

    /** Nearest-neighbour resize of NHWC images (2x upsampling, or to a skip tensor's odd size). */
    public static float[] resizeNearest(float[] x, int batch, int h, int w, int c, int oh, int ow) {
        return Reference.resizeNearest(x, batch, h, w, c, oh, ow);
    }

    /** a += b, elementwise. */
    public static void addInPlace(float[] a, float[] b) {
        if (a.length != b.length) {
            throw new IllegalArgumentException("length mismatch " + a.length + " vs " + b.length);
        }
        for (int i = 0; i < a.length; i++) {
            a[i] += b[i];
        }
    }

    /** x[b][p][c] += v[b][c] for [B][rows][C] (per-image channel bias, e.g. the time embedding). */
    public static void addPerImageChannels(float[] x, int batch, int rows, int c, float[] v) {
        for (int b = 0; b < batch; b++) {
            for (int p = 0; p < rows; p++) {
                int base = (b * rows + p) * c;
                for (int j = 0; j < c; j++) {
                    x[base + j] += v[b * c + j];
                }
            }
        }
    }

    /** Concatenates along channels: [N][ca] and [N][cb] into [N][ca+cb] (UNet skip connections). */
    public static float[] concatChannels(float[] a, int ca, float[] b, int cb, int n) {
        float[] y = new float[n * (ca + cb)];
        for (int i = 0; i < n; i++) {
            System.arraycopy(a, i * ca, y, i * (ca + cb), ca);
            System.arraycopy(b, i * cb, y, i * (ca + cb) + ca, cb);
        }
        return y;
    }

    /** [B][C][H][W] to [B][H][W][C]. */
    public static float[] nchwToNhwc(float[] x, int batch, int c, int h, int w) {
        float[] y = new float[x.length];
        for (int b = 0; b < batch; b++) {
            for (int ch = 0; ch < c; ch++) {
                for (int p = 0; p < h * w; p++) {
                    y[(b * h * w + p) * c + ch] = x[(b * c + ch) * h * w + p];
                }
            }
        }
        return y;
    }

    /** [B][H][W][C] to [B][C][H][W]. */
    public static float[] nhwcToNchw(float[] x, int batch, int c, int h, int w) {
        float[] y = new float[x.length];
        for (int b = 0; b < batch; b++) {
            for (int ch = 0; ch < c; ch++) {
                for (int p = 0; p < h * w; p++) {
                    y[(b * c + ch) * h * w + p] = x[(b * h * w + p) * c + ch];
                }
            }
        }
        return y;
    }
}
