package jdiffusion.tensor;

/**
 * A 2-D convolution on NHWC activations; weights [out][in][kh][kw] are packed once at construction.
 *
 * <p>The convolution is one GEMM with k running over (tap, input channel). A 1x1 stride-1 convolution reads its
 * input in place. Otherwise the input is copied once, zero padded (and for stride s split into s x s phase planes),
 * into planes of gridW pixels per row; output row m = oy*gridW + ox then reads, for tap (ky, kx), pixel
 * m + (ky/s)*gridW + kx/s of plane (ky%s, kx%s): every tap is a constant shift, so its rows of A are read in place
 * (no im2col buffer), and the gridW - outW extra outputs per row are computed and dropped. Small images, where
 * those extra outputs would be a large share, gather a whole im2col matrix instead (it is small there).
 */
public final class Conv2d {
    /** Above this share of wasted grid columns, small images use an explicit im2col matrix instead. */
    private static final double MAX_GRID_WASTE = 0.20;
    /** Largest im2col matrix (floats) built for small images. */
    private static final long MAX_IM2COL = 4L << 20;

    private final Gemm.PackedB packed;
    private final float[] bias;
    private final int out;
    private final int in;
    private final int kh;
    private final int kw;
    private final int stride;
    private final int padTop;
    private final int padLeft;
    private final int padBottom;
    private final int padRight;
    /** The native bf16 kernel when built under {@link Precision#BF16} and it can run (then packed is null). */
    private Bf16Conv bf16;
    /** Winograd transforms of a stride-1 3x3 convolution, built on first use (see {@link Winograd#choose}). */
    private final Winograd.Cache winograd = new Winograd.Cache();
    /** The largest Winograd output tile the automatic choice may take here (2, or 4 once allowed). */
    private volatile int largestWinogradTile = 2;

    private Conv2d(Gemm.PackedB packed, float[] bias, int out, int in, int kh, int kw, int stride, int padTop,
                   int padLeft, int padBottom, int padRight) {
        this.packed = packed;
        this.bias = bias;
        this.out = out;
        this.in = in;
        this.kh = kh;
        this.kw = kw;
        this.stride = stride;
        this.padTop = padTop;
        this.padLeft = padLeft;
        this.padBottom = padBottom;
        this.padRight = padRight;
    }

    /** Square kernel k, same padding on every side. */
    public static Conv2d of(float[] weight, float[] bias, int out, int in, int k, int stride, int pad) {
        return of(weight, bias, out, in, k, k, stride, pad, pad, pad, pad);
    }

    /** Square kernel k, same padding on every side, weights kept in the given format. */
    public static Conv2d of(float[] weight, float[] bias, int out, int in, int k, int stride, int pad,
                            WeightFormat format) {
        return of(weight, bias, out, in, k, k, stride, pad, pad, pad, pad, format);
    }

    public static Conv2d of(float[] weight, float[] bias, int out, int in, int kh, int kw, int stride, int padTop,
                            int padLeft, int padBottom, int padRight) {
        return of(weight, bias, out, in, kh, kw, stride, padTop, padLeft, padBottom, padRight, WeightFormat.F32);
    }

    /** The general form; format F16/BF16 keeps the weights in 16 bits (arithmetic stays fp32). */
    public static Conv2d of(float[] weight, float[] bias, int out, int in, int kh, int kw, int stride, int padTop,
                            int padLeft, int padBottom, int padRight, WeightFormat format) {
        if (weight.length != out * in * kh * kw) {
            throw new IllegalArgumentException("conv weight has " + weight.length + " values, expected " + out + "x" + in + "x" + kh + "x" + kw);
        }
        if (bias != null && bias.length != out) {
            throw new IllegalArgumentException("conv bias has " + bias.length + " values, expected " + out);
        }
        if (stride < 1 || padTop < 0 || padLeft < 0 || padBottom < 0 || padRight < 0) {
            throw new IllegalArgumentException("conv stride " + stride + " must be >= 1 and paddings >= 0");
        }
        if (Precision.nativeBf16Now()) {
            Conv2d c = new Conv2d(null, null, out, in, kh, kw, stride, padTop, padLeft, padBottom, padRight);
            c.bf16 = new Bf16Conv(weight, bias, out, in, kh, kw, stride, padTop, padLeft, padBottom, padRight);
            return c;
        }
        // k order (ky, kx, channel): one tap's channels are contiguous, matching NHWC input pixels
        int k = kh * kw * in;
        float[] w = new float[out * k];
        for (int o = 0; o < out; o++) {
            for (int c = 0; c < in; c++) {
                for (int t = 0; t < kh * kw; t++) {
                    w[o * k + t * in + c] = weight[(o * in + c) * kh * kw + t];
                }
            }
        }
        Gemm.PackedB packed = Gemm.packWeights(w, out, k, in, format);
        return new Conv2d(packed, Gemm.padBias(bias, packed), out, in, kh, kw, stride, padTop, padLeft, padBottom,
                padRight);
    }

