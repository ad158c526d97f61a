package jdiffusion.tensor;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/**
 * The named operations model code calls (besides {@link Linear} and {@link Conv2d}). Same layouts and semantics
 * as {@link Reference}, which is their test oracle.
 */
public final class Ops {
    private Ops() {
    }

    /** Below this many elements an elementwise op runs on the calling thread (a fork costs more than the work). */
    private static final int PARALLEL_MIN = 1 << 15;
    /** Pixels per float partial sum in the norms: short runs keep float rounding small before a double total. */
    private static final int NORM_RUN = 64;
    /** Most pixel chunks a group norm's statistics are split into (enough to keep 16 threads busy). */
    private static final int NORM_CHUNKS = 64;

    /** Group norm over [B][HW][C] (consecutive channel groups), optionally fused with SiLU; returns a new array. */
    public static float[] groupNorm(float[] x, int batch, int hw, int c, int groups, float[] gamma, float[] beta,
                                    float eps, boolean silu) {
        float[] y = new float[x.length];
        groupNormInto(x, y, batch, hw, c, groups, gamma, beta, eps, silu);
        return y;
    }

    /**
     * {@link #groupNorm} into y, which may be x itself (in place: every value is read once, after the statistics, and
     * written back where it was), so a caller that owns x needs no second array of its size.
     */
    public static void groupNormInto(float[] x, float[] y, int batch, int hw, int c, int groups, float[] gamma,
                                     float[] beta, float eps, boolean silu) {
        if (groups < 1 || c % groups != 0) {
            throw new IllegalArgumentException("group norm: " + c + " channels do not split into " + groups + " groups");
        }
        if (x.length != batch * hw * c || gamma.length != c || beta.length != c) {
            throw new IllegalArgumentException("group norm: input " + x.length + ", gamma " + gamma.length + ", beta "
                    + beta.length + " do not fit " + batch + "x" + hw + "x" + c);
        }
        if (y.length != x.length) {
            throw new IllegalArgumentException("group norm: output " + y.length + " does not fit input " + x.length);
        }
        // a fixed chunking (not one per thread) keeps the summation order, and so the bits, the same for any -t
        int chunks = Math.max(1, Math.min((hw + NORM_RUN - 1) / NORM_RUN, NORM_CHUNKS));
        int per = (hw + chunks - 1) / chunks;
        double[][] partial = new double[batch * chunks][];
        // pass 1: per-channel sums, then group means; pass 2: centred squares (no E[x^2] - mean^2 cancellation)
        Parallel.forRange(batch * chunks, t -> partial[t] = channelSums(x, t / chunks, hw, c, t % chunks * per, per, null));
        float[][] mean = groupStats(partial, batch, chunks, c, groups, hw, null, eps);
        Parallel.forRange(batch * chunks,
                t -> partial[t] = channelSums(x, t / chunks, hw, c, t % chunks * per, per, mean[t / chunks]));
        float[][] inv = groupStats(partial, batch, chunks, c, groups, hw, mean, eps);
        Parallel.forRange(batch * chunks, t -> {
            int b = t / chunks;
            float[] scale = new float[c];
            for (int ch = 0; ch < c; ch++) {
                scale[ch] = inv[b][ch] * gamma[ch];
            }
            int p0 = t % chunks * per;
            int p1 = Math.min(hw, p0 + per);
            for (int p = p0; p < p1; p++) {
                affineRow(x, y, (b * hw + p) * c, c, mean[b], scale, beta, silu);
            }
        });
    }

    /** Per-channel sums over pixels [p0, p0+count) of image b: of x, or of (x - centre)^2 when centre is given. */
    private static double[] channelSums(float[] x, int b, int hw, int c, int p0, int count, float[] centre) {
        double[] total = new double[c];
        float[] run = new float[c];
        int p1 = Math.min(hw, p0 + count);
        int bound = Vec.S.loopBound(c);
        for (int r0 = p0; r0 < p1; r0 += NORM_RUN) {
            java.util.Arrays.fill(run, 0f);
            for (int p = r0; p < Math.min(p1, r0 + NORM_RUN); p++) {
                int base = (b * hw + p) * c;
                int j = 0;
                for (; j < bound; j += Vec.L) {
                    FloatVector v = FloatVector.fromArray(Vec.S, x, base + j);
                    if (centre != null) {
                        v = v.sub(FloatVector.fromArray(Vec.S, centre, j));
                        v = v.mul(v);
                    }
                    v.add(FloatVector.fromArray(Vec.S, run, j)).intoArray(run, j);
                }
                for (; j < c; j++) {
                    float v = x[base + j];
                    if (centre != null) {
                        v -= centre[j];
                        v *= v;
                    }
                    run[j] += v;
                }
            }
            for (int j = 0; j < c; j++) {
                total[j] += run[j];
            }
        }
        return total;
    }

