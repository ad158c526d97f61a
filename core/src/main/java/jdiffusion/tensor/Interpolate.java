package jdiffusion.tensor;

import java.util.List;

/**
 * ComfyUI's {@code comfy.utils.common_upscale} over NCHW tensors: an optional center crop to the new aspect ratio,
 * then one of torch's {@code interpolate} modes (align_corners False, no antialias): {@code nearest-exact},
 * {@code bilinear}, {@code bicubic} (Keys, a = -0.75), {@code area} (adaptive average pooling); or ComfyUI's
 * {@code bislerp} (spherical interpolation of each pixel's channel vector) or {@code lanczos} (Pillow's 8-bit
 * Lanczos-3 resampler, as ComfyUI does it through PIL: values truncated to 8 bits first, results k/255).
 */
public final class Interpolate {
    /** Every method {@link #upscale} knows. */
    public static final List<String> METHODS = List.of("nearest-exact", "bilinear", "area", "bicubic", "bislerp",
            "lanczos");

    private Interpolate() {
    }

    /**
     * common_upscale(samples, width, height, method, crop).
     *
     * @param src NCHW [batch][channels][h][w]
     * @param crop "disabled" or "center"
     * @return NCHW [batch][channels][newH][newW]
     */
    public static float[] upscale(float[] src, int batch, int channels, int h, int w, int newW, int newH,
            String method, String crop) {
        if (!METHODS.contains(method)) {
            throw new IllegalArgumentException("unknown upscale method '" + method + "' (known: "
                    + String.join(", ", METHODS) + ")");
        }
        if (!"disabled".equals(crop) && !"center".equals(crop)) {
            throw new IllegalArgumentException("unknown crop '" + crop + "' (known: disabled, center)");
        }
        if (batch < 1 || channels < 1 || h < 1 || w < 1 || newW < 1 || newH < 1) {
            throw new IllegalArgumentException("cannot resize " + w + "x" + h + " to " + newW + "x" + newH);
        }
        if (src.length != (long) batch * channels * h * w) {
            throw new IllegalArgumentException("resize input holds " + src.length + " values, expected " + batch
                    + "x" + channels + "x" + h + "x" + w);
        }
        if ((long) batch * channels * newH * newW > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("resized " + newW + "x" + newH + " is too large for one array");
        }
        int y0 = 0;
        int x0 = 0;
        if ("center".equals(crop)) {
            double oldAspect = (double) w / h;
            double newAspect = (double) newW / newH;
            if (oldAspect > newAspect) {
                x0 = (int) Math.rint((w - w * (newAspect / oldAspect)) / 2);
            } else if (oldAspect < newAspect) {
                y0 = (int) Math.rint((h - h * (oldAspect / newAspect)) / 2);
            }
        }
        int ch = h - 2 * y0;
        int cw = w - 2 * x0;
        float[] cropped = src;
        if (y0 != 0 || x0 != 0) {
            int planes = batch * channels;
            cropped = new float[planes * ch * cw];
            for (int p = 0; p < planes; p++) {
                for (int y = 0; y < ch; y++) {
                    System.arraycopy(src, (p * h + y + y0) * w + x0, cropped, (p * ch + y) * cw, cw);
                }
            }
        }
        if ("bislerp".equals(method)) {
            return bislerp(cropped, batch, channels, ch, cw, newH, newW);
        }
        int planes = batch * channels;
        float[] out = new float[planes * newH * newW];
        final float[] in = cropped;
        final int ih = ch;
        final int iw = cw;
        Parallel.forRange(planes, p -> {
            float[] plane = java.util.Arrays.copyOfRange(in, p * ih * iw, (p + 1) * ih * iw);
            float[] r = switch (method) {
                case "nearest-exact" -> nearestExact(plane, ih, iw, newH, newW);
                case "bilinear" -> separable(plane, ih, iw, newH, newW, false);
                case "bicubic" -> separable(plane, ih, iw, newH, newW, true);
                case "area" -> area(plane, ih, iw, newH, newW);
                case "lanczos" -> Lanczos.resize(plane, ih, iw, newH, newW);
                default -> throw new IllegalStateException(method);
            };
            System.arraycopy(r, 0, out, p * newH * newW, r.length);
        });
        return out;
    }