    /**
     * Lets the automatic choice run this convolution as Winograd F(4x4,3x3) where its shape pays (F(2x2,3x3)
     * elsewhere): for models whose goldens hold that with margin, the VAEs (at most 0.32 of their tolerances with
     * F(4x4) forced on every convolution; the UNets reach 0.995, so they keep F(2x2)). Returns this.
     */
    public Conv2d allowLargeWinogradTiles() {
        largestWinogradTile = 4;
        return this;
    }

    public int in() {
        return in;
    }

    public int out() {
        return out;
    }

    /** Bytes the packed weights occupy. */
    public long weightBytes() {
        return bf16 != null ? bf16.bytes() : packed.bytes();
    }

    public int outH(int h) {
        return (h + padTop + padBottom - kh) / stride + 1;
    }

    public int outW(int w) {
        return (w + padLeft + padRight - kw) / stride + 1;
    }

    /** x is [batch][h][w][in]; returns [batch][outH(h)][outW(w)][out]. */
    public float[] forward(float[] x, int batch, int h, int w) {
        int oh = outH(h);
        int ow = outW(w);
        if (oh < 1 || ow < 1) {
            throw new IllegalArgumentException("conv input " + h + "x" + w + " is smaller than its " + kh + "x" + kw + " kernel");
        }
        return forwardInto(x, batch, h, w, new float[batch * oh * ow * out]);
    }

    /**
     * {@link #forward} into y, an array of exactly batch x outH(h) x outW(w) x out values whose contents are
     * overwritten (a model reusing its activation arrays saves allocating and zeroing them); y must not be x.
     * Returns y.
     */
    public float[] forwardInto(float[] x, int batch, int h, int w, float[] y) {
        int oh = outH(h);
        int ow = outW(w);
        if (oh < 1 || ow < 1) {
            throw new IllegalArgumentException("conv input " + h + "x" + w + " is smaller than its " + kh + "x" + kw + " kernel");
        }
        if (x.length != batch * h * w * in) {
            throw new IllegalArgumentException("conv input has " + x.length + " values, expected " + batch + "x" + h + "x" + w + "x" + in);
        }
        if (y == null || y.length != batch * oh * ow * out || y == x) {
            throw new IllegalArgumentException("conv output array " + (y == null ? "is missing"
                    : "has " + y.length + " values" + (y == x ? " and is the input" : ""))
                    + ", expected a separate one of " + batch + "x" + oh + "x" + ow + "x" + out);
        }
        if (bf16 != null) {
            bf16.forward(x, batch, h, w, oh, ow, y);
            return y;
        }
        if (kh == 1 && kw == 1 && stride == 1 && padTop + padLeft + padBottom + padRight == 0) {
            Gemm.multiply(new Gemm.Dense(x, 0, in), batch * h * w, packed, y, 0, out, bias, false);
            return y;
        }
        if (kh == 3 && kw == 3 && stride == 1
                && winograd.forward(packed, bias, in, out, x, batch, h, w, padTop, padLeft, oh, ow, y,
                        largestWinogradTile)) {
            return y;
        }
        int gridW = gridW(w);
        long im2col = (long) oh * ow * kh * kw * in;
        if (gridW > ow * (1 + MAX_GRID_WASTE) && im2col <= MAX_IM2COL) {
            forwardIm2col(x, batch, h, w, oh, ow, y);
        } else {
            forwardGrid(x, batch, h, w, oh, ow, gridW, y);
        }
        return y;
    }

    private int gridW(int w) {
        return (w + padLeft + padRight + stride - 1) / stride;
    }

    /** Test hook: the Winograd path with output tile m (2 or 4), whatever the size (3x3 stride 1 only). */
    float[] forwardWinograd(float[] x, int batch, int h, int w, int m) {
        float[] y = new float[batch * outH(h) * outW(w) * out];
        new Winograd(packed, in, out, m).forward(x, bias, batch, h, w, padTop, padLeft, outH(h), outW(w), y);
        return y;
    }