    /**
     * Combines the chunks' channel sums into one value per group, spread back over its channels: the mean when
     * mean is null, else 1/sqrt(variance + eps).
     */
    private static float[][] groupStats(double[][] partial, int batch, int chunks, int c, int groups, int hw,
                                        float[][] mean, float eps) {
        int cg = c / groups;
        float[][] out = new float[batch][c];
        for (int b = 0; b < batch; b++) {
            for (int g = 0; g < groups; g++) {
                double s = 0;
                for (int t = 0; t < chunks; t++) {
                    for (int j = 0; j < cg; j++) {
                        s += partial[b * chunks + t][g * cg + j];
                    }
                }
                double avg = s / ((double) hw * cg);
                float v = (float) (mean == null ? avg : 1.0 / Math.sqrt(avg + eps));
                java.util.Arrays.fill(out[b], g * cg, (g + 1) * cg, v);
            }
        }
        return out;
    }

    /**
     * y = (x - mean) * scale + shift over one row of c channels, then SiLU if asked. The mean is subtracted first:
     * folding it into the shift would cancel catastrophically when the variance is tiny and the scale large.
     */
    private static void affineRow(float[] x, float[] y, int base, int c, float[] mean, float[] scale, float[] shift,
                                  boolean silu) {
        int bound = Vec.S.loopBound(c);
        int j = 0;
        for (; j < bound; j += Vec.L) {
            FloatVector v = FloatVector.fromArray(Vec.S, x, base + j).sub(FloatVector.fromArray(Vec.S, mean, j))
                    .fma(FloatVector.fromArray(Vec.S, scale, j), FloatVector.fromArray(Vec.S, shift, j));
            (silu ? Vec.silu(v) : v).intoArray(y, base + j);
        }
        for (; j < c; j++) {
            float v = (x[base + j] - mean[j]) * scale[j] + shift[j];
            y[base + j] = silu ? Vec.silu(v) : v;
        }
    }

    /** Layer norm of every row of [rows][c]; beta may be null; returns a new array. */
    public static float[] layerNorm(float[] x, int rows, int c, float[] gamma, float[] beta, float eps) {
        if (x.length != rows * c || gamma.length != c || (beta != null && beta.length != c)) {
            throw new IllegalArgumentException("layer norm: input " + x.length + " or gamma/beta do not fit " + rows + "x" + c);
        }
        float[] y = new float[x.length];
        float[] shift = beta == null ? new float[c] : beta;
        forChunks(rows, (long) rows * c, (r0, r1) -> {
            float[] scale = new float[c];
            float[] means = new float[c];
            for (int r = r0; r < r1; r++) {
                int base = r * c;
                float mean = (float) (sum(x, base, c) / c);
                float inv = (float) (1.0 / Math.sqrt(centredSquares(x, base, c, mean) / c + eps));
                for (int j = 0; j < c; j++) {
                    scale[j] = gamma[j] * inv;
                }
                java.util.Arrays.fill(means, mean);
                affineRow(x, y, base, c, means, scale, shift, false);
            }
        });
        return y;
    }

    /** Sum of x[base..base+n). */
    private static double sum(float[] x, int base, int n) {
        int bound = Vec.S.loopBound(n);
        int j = 0;
        FloatVector acc = FloatVector.zero(Vec.S);
        for (; j < bound; j += Vec.L) {
            acc = acc.add(FloatVector.fromArray(Vec.S, x, base + j));
        }
        double s = Vec.sumLanes(acc);
        for (; j < n; j++) {
            s += x[base + j];
        }
        return s;
    }