    /**
     * torch's nearest-exact source index min(floor((dst + 0.5) * scale), in - 1) with scale = in / out, all in
     * float32 as torch's CPU kernel computes it: 24 -> 37 maps output 18 to 11 (18.5f * 0.6486486f rounds to
     * 11.999999f), where the exact rational value is 12.
     */
    static int nearestIndex(int dst, int in, int out) {
        float scale = (float) in / out;
        return Math.min((int) Math.floor((dst + 0.5f) * scale), in - 1);
    }

    private static float[] nearestExact(float[] in, int h, int w, int oh, int ow) {
        float[] out = new float[oh * ow];
        for (int y = 0; y < oh; y++) {
            int iy = nearestIndex(y, h, oh);
            for (int x = 0; x < ow; x++) {
                out[y * ow + x] = in[iy * w + nearestIndex(x, w, ow)];
            }
        }
        return out;
    }

    /** Rows then columns; each output sample is a weighted sum of input samples (2 taps linear, 4 taps cubic). */
    private static float[] separable(float[] in, int h, int w, int oh, int ow, boolean cubic) {
        float[] tmp = new float[h * ow];
        for (int y = 0; y < h; y++) {
            resampleLine(in, y * w, 1, w, tmp, y * ow, 1, ow, cubic);
        }
        float[] out = new float[oh * ow];
        for (int x = 0; x < ow; x++) {
            resampleLine(tmp, x, ow, h, out, x, ow, oh, cubic);
        }
        return out;
    }

    private static void resampleLine(float[] in, int inOff, int inStride, int n, float[] out, int outOff,
            int outStride, int m, boolean cubic) {
        double scale = (double) n / m;
        for (int i = 0; i < m; i++) {
            double src = (i + 0.5) * scale - 0.5;
            double v;
            if (cubic) {
                int i0 = (int) Math.floor(src);
                double[] c = cubicWeights(src - i0);
                v = 0;
                for (int k = 0; k < 4; k++) {
                    int idx = Math.min(Math.max(i0 - 1 + k, 0), n - 1);
                    v += c[k] * in[inOff + idx * inStride];
                }
            } else {
                double s = Math.max(src, 0);
                int i0 = Math.min((int) Math.floor(s), n - 1);
                int i1 = Math.min(i0 + 1, n - 1);
                double l = Math.min(s - i0, 1);
                v = (1 - l) * in[inOff + i0 * inStride] + l * in[inOff + i1 * inStride];
            }
            out[outOff + i * outStride] = (float) v;
        }
    }

    /** Keys' cubic convolution with a = -0.75, as torch's upsample_bicubic2d. */
    private static double[] cubicWeights(double t) {
        double a = -0.75;
        double x1 = t + 1;
        double x2 = t;
        double x3 = 1 - t;
        double x4 = 2 - t;
        return new double[] {
            ((a * x1 - 5 * a) * x1 + 8 * a) * x1 - 4 * a,
            ((a + 2) * x2 - (a + 3)) * x2 * x2 + 1,
            ((a + 2) * x3 - (a + 3)) * x3 * x3 + 1,
            ((a * x4 - 5 * a) * x4 + 8 * a) * x4 - 4 * a};
    }

    /** Adaptive average pooling: output cell i averages [floor(i*in/out), ceil((i+1)*in/out)) in each axis. */
    private static float[] area(float[] in, int h, int w, int oh, int ow) {
        float[] out = new float[oh * ow];
        for (int y = 0; y < oh; y++) {
            int ys = (int) ((long) y * h / oh);
            int ye = (int) (((long) (y + 1) * h + oh - 1) / oh);
            for (int x = 0; x < ow; x++) {
                int xs = (int) ((long) x * w / ow);
                int xe = (int) (((long) (x + 1) * w + ow - 1) / ow);
                double sum = 0;
                for (int yy = ys; yy < ye; yy++) {
                    for (int xx = xs; xx < xe; xx++) {
                        sum += in[yy * w + xx];
                    }
                }
                out[y * ow + x] = (float) (sum / ((ye - ys) * (xe - xs)));
            }
        }
        return out;
    }