    /** Test hook: the result of one path (grid true, else im2col) whatever the size, so both are checked. */
    float[] forwardPath(float[] x, int batch, int h, int w, boolean grid) {
        int oh = outH(h);
        int ow = outW(w);
        float[] y = new float[batch * oh * ow * out];
        if (grid) {
            forwardGrid(x, batch, h, w, oh, ow, gridW(w), y);
        } else {
            forwardIm2col(x, batch, h, w, oh, ow, y);
        }
        return y;
    }

    private void forwardGrid(float[] x, int batch, int h, int w, int oh, int ow, int gridW, float[] y) {
        // stride s: the padded input is split into s x s phase planes (every s-th row and column from an offset),
        // so tap (ky, kx) reads plane (ky % s, kx % s) at a stride-1 shift (ky / s, kx / s)
        int s = stride;
        int planeH = Math.max(oh + (kh - 1) / s + 1, (padTop + h - 1) / s + 1);
        int plane = planeH * gridW * in;
        // the padded input and the wide output are scratch, kept per thread from one convolution to the next: fresh
        // arrays of hundreds of MB per layer (a 1024x1024 VAE decode) cost page faults and zeroing, and churn the
        // heap faster than a concurrent collector frees it
        float[][] scratch = SCRATCH.get();
        float[] phases = Gemm.grow(scratch, 0, s * s * plane);
        boolean exact = gridW == ow;
        float[] grid = exact ? null : Gemm.grow(scratch, 1, oh * gridW * out);
        Taps taps = new Taps(phases, in, kw, s, gridW, plane);
        for (int b = 0; b < batch; b++) {
            java.util.Arrays.fill(phases, 0, s * s * plane, 0f);
            for (int iy = 0; iy < h; iy++) {
                int py = padTop + iy;
                for (int ix = 0; ix < w; ix++) {
                    int px = padLeft + ix;
                    int dst = (py % s * s + px % s) * plane + (py / s * gridW + px / s) * in;
                    System.arraycopy(x, ((b * h + iy) * w + ix) * in, phases, dst, in);
                }
            }
            int yOff = b * oh * ow * out;
            if (exact) {
                Gemm.multiply(taps, oh * gridW, packed, y, yOff, out, bias, false);
            } else {
                Gemm.multiply(taps, oh * gridW, packed, grid, 0, out, bias, false);
                for (int oy = 0; oy < oh; oy++) {
                    System.arraycopy(grid, oy * gridW * out, y, yOff + oy * ow * out, ow * out);
                }
            }
        }
    }

    private static final ThreadLocal<float[][]> SCRATCH = ThreadLocal.withInitial(() -> new float[2][]);

    /** Lets go of this thread's scratch (call when a model's large convolutions are done, e.g. after a decode). */
    public static void releaseScratch() {
        SCRATCH.remove();
        Winograd.releaseScratch();
    }

    /** A over the phase planes: row m = oy*gridW + ox, k = (tap, channel). */
    private record Taps(float[] phases, int in, int kw, int stride, int gridW, int plane) implements Gemm.ASource {
        @Override
        public float[] array() {
            return phases;
        }

        @Override
        public int rowStride() {
            return in;
        }

        @Override
        public int index(int row, int p) {
            int t = p / in;
            int ky = t / kw;
            int kx = t % kw;
            int phase = ky % stride * stride + kx % stride;
            return phase * plane + (row + ky / stride * gridW + kx / stride) * in + p % in;
        }

        @Override
        public int segment() {
            return in;
        }
    }

    private void forwardIm2col(float[] x, int batch, int h, int w, int oh, int ow, float[] y) {
        int k = kh * kw * in;
        float[] cols = new float[oh * ow * k];
        for (int b = 0; b < batch; b++) {
            if (b > 0) {
                java.util.Arrays.fill(cols, 0f);
            }
            for (int oy = 0; oy < oh; oy++) {
                for (int ox = 0; ox < ow; ox++) {
                    int row = (oy * ow + ox) * k;
                    for (int ky = 0; ky < kh; ky++) {
                        int iy = oy * stride + ky - padTop;
                        for (int kx = 0; kx < kw; kx++) {
                            int ix = ox * stride + kx - padLeft;
                            if (iy >= 0 && iy < h && ix >= 0 && ix < w) {
                                System.arraycopy(x, ((b * h + iy) * w + ix) * in, cols, row + (ky * kw + kx) * in, in);
                            }
                        }
                    }
                }
            }
            Gemm.multiply(new Gemm.Dense(cols, 0, k), oh * ow, packed, y, b * oh * ow * out, out, bias, false);
        }
    }
}