    /** Sum of (x - mean)^2 over x[base..base+n). */
    private static double centredSquares(float[] x, int base, int n, float mean) {
        int bound = Vec.S.loopBound(n);
        int j = 0;
        FloatVector acc = FloatVector.zero(Vec.S);
        for (; j < bound; j += Vec.L) {
            FloatVector d = FloatVector.fromArray(Vec.S, x, base + j).sub(mean);
            acc = d.fma(d, acc);
        }
        double s = Vec.sumLanes(acc);
        for (; j < n; j++) {
            double d = x[base + j] - mean;
            s += d * d;
        }
        return s;
    }

    /** Runs body(r0, r1) over chunks of [0, rows), in parallel when the total work is worth a fork. */
    static void forChunks(int rows, long work, RowRange body) {
        if (rows <= 0) {
            return;
        }
        int chunks = work < PARALLEL_MIN ? 1 : Math.min(rows, 4 * Parallel.threads());
        int per = (rows + chunks - 1) / chunks;
        Parallel.forRange((rows + per - 1) / per, t -> body.run(t * per, Math.min(rows, (t + 1) * per)));
    }

    @FunctionalInterface
    interface RowRange {
        void run(int r0, int r1);
    }

    /**
     * The elementwise functions of the in-place activations. Each public method hands the pool its own lambda that
     * calls {@link #range} on a constant, so the JIT compiles one loop per function with the switch folded away: one
     * shared loop calling the functions through a lambda or a variable becomes megamorphic once several have run, and
     * the JIT then boxes every vector (silu measured 5.3x slower after gelu, quick-gelu and relu had gone through a
     * shared lambda loop, 2.4x through a shared switch).
     */
    private enum Unary {
        GELU, QUICK_GELU, SILU, RELU;

        /**
         * x[j] = f(x[j]) for the 1024-value blocks [b0, b1): one vector loop per function, chosen once (a switch
         * inside one loop merges the functions' vectors and the JIT boxes them).
         */
        void range(float[] x, int b0, int b1) {
            int start = b0 * 1024;
            int end = Math.min(x.length, b1 * 1024);
            int bound = start + Vec.S.loopBound(end - start);
            switch (this) {
                case GELU -> {
                    for (int j = start; j < bound; j += Vec.L) {
                        Vec.gelu(FloatVector.fromArray(Vec.S, x, j)).intoArray(x, j);
                    }
                }
                case QUICK_GELU -> {
                    for (int j = start; j < bound; j += Vec.L) {
                        Vec.quickGelu(FloatVector.fromArray(Vec.S, x, j)).intoArray(x, j);
                    }
                }
                case SILU -> {
                    for (int j = start; j < bound; j += Vec.L) {
                        Vec.silu(FloatVector.fromArray(Vec.S, x, j)).intoArray(x, j);
                    }
                }
                case RELU -> {
                    for (int j = start; j < bound; j += Vec.L) {
                        FloatVector v = FloatVector.fromArray(Vec.S, x, j);
                        v.blend(0f, v.lt(0f)).intoArray(x, j);
                    }
                }
            }
            for (int j = bound; j < end; j++) {
                float v = x[j];
                x[j] = switch (this) {
                    case GELU -> Vec.gelu(v);
                    case QUICK_GELU -> Vec.quickGelu(v);
                    case SILU -> Vec.silu(v);
                    case RELU -> v < 0f ? 0f : v;
                };
            }
        }
    }

    /** Runs body over x's 1024-value blocks, spread over the pool when x is large. */
    private static void forBlocks(int length, RowRange body) {
        forChunks((length + 1023) / 1024, length, body);
    }