    /**
     * comfy.utils.bislerp: along the width, then along the height; each output pixel's channel vector is the slerp
     * of two source pixels picked, with the ratio, by bilinear sampling of the index ramp (see {@link #slerp}).
     */
    static float[] bislerp(float[] src, int batch, int c, int h, int w, int newH, int newW) {
        float[] wide = new float[batch * c * h * newW];
        Ramp rw = Ramp.of(w, newW);
        for (int b = 0; b < batch; b++) {
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < newW; x++) {
                    slerp(src, b * c * h * w + y * w + rw.i1[x], b * c * h * w + y * w + rw.i2[x], h * w, c,
                            rw.ratio[x], wide, b * c * h * newW + y * newW + x, h * newW);
                }
            }
        }
        float[] out = new float[batch * c * newH * newW];
        Ramp rh = Ramp.of(h, newH);
        for (int b = 0; b < batch; b++) {
            for (int y = 0; y < newH; y++) {
                for (int x = 0; x < newW; x++) {
                    slerp(wide, b * c * h * newW + rh.i1[y] * newW + x, b * c * h * newW + rh.i2[y] * newW + x,
                            h * newW, c, rh.ratio[y], out, b * c * newH * newW + y * newW + x, newH * newW);
                }
            }
        }
        return out;
    }

    /**
     * The two source indices and the ratio of each output position: torch's bilinear interpolation of the ramps
     * 0..n-1 and 1..n-1,n-1 (align_corners False, float32), the first truncated to i1 with ratio = its fraction,
     * the second truncated to i2.
     */
    private record Ramp(int[] i1, int[] i2, float[] ratio) {
        static Ramp of(int n, int m) {
            int[] i1 = new int[m];
            int[] i2 = new int[m];
            float[] ratio = new float[m];
            float scale = (float) n / m;
            for (int j = 0; j < m; j++) {
                float s = Math.max(scale * (j + 0.5f) - 0.5f, 0f);
                int a = Math.min((int) Math.floor(s), n - 1);
                int b = Math.min(a + 1, n - 1);
                float l = Math.min(Math.max(s - a, 0f), 1f);
                float c1 = (1f - l) * a + l * b;
                float c2 = (1f - l) * (a == n - 1 ? n - 1 : a + 1) + l * (b == n - 1 ? n - 1 : b + 1);
                i1[j] = (int) c1;
                i2[j] = (int) c2;
                ratio[j] = c1 - (float) Math.floor(c1);
            }
            return new Ramp(i1, i2, ratio);
        }
    }

    /**
     * ComfyUI's slerp of two C-vectors (stride apart in their arrays): normalised (0 where the norm is 0), omega =
     * acos(dot), sin-weighted, times the linearly interpolated norm; nearly equal directions give the first vector
     * unchanged, nearly opposite ones the plain lerp.
     */
    private static void slerp(float[] x, int a, int b, int stride, int c, float r, float[] out, int o, int oStride) {
        double na = 0;
        double nb = 0;
        for (int k = 0; k < c; k++) {
            double va = x[a + k * stride];
            double vb = x[b + k * stride];
            na += va * va;
            nb += vb * vb;
        }
        na = Math.sqrt(na);
        nb = Math.sqrt(nb);
        double dot = 0;
        for (int k = 0; k < c; k++) {
            double ua = na == 0 ? 0 : x[a + k * stride] / na;
            double ub = nb == 0 ? 0 : x[b + k * stride] / nb;
            dot += ua * ub;
        }
        if (dot > 1 - 1e-5) {
            for (int k = 0; k < c; k++) {
                out[o + k * oStride] = x[a + k * stride];
            }
            return;
        }
        if (dot < 1e-5 - 1) {
            for (int k = 0; k < c; k++) {
                out[o + k * oStride] = (float) (x[a + k * stride] * (1.0 - r) + x[b + k * stride] * (double) r);
            }
            return;
        }
        double omega = Math.acos(dot);
        double so = Math.sin(omega);
        double wa = Math.sin((1.0 - r) * omega) / so;
        double wb = Math.sin(r * omega) / so;
        double norm = na * (1.0 - r) + nb * r;
        for (int k = 0; k < c; k++) {
            double ua = na == 0 ? 0 : x[a + k * stride] / na;
            double ub = nb == 0 ? 0 : x[b + k * stride] / nb;
            out[o + k * oStride] = (float) ((wa * ua + wb * ub) * norm);
        }
    }

    /**
     * Pillow's 8-bit resampler with its Lanczos-3 filter (ImagingResample): values become bytes by truncation of
     * 255 * x (as ComfyUI's {@code np.clip(255. * x, 0, 255).astype(np.uint8)}), a horizontal pass (only when the
     * width changes) into bytes, then a vertical pass; coefficients in 22-bit fixed point, rounded and clipped per
     * pass; the result is byte / 255.
     */
    static final class Lanczos {
        private static final int PRECISION_BITS = 22;

        private Lanczos() {
        }

        static float[] resize(float[] plane, int h, int w, int oh, int ow) {
            int[] px = new int[h * w];
            for (int i = 0; i < px.length; i++) {
                float v = 255f * plane[i];
                px[i] = (int) Math.min(255f, Math.max(0f, v));
            }
            int cw = w;
            if (ow != w) {
                px = pass(px, h, w, ow, true);
                cw = ow;
            }
            if (oh != h) {
                px = pass(px, h, cw, oh, false);
            }
            float[] out = new float[oh * ow];
            for (int i = 0; i < out.length; i++) {
                out[i] = px[i] / 255f;
            }
            return out;
        }

        /** One pass along x (horizontal) or y over a rows x cols byte image, the resampled axis to outSize. */
        private static int[] pass(int[] in, int rows, int cols, int outSize, boolean horizontal) {
            int inSize = horizontal ? cols : rows;
            double scale = (double) inSize / outSize;
            double filterScale = Math.max(scale, 1.0);
            double support = 3.0 * filterScale;
            int[] bounds = new int[2 * outSize];
            int ksize = (int) Math.ceil(support) * 2 + 1;
            int[] kk = new int[outSize * ksize];
            for (int xx = 0; xx < outSize; xx++) {
                double center = (xx + 0.5) * scale;
                double ss = 1.0 / filterScale;
                int xmin = Math.max((int) (center - support + 0.5), 0);
                int xmax = Math.min((int) (center + support + 0.5), inSize) - xmin;
                double[] k = new double[Math.max(xmax, 0)];
                double ww = 0;
                for (int x = 0; x < xmax; x++) {
                    k[x] = lanczos((x + xmin - center + 0.5) * ss);
                    ww += k[x];
                }
                for (int x = 0; x < xmax; x++) {
                    double v = ww != 0 ? k[x] / ww : k[x];
                    kk[xx * ksize + x] = v < 0 ? (int) (-0.5 + v * (1 << PRECISION_BITS))
                            : (int) (0.5 + v * (1 << PRECISION_BITS));
                }
                bounds[2 * xx] = xmin;
                bounds[2 * xx + 1] = xmax;
            }
            int outRows = horizontal ? rows : outSize;
            int outCols = horizontal ? outSize : cols;
            int[] out = new int[outRows * outCols];
            for (int r = 0; r < outRows; r++) {
                for (int c = 0; c < outCols; c++) {
                    int xx = horizontal ? c : r;
                    int xmin = bounds[2 * xx];
                    int xmax = bounds[2 * xx + 1];
                    long ss = 1L << (PRECISION_BITS - 1);
                    for (int x = 0; x < xmax; x++) {
                        int v = horizontal ? in[r * cols + x + xmin] : in[(x + xmin) * cols + c];
                        ss += (long) v * kk[xx * ksize + x];
                    }
                    out[r * outCols + c] = clip8(ss);
                }
            }
            return out;
        }

        private static int clip8(long in) {
            if (in >= (1L << PRECISION_BITS << 8)) {
                return 255;
            }
            if (in <= 0) {
                return 0;
            }
            return (int) (in >> PRECISION_BITS);
        }

        private static double sinc(double x) {
            if (x == 0.0) {
                return 1.0;
            }
            x *= Math.PI;
            return Math.sin(x) / x;
        }

        private static double lanczos(double x) {
            return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0;
        }
    }
}
