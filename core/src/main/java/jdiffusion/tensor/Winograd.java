package jdiffusion.tensor;

import java.util.concurrent.ConcurrentLinkedQueue;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * Winograd F(m x m, 3 x 3) for stride-1 3x3 convolutions on NHWC activations (Lavin and Gray, "Fast Algorithms for
 * Convolutional Neural Networks", 2016), m = 2 (4 x 4 input tiles) or m = 4 (6 x 6 tiles).
 *
 * <p>The weights are transformed once, U = G g G^T for every (output, input) channel pair, into t*t matrices
 * [in x out] (t = m + 2) packed for {@link Gemm}. A call cuts the output into m x m tiles and works through them
 * in chunks of at most {@link #MAX_CHUNK} tiles, one chunk per task on the thread pool: each input tile's
 * transform V = B^T d B (vectorised across channels, NHWC keeps them contiguous) goes into t*t matrices
 * [tiles x in], t*t GEMMs give M = V U, and the inverse transform A^T M A plus the bias writes the m x m output
 * pixels. Scratch is one chunk per thread (a few MB), never a multiple of the activation.
 *
 * <p>The multiplies per output pixel drop from 9 to 4 (m = 2) or 2.25 (m = 4) per channel pair; the transforms
 * add a few additions per channel and pixel, and U is t*t/9 times the weights (kept in float32 whatever the
 * checkpoint's format: rounding U to 16 bits would add an error the direct path does not have). {@link Cache}
 * decides per call, by shape, whether a layer runs this way; system property {@value #PROPERTY} overrides it.
 */
final class Winograd {
    private static final VectorSpecies<Float> S = Gemm.S;
    private static final int L = Gemm.L;

    /**
     * System property: auto (the default: F(2x2,3x3) where the shape pays), direct (never Winograd, for A/B runs), f2 or f4 (Winograd
     * F(2x2,3x3) or F(4x4,3x3) on every stride-1 3x3 convolution, whatever its size: tests and measurements).
     */
    static final String PROPERTY = "jdiffusion.conv";
    /** Fewest input and output channels for the automatic choice (below, the transforms outweigh the savings). */
    static final int MIN_CHANNELS = 64;
    /** Fewest tiles (GEMM rows) per call for the automatic choice. */
    static final int MIN_TILES = 256;
    /**
     * Most bytes of transformed weights per tile for the automatic choice: layers with many channels on small
     * images (the UNet's 16x16 and 8x8 levels) are bound by reading their weights, which U makes larger (and U
     * would cost memory for little gain there).
     */
    static final long MAX_U_BYTES_PER_TILE = 32 << 10;
    /** Tiles per task at most. */
    static final int MAX_CHUNK = 256;
    /** Floats of per-thread scratch a chunk aims to stay within. */
    static final int CHUNK_FLOATS = 4 << 20;

    private static final double[][] G2 = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    private static final double[][] G4 = {
        {1.0 / 4, 0, 0},
        {-1.0 / 6, -1.0 / 6, -1.0 / 6},
        {-1.0 / 6, 1.0 / 6, -1.0 / 6},
        {1.0 / 24, 1.0 / 12, 1.0 / 6},
        {1.0 / 24, -1.0 / 12, 1.0 / 6},
        {0, 0, 1},
    };

    /** Output tile size (2 or 4). */
    final int m;
    /** Input tile size m + 2. */
    final int t;
    final int in;
    final int out;
    /** t*t packed [in x out] matrices of U. */
    private final Gemm.PackedB[] u;
    /** Row stride of the transformed input (in rounded up to whole vectors). */
    private final int ldv;
    /** Row stride of the GEMM results (out rounded up to whole panels). */
    private final int ldm;

    /**
     * From a convolution's packed weights: B [(tap, channel) x out], k = (ky*3 + kx)*in + c, as {@link Conv2d}
     * packs them.
     */
    Winograd(Gemm.PackedB direct, int in, int out, int m) {
        if (m != 2 && m != 4) {
            throw new IllegalArgumentException("Winograd output tile must be 2 or 4, got " + m);
        }
        if (direct.k() != 9 * in || direct.n() != out) {
            throw new IllegalArgumentException("Winograd needs 3x3 weights " + 9 * in + " x " + out + ", got "
                    + direct.k() + " x " + direct.n());
        }
        this.m = m;
        this.t = m + 2;
        this.in = in;
        this.out = out;
        this.ldv = Gemm.roundUp(in, L);
        this.ldm = direct.panels() * Gemm.NR;
        double[][] g = m == 2 ? G2 : G4;
        float[] w = direct.unpack();
        int tt = t * t;
        // uAll[xi][o][c] = (G g[o][c] G^T)[a][b] with xi = a*t + b, in double before the one rounding
        float[] uAll = new float[tt * out * in];
        Parallel.forRange(out, o -> {
            double[] tmp = new double[t * 3];
            for (int c = 0; c < in; c++) {
                for (int a = 0; a < t; a++) {
                    for (int kx = 0; kx < 3; kx++) {
                        double s = 0;
                        for (int ky = 0; ky < 3; ky++) {
                            s += g[a][ky] * w[((ky * 3 + kx) * in + c) * out + o];
                        }
                        tmp[a * 3 + kx] = s;
                    }
                }
                for (int a = 0; a < t; a++) {
                    for (int b = 0; b < t; b++) {
                        double s = 0;
                        for (int kx = 0; kx < 3; kx++) {
                            s += tmp[a * 3 + kx] * g[b][kx];
                        }
                        uAll[((a * t + b) * out + o) * in + c] = (float) s;
                    }
                }
            }
        });
        u = new Gemm.PackedB[tt];
        for (int xi = 0; xi < tt; xi++) {
            u[xi] = Gemm.pack(uAll, xi * out * in, 1, in, in, out);
        }
    }

    /** Bytes the transformed weights occupy. */
    long weightBytes() {
        long b = 0;
        for (Gemm.PackedB p : u) {
            b += p.bytes();
        }
        return b;
    }

    /** Tiles a call covers. */
    static long tiles(int m, int batch, int oh, int ow) {
        return (long) batch * ((oh + m - 1) / m) * ((ow + m - 1) / m);
    }

    /**
     * The lazily built transforms of one convolution and the choice per call. U is built on the first call that
     * picks it, so layers that never run this way (small images) cost no memory.
     */
    static final class Cache {
        private volatile Winograd f2;
        private volatile Winograd f4;

        /**
         * y = conv(x) the Winograd way and true, or false (y untouched) where the direct path should run. Only
         * 3x3 stride-1 convolutions reach here; bias (padded to whole panels) may be null.
         */
        boolean forward(Gemm.PackedB packed, float[] bias, int in, int out, float[] x, int batch, int h, int w,
                        int padTop, int padLeft, int oh, int ow, float[] y, int largest) {
            int m = choose(in, out, batch, oh, ow, largest);
            if (m == 0) {
                return false;
            }
            get(packed, in, out, m).forward(x, bias, batch, h, w, padTop, padLeft, oh, ow, y);
            return true;
        }

        private Winograd get(Gemm.PackedB packed, int in, int out, int m) {
            Winograd wg = m == 2 ? f2 : f4;
            if (wg == null) {
                synchronized (this) {
                    wg = m == 2 ? f2 : f4;
                    if (wg == null) {
                        wg = new Winograd(packed, in, out, m);
                        if (m == 2) {
                            f2 = wg;
                        } else {
                            f4 = wg;
                        }
                    }
                }
            }
            return wg;
        }
    }

    /** The output tile for this call (2 or 4), or 0 for the direct path, for a layer that allows F(2x2) only. */
    static int choose(int in, int out, int batch, int oh, int ow) {
        return choose(in, out, batch, oh, ow, 2);
    }

    /**
     * The output tile for this call (2 or 4), or 0 for the direct path; largest is the largest tile the layer allows
     * in automatic mode (see {@link Conv2d#allowLargeWinogradTiles}).
     */
    static int choose(int in, int out, int batch, int oh, int ow, int largest) {
        String mode = System.getProperty(PROPERTY, "auto");
        switch (mode) {
            case "direct":
                return 0;
            case "f2":
                return 2;
            case "f4":
                return 4;
            case "auto":
            case "winograd":
                break;
            default:
                throw new IllegalArgumentException("-D" + PROPERTY + " must be auto, direct, f2 or f4, got " + mode);
        }
        // F(4x4,3x3) is faster (measured 1.1-2.3x over F(2x2) on the VAE's shapes, under load; a whole SD1.5 512x512
        // decode 0.82x the time) but forced on every convolution it takes the UNet goldens to 0.995 of their
        // tolerance (F(2x2): 0.19, the direct path 0.30): only layers that allow it (the VAEs, whose goldens stay
        // at 0.32 of theirs with F(4x4) on every convolution) take it, where their shape pays
        for (int m = largest; m >= 2; m -= 2) {
            if (pays(m, in, out, batch, oh, ow)) {
                return m;
            }
        }
        return 0;
    }

    /** Whether tiles of m x m pay on this shape: enough channels and tiles, and few enough weights per tile. */
    private static boolean pays(int m, int in, int out, int batch, int oh, int ow) {
        long tiles = tiles(m, batch, oh, ow);
        long uBytes = 4L * (m + 2) * (m + 2) * in * out;
        return in >= MIN_CHANNELS && out >= MIN_CHANNELS && tiles >= MIN_TILES && uBytes <= MAX_U_BYTES_PER_TILE * tiles;
    }

    /** Per-call scratch buffers, one per running task, kept by the calling thread for its next call. */
    private static final ThreadLocal<ConcurrentLinkedQueue<float[]>> SCRATCH =
            ThreadLocal.withInitial(ConcurrentLinkedQueue::new);

    static void releaseScratch() {
        SCRATCH.remove();
    }

    /** x [batch][h][w][in] -> y [batch][oh][ow][out], y = conv3x3(x, padding top/left as given) + bias. */
    void forward(float[] x, float[] bias, int batch, int h, int w, int padTop, int padLeft, int oh, int ow,
                 float[] y) {
        int tilesY = (oh + m - 1) / m;
        int tilesX = (ow + m - 1) / m;
        int total = batch * tilesY * tilesX;
        int tt = t * t;
        long perTile = (long) tt * (ldv + ldm);
        int threads = Parallel.threads();
        int chunk = (int) Math.max(Gemm.MR, Math.min(MAX_CHUNK, CHUNK_FLOATS / perTile) / Gemm.MR * Gemm.MR);
        // enough chunks for every thread (a few rounds), but not slivers
        int balanced = Gemm.roundUp((total + 2 * threads - 1) / (2 * threads), Gemm.MR);
        chunk = Math.max(Math.min(chunk, balanced), Math.min(chunk, 4 * Gemm.MR));
        int chunks = (total + chunk - 1) / chunk;
        int ch = chunk;
        int vSize = tt * ch * ldv;
        int mSize = tt * ch * ldm;
        int patch = tt * ldv;
        int size = vSize + mSize + patch + tt * L + t * m * L + m * L + L;
        float[] padded = bias == null || bias.length >= ldm ? bias : java.util.Arrays.copyOf(bias, ldm);
        // a task hands its buffer back as soon as its chunk is done, so a call holds one buffer per running task
        // (not one per chunk: a 512x512 VAE decode has 256 chunks of 6 MB per convolution)
        ConcurrentLinkedQueue<float[]> pool = SCRATCH.get();
        Parallel.forRange(chunks, ci -> {
            float[] buf = pool.poll();
            if (buf == null || buf.length < size) {
                buf = new float[size];
            }
            try {
                int t0 = ci * ch;
                chunk(x, padded, h, w, padTop, padLeft, oh, ow, tilesY, tilesX, t0, Math.min(ch, total - t0), ch,
                        buf, vSize, mSize, y);
            } finally {
                pool.add(buf);
            }
        });
    }

    /** Scratch buffers the calling thread's pool holds now (for tests). */
    static int pooledBuffers() {
        return SCRATCH.get().size();
    }

    private void chunk(float[] x, float[] bias, int h, int w, int padTop, int padLeft, int oh, int ow, int tilesY,
                       int tilesX, int t0, int n, int ch, float[] buf, int vSize, int mSize, float[] y) {
        int tt = t * t;
        int vOff = 0;
        int mOff = vSize;
        int pOff = mOff + mSize;
        int tmpOff = pOff + tt * ldv;
        int tmp2Off = tmpOff + tt * L;
        int rowOff = tmp2Off + t * m * L;
        int perImage = tilesY * tilesX;
        for (int i = 0; i < n; i++) {
            int tile = t0 + i;
            int b = tile / perImage;
            int ty = tile % perImage / tilesX;
            int tx = tile % tilesX;
            int iy0 = ty * m - padTop;
            int ix0 = tx * m - padLeft;
            float[] src;
            int base;
            int rowStride;
            int pix;
            boolean tail;
            if (iy0 >= 0 && ix0 >= 0 && iy0 + t <= h && ix0 + t <= w) {
                src = x;
                base = ((b * h + iy0) * w + ix0) * in;
                rowStride = w * in;
                pix = in;
                tail = in % L != 0;
            } else {
                // a border tile: its pixels copied into a zero-padded t x t patch
                src = buf;
                base = pOff;
                rowStride = t * ldv;
                pix = ldv;
                tail = false;
                java.util.Arrays.fill(buf, pOff, pOff + tt * ldv, 0f);
                for (int r = 0; r < t; r++) {
                    int iy = iy0 + r;
                    if (iy < 0 || iy >= h) {
                        continue;
                    }
                    for (int s = 0; s < t; s++) {
                        int ix = ix0 + s;
                        if (ix >= 0 && ix < w) {
                            System.arraycopy(x, ((b * h + iy) * w + ix) * in, buf, pOff + (r * t + s) * ldv, in);
                        }
                    }
                }
            }
            for (int c = 0; c < in; c += L) {
                VectorMask<Float> mask = tail && c + L > in ? S.indexInRange(c, in) : null;
                // columns: B^T d, each column j of the tile into tmp[(a*t + j)*L]
                for (int j = 0; j < t; j++) {
                    inputRows(src, base + j * pix + c, rowStride, mask, buf, tmpOff + j * L, t * L);
                }
                // rows: (B^T d) B, row a into V[a*t + b][tile]
                for (int a = 0; a < t; a++) {
                    inputRows(buf, tmpOff + a * t * L, L, null, buf, vOff + ((a * t) * ch + i) * ldv + c,
                            ch * ldv);
                }
            }
        }
        int panels = ldm / Gemm.NR;
        for (int xi = 0; xi < tt; xi++) {
            Gemm.block(new Gemm.Dense(buf, vOff + xi * ch * ldv, ldv), 0, n, u[xi], 0, panels, 0, in, buf,
                    mOff + xi * ch * ldm, ldm, null, false, true);
        }
        boolean outTail = out % L != 0;
        for (int i = 0; i < n; i++) {
            int tile = t0 + i;
            int b = tile / perImage;
            int ty = tile % perImage / tilesX;
            int tx = tile % tilesX;
            int rows = Math.min(m, oh - ty * m);
            int cols = Math.min(m, ow - tx * m);
            for (int c = 0; c < out; c += L) {
                VectorMask<Float> mask = outTail && c + L > out ? S.indexInRange(c, out) : null;
                FloatVector bv = bias == null ? null : FloatVector.fromArray(S, bias, c);
                // columns: A^T M, column j into tmp2[(r*t + j)*L]
                for (int j = 0; j < t; j++) {
                    outputRows(buf, mOff + (j * ch + i) * ldm + c, t * ch * ldm, buf, tmp2Off + j * L, t * L);
                }
                // rows: (A^T M) A, row r's m pixels, plus the bias
                for (int r = 0; r < rows; r++) {
                    outputRows(buf, tmp2Off + r * t * L, L, buf, rowOff, L);
                    int dst = ((b * oh + ty * m + r) * ow + tx * m) * out + c;
                    for (int s = 0; s < cols; s++) {
                        FloatVector v = FloatVector.fromArray(S, buf, rowOff + s * L);
                        if (bv != null) {
                            v = v.add(bv);
                        }
                        if (mask == null) {
                            v.intoArray(y, dst + s * out);
                        } else {
                            v.intoArray(y, dst + s * out, mask);
                        }
                    }
                }
            }
        }
    }

    private static FloatVector load(float[] a, int off, VectorMask<Float> mask) {
        return mask == null ? FloatVector.fromArray(S, a, off) : FloatVector.fromArray(S, a, off, mask);
    }

    /** t vectors d_k at src[off + k*stride] -> B^T d at dst[dOff + k*dStride]. */
    private void inputRows(float[] src, int off, int stride, VectorMask<Float> mask, float[] dst, int dOff,
                           int dStride) {
        FloatVector d0 = load(src, off, mask);
        FloatVector d1 = load(src, off + stride, mask);
        FloatVector d2 = load(src, off + 2 * stride, mask);
        FloatVector d3 = load(src, off + 3 * stride, mask);
        if (m == 2) {
            d0.sub(d2).intoArray(dst, dOff);
            d1.add(d2).intoArray(dst, dOff + dStride);
            d2.sub(d1).intoArray(dst, dOff + 2 * dStride);
            d1.sub(d3).intoArray(dst, dOff + 3 * dStride);
            return;
        }
        FloatVector d4 = load(src, off + 4 * stride, mask);
        FloatVector d5 = load(src, off + 5 * stride, mask);
        // B^T rows: [4 0 -5 0 1 0] [0 -4 -4 1 1 0] [0 4 -4 -1 1 0] [0 -2 -1 2 1 0] [0 2 -1 -2 1 0] [0 4 0 -5 0 1]
        FloatVector p = d4.sub(d2.mul(4f));      // d4 - 4 d2
        FloatVector q = d3.sub(d1.mul(4f));      // d3 - 4 d1
        FloatVector r = d4.sub(d2);              // d4 - d2
        FloatVector s = d3.sub(d1).mul(2f);      // 2 (d3 - d1)
        d0.mul(4f).sub(d2.mul(5f)).add(d4).intoArray(dst, dOff);
        p.add(q).intoArray(dst, dOff + dStride);
        p.sub(q).intoArray(dst, dOff + 2 * dStride);
        r.add(s).intoArray(dst, dOff + 3 * dStride);
        r.sub(s).intoArray(dst, dOff + 4 * dStride);
        d1.mul(4f).sub(d3.mul(5f)).add(d5).intoArray(dst, dOff + 5 * dStride);
    }

    /** t vectors M_k at src[off + k*stride] -> A^T M (m vectors) at dst[dOff + k*dStride]. */
    private void outputRows(float[] src, int off, int stride, float[] dst, int dOff, int dStride) {
        FloatVector m0 = FloatVector.fromArray(S, src, off);
        FloatVector m1 = FloatVector.fromArray(S, src, off + stride);
        FloatVector m2 = FloatVector.fromArray(S, src, off + 2 * stride);
        FloatVector m3 = FloatVector.fromArray(S, src, off + 3 * stride);
        if (m == 2) {
            m0.add(m1).add(m2).intoArray(dst, dOff);
            m1.sub(m2).sub(m3).intoArray(dst, dOff + dStride);
            return;
        }
        FloatVector m4 = FloatVector.fromArray(S, src, off + 4 * stride);
        FloatVector m5 = FloatVector.fromArray(S, src, off + 5 * stride);
        // A^T rows: [1 1 1 1 1 0] [0 1 -1 2 -2 0] [0 1 1 4 4 0] [0 1 -1 8 -8 1]
        FloatVector sum12 = m1.add(m2);
        FloatVector dif12 = m1.sub(m2);
        FloatVector sum34 = m3.add(m4);
        FloatVector dif34 = m3.sub(m4);
        m0.add(sum12).add(sum34).intoArray(dst, dOff);
        dif12.add(dif34.mul(2f)).intoArray(dst, dOff + dStride);
        sum12.add(sum34.mul(4f)).intoArray(dst, dOff + 2 * dStride);
        dif12.add(dif34.mul(8f)).add(m5).intoArray(dst, dOff + 3 * dStride);
    }
}