    /** Softmax of each row, in place. */
    public static void softmaxRows(float[] x, int rows, int cols) {
        if (x.length < rows * cols) {
            throw new IllegalArgumentException("softmax: " + x.length + " values, need " + rows + "x" + cols);
        }
        forChunks(rows, (long) rows * cols, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                softmaxRow(x, r * cols, cols, 1f);
            }
        });
    }

    /** exp(scale * (x - max)) normalised to sum 1 over one row; returns nothing, writes in place. */
    static void softmaxRow(float[] x, int base, int n, float scale) {
        float max = max(x, base, n);
        float sum = expShifted(x, base, n, scale, max * scale);
        scaleRow(x, base, n, 1f / sum);
    }

    static float max(float[] x, int base, int n) {
        int bound = Vec.S.loopBound(n);
        int j = 0;
        float m = Float.NEGATIVE_INFINITY;
        if (bound > 0) {
            FloatVector mv = FloatVector.broadcast(Vec.S, Float.NEGATIVE_INFINITY);
            for (; j < bound; j += Vec.L) {
                mv = mv.max(FloatVector.fromArray(Vec.S, x, base + j));
            }
            m = mv.reduceLanes(VectorOperators.MAX);
        }
        for (; j < n; j++) {
            m = Math.max(m, x[base + j]);
        }
        return m;
    }

    /** x = exp(x * scale - shift) in place; returns the sum. */
    static float expShifted(float[] x, int base, int n, float scale, float shift) {
        int bound = Vec.S.loopBound(n);
        int j = 0;
        FloatVector acc = FloatVector.zero(Vec.S);
        for (; j < bound; j += Vec.L) {
            FloatVector e = Vec.exp(FloatVector.fromArray(Vec.S, x, base + j).mul(scale).sub(shift));
            e.intoArray(x, base + j);
            acc = acc.add(e);
        }
        float sum = Vec.sumLanes(acc);
        for (; j < n; j++) {
            float e = Vec.exp(x[base + j] * scale - shift);
            x[base + j] = e;
            sum += e;
        }
        return sum;
    }

    static void scaleRow(float[] x, int base, int n, float s) {
        int bound = Vec.S.loopBound(n);
        int j = 0;
        for (; j < bound; j += Vec.L) {
            FloatVector.fromArray(Vec.S, x, base + j).mul(s).intoArray(x, base + j);
        }
        for (; j < n; j++) {
            x[base + j] *= s;
        }
    }

    /** Multi-head attention, see {@link Reference#attention}; streams over keys (see {@link Attention}). */
    public static float[] attention(float[] q, float[] k, float[] v, int batch, int nq, int nk, int heads, int hd,
                                    boolean causal) {
        return Attention.forward(q, k, v, batch, nq, nk, heads, hd, causal);
    }

    /**
     * The same with the products in bf16 when bf16 is true (pass the precision the model's projections were built
     * with, {@link Linear#nativeBf16()}) and oneDNN runs; fp32 otherwise.
     */
    public static float[] attention(float[] q, float[] k, float[] v, int batch, int nq, int nk, int heads, int hd,
                                    boolean causal, boolean bf16) {
        return Attention.forward(q, k, v, batch, nq, nk, heads, hd, causal, bf16);
    }

    /** C = A (m x k) times B (k x n), row-major. */
    public static float[] matmul(float[] a, float[] b, int m, int n, int k) {
        if (a.length < m * k || b.length < k * n) {
            throw new IllegalArgumentException("matmul: operands " + a.length + ", " + b.length + " do not fit "
                    + m + "x" + k + " times " + k + "x" + n);
        }
        return Gemm.matmul(a, b, m, n, k);
    }

    /** C = A (m x k) times B^T, where B is n x k row-major (scores q k^T without transposing k). */
    public static float[] matmulTransposed(float[] a, float[] b, int m, int n, int k) {
        if (a.length < m * k || b.length < n * k) {
            throw new IllegalArgumentException("matmulTransposed: operands " + a.length + ", " + b.length
                    + " do not fit " + m + "x" + k + " times (" + n + "x" + k + ")^T");
        }
        float[] c = new float[m * n];
        Gemm.multiply(new Gemm.Dense(a, 0, k), m, Gemm.pack(b, 0, 1, k, k, n), c, 0, n, null, false);
        return c;
    }

    public static void geluInPlace(float[] x) {
        forBlocks(x.length, (b0, b1) -> Unary.GELU.range(x, b0, b1));
    }

    public static void quickGeluInPlace(float[] x) {
        forBlocks(x.length, (b0, b1) -> Unary.QUICK_GELU.range(x, b0, b1));
    }

    public static void siluInPlace(float[] x) {
        forBlocks(x.length, (b0, b1) -> Unary.SILU.range(x, b0, b1));
    }

    /** x = relu(x) in place: negative values become 0 (-0 and NaN stay as they are, as {@code x < 0 ? 0 : x}). */
    public static void reluInPlace(float[] x) {
        forBlocks(x.length, (b0, b1) -> Unary.RELU.range(x, b0, b1));
    }

    /** a = max(a + b, 0) elementwise (a residual sum and its ReLU in one pass), with {@link Math#max}'s semantics. */
    public static void addReluInPlace(float[] a, float[] b) {
        sameLength(a, b);
        forBlocks(a.length, (b0, b1) -> addRange(a, b, b0, b1, true));
    }

    /** GEGLU of rows [a | gate]: a * gelu(gate). */
    public static float[] geglu(float[] x, int rows, int inner) {
        if (x.length != rows * 2 * inner) {
            throw new IllegalArgumentException("geglu: " + x.length + " values, expected " + rows + "x" + 2 * inner);
        }
        float[] y = new float[rows * inner];
        forChunks(rows, (long) rows * inner, (r0, r1) -> {
            int bound = Vec.S.loopBound(inner);
            for (int r = r0; r < r1; r++) {
                int src = r * 2 * inner;
                int dst = r * inner;
                int j = 0;
                for (; j < bound; j += Vec.L) {
                    FloatVector gate = Vec.gelu(FloatVector.fromArray(Vec.S, x, src + inner + j));
                    FloatVector.fromArray(Vec.S, x, src + j).mul(gate).intoArray(y, dst + j);
                }
                for (; j < inner; j++) {
                    y[dst + j] = x[src + j] * Vec.gelu(x[src + inner + j]);
                }
            }
        });
        return y;
    }

    /** Nearest-neighbour resize of NHWC images (2x upsampling, or to a skip tensor's odd size). */
    public static float[] resizeNearest(float[] x, int batch, int h, int w, int c, int oh, int ow) {
        if (x.length != batch * h * w * c) {
            throw new IllegalArgumentException("resize: " + x.length + " values, expected " + batch + "x" + h + "x" + w + "x" + c);
        }
        float[] y = new float[batch * oh * ow * c];
        forChunks(batch * oh, (long) y.length, (r0, r1) -> {
            for (int row = r0; row < r1; row++) {
                int b = row / oh;
                int oy = row % oh;
                int iy = (int) Math.floor(oy * ((double) h / oh));
                for (int ox = 0; ox < ow; ox++) {
                    int ix = (int) Math.floor(ox * ((double) w / ow));
                    System.arraycopy(x, ((b * h + iy) * w + ix) * c, y, ((b * oh + oy) * ow + ox) * c, c);
                }
            }
        });
        return y;
    }

    /** a += b, elementwise. */
    public static void addInPlace(float[] a, float[] b) {
        sameLength(a, b);
        forBlocks(a.length, (b0, b1) -> addRange(a, b, b0, b1, false));
    }

    /** a = a + b, or max(a + b, 0) with relu, for the 1024-value blocks [b0, b1) (a constant flag: see Unary). */
    private static void addRange(float[] a, float[] b, int b0, int b1, boolean relu) {
        int end = Math.min(a.length, b1 * 1024);
        int bound = b0 * 1024 + Vec.S.loopBound(end - b0 * 1024);
        int j = b0 * 1024;
        for (; j < bound; j += Vec.L) {
            FloatVector v = FloatVector.fromArray(Vec.S, a, j).add(FloatVector.fromArray(Vec.S, b, j));
            (relu ? v.max(0f) : v).intoArray(a, j);
        }
        for (; j < end; j++) {
            a[j] = relu ? Math.max(a[j] + b[j], 0f) : a[j] + b[j];
        }
    }

    private static void sameLength(float[] a, float[] b) {
        if (a.length != b.length) {
            throw new IllegalArgumentException("length mismatch " + a.length + " vs " + b.length);
        }
    }

    /** x[b][p][c] += v[b][c] for [B][rows][C] (per-image channel bias, e.g. the time embedding). */
    public static void addPerImageChannels(float[] x, int batch, int rows, int c, float[] v) {
        if (x.length != batch * rows * c || v.length != batch * c) {
            throw new IllegalArgumentException("addPerImageChannels: " + x.length + " and " + v.length
                    + " values do not fit " + batch + "x" + rows + "x" + c);
        }
        int bound = Vec.S.loopBound(c);
        forChunks(batch * rows, (long) x.length, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int base = r * c;
                int vb = r / rows * c;
                int j = 0;
                for (; j < bound; j += Vec.L) {
                    FloatVector.fromArray(Vec.S, x, base + j).add(FloatVector.fromArray(Vec.S, v, vb + j))
                            .intoArray(x, base + j);
                }
                for (; j < c; j++) {
                    x[base + j] += v[vb + j];
                }
            }
        });
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
