package jdiffusion.pipeline;

/**
 * The mask arithmetic of inpainting and outpainting, as the references compute it (ComfyUI's mask nodes and sampler
 * mask preparation, diffusers' mask processor, A1111's mask blur). Masks are float planes, 1 = repaint, stored
 * [batch][height][width] (a [B,1,H,W] tensor has the same memory); images NCHW in [0, 1]. Everything is float32
 * arithmetic in the order torch / numpy do it, so results match to the last bit where the goldens say "exact".
 */
public final class MaskOps {
    private MaskOps() {
    }

    /**
     * torch {@code F.interpolate(mode="bilinear", align_corners=False)} without antialias, plane by plane (ComfyUI's
     * mask resizes): source index {@code (dst + 0.5) * in/out - 0.5} clamped at 0, computed in float32; the width
     * pair is combined first, then the height pair, as torch's CPU kernel does.
     */
    public static float[] bilinear(float[] src, int planes, int h, int w, int oh, int ow) {
        if (oh == h && ow == w) {
            return src.clone();
        }
        int[] y0 = new int[oh];
        int[] y1 = new int[oh];
        float[] ly = new float[oh];
        taps(h, oh, y0, y1, ly);
        int[] x0 = new int[ow];
        int[] x1 = new int[ow];
        float[] lx = new float[ow];
        taps(w, ow, x0, x1, lx);
        float[] out = new float[planes * oh * ow];
        for (int p = 0; p < planes; p++) {
            int base = p * h * w;
            for (int y = 0; y < oh; y++) {
                float hy1 = ly[y];
                float hy0 = 1f - hy1;
                int r0 = base + y0[y] * w;
                int r1 = base + y1[y] * w;
                for (int x = 0; x < ow; x++) {
                    float wx1 = lx[x];
                    float wx0 = 1f - wx1;
                    float t0 = src[r0 + x0[x]] * wx0 + src[r0 + x1[x]] * wx1;
                    float t1 = src[r1 + x0[x]] * wx0 + src[r1 + x1[x]] * wx1;
                    out[(p * oh + y) * ow + x] = t0 * hy0 + t1 * hy1;
                }
            }
        }
        return out;
    }

    private static void taps(int in, int out, int[] i0, int[] i1, float[] lambda) {
        float scale = (float) in / out;
        for (int d = 0; d < out; d++) {
            float src = scale * (d + 0.5f) - 0.5f;
            if (src < 0) {
                src = 0;
            }
            int i = Math.min((int) Math.floor(src), in - 1);
            i0[d] = i;
            i1[d] = i < in - 1 ? i + 1 : i;
            lambda[d] = Math.min(Math.max(src - i, 0f), 1f);
        }
    }

    /** torch.round: half to even (0.5 -> 0, 1.5 -> 2). */
    public static float[] round(float[] m) {
        float[] out = new float[m.length];
        for (int i = 0; i < m.length; i++) {
            out[i] = (float) Math.rint(m[i]);
        }
        return out;
    }

    /** 1 - m. */
    public static float[] invert(float[] m) {
        float[] out = new float[m.length];
        for (int i = 0; i < m.length; i++) {
            out[i] = 1f - m[i];
        }
        return out;
    }

    /** Planes cropped to [y0, y0 + ch) x [x0, x0 + cw). */
    public static float[] crop(float[] src, int planes, int h, int w, int y0, int x0, int ch, int cw) {
        float[] out = new float[planes * ch * cw];
        for (int p = 0; p < planes; p++) {
            for (int y = 0; y < ch; y++) {
                System.arraycopy(src, (p * h + y + y0) * w + x0, out, (p * ch + y) * cw, cw);
            }
        }
        return out;
    }

    /**
     * VAEEncodeForInpaint's growth: {@code clamp(conv2d(m, ones(g, g), padding = ceil((g - 1) / 2)), 0, 1)} cropped
     * to the input size (for even g the window is rows i - g/2 .. i + g/2 - 1). m is expected 0/1 (rounded).
     */
    public static float[] growBox(float[] m, int planes, int h, int w, int g) {
        if (g <= 0) {
            return m.clone();
        }
        int pad = (g - 1 + 1) / 2; // ceil((g - 1) / 2)
        float[] out = new float[m.length];
        for (int p = 0; p < planes; p++) {
            int base = p * h * w;
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    float sum = 0;
                    for (int dy = 0; dy < g; dy++) {
                        int yy = y - pad + dy;
                        if (yy < 0 || yy >= h) {
                            continue;
                        }
                        for (int dx = 0; dx < g; dx++) {
                            int xx = x - pad + dx;
                            if (xx >= 0 && xx < w) {
                                sum += m[base + yy * w + xx];
                            }
                        }
                    }
                    out[base + y * w + x] = Math.min(1f, Math.max(0f, sum));
                }
            }
        }
        return out;
    }

    /**
     * ComfyUI's GrowMask: |expand| grey dilations (expand > 0) or erosions (< 0) with the 3x3 footprint
     * [[c,1,c],[1,1,1],[c,1,c]], c = 0 when tapered; cells outside the mask are ignored, soft values stay soft.
     */
    public static float[] growMask(float[] m, int planes, int h, int w, int expand, boolean taperedCorners) {
        float[] cur = m.clone();
        for (int k = 0; k < Math.abs(expand); k++) {
            float[] next = new float[cur.length];
            for (int p = 0; p < planes; p++) {
                int base = p * h * w;
                for (int y = 0; y < h; y++) {
                    for (int x = 0; x < w; x++) {
                        float v = cur[base + y * w + x];
                        for (int dy = -1; dy <= 1; dy++) {
                            for (int dx = -1; dx <= 1; dx++) {
                                if (taperedCorners && dy != 0 && dx != 0) {
                                    continue;
                                }
                                int yy = y + dy;
                                int xx = x + dx;
                                if (yy < 0 || yy >= h || xx < 0 || xx >= w) {
                                    continue;
                                }
                                float u = cur[base + yy * w + xx];
                                v = expand > 0 ? Math.max(v, u) : Math.min(v, u);
                            }
                        }
                        next[base + y * w + x] = v;
                    }
                }
            }
            cur = next;
        }
        return cur;
    }

    /** An image padded for outpainting and its mask (ComfyUI's ImagePadForOutpaint). */
    public record Padded(float[] image, float[] mask, int height, int width) {
    }

    /**
     * ImagePadForOutpaint: grey (0.5) border around the NCHW image; mask [1][H'][W'] = 1 in the border and, inside,
     * {@code ((f - d) / f)^2} for d < f where d is the distance to the nearest PADDED side (i, H - i, j, W - j), only
     * when f > 0 and 2f is less than both sides.
     */
    public static Padded padForOutpaint(float[] image, int batch, int channels, int h, int w, int left, int top,
            int right, int bottom, int feathering) {
        if (left < 0 || top < 0 || right < 0 || bottom < 0 || feathering < 0) {
            throw new IllegalArgumentException("outpaint margins and feathering must be >= 0, got " + left + ","
                    + top + "," + right + "," + bottom + " feather " + feathering);
        }
        int nh = h + top + bottom;
        int nw = w + left + right;
        float[] out = new float[batch * channels * nh * nw];
        java.util.Arrays.fill(out, 0.5f);
        for (int p = 0; p < batch * channels; p++) {
            for (int y = 0; y < h; y++) {
                System.arraycopy(image, (p * h + y) * w, out, (p * nh + y + top) * nw + left, w);
            }
        }
        float[] mask = new float[nh * nw];
        java.util.Arrays.fill(mask, 1f);
        boolean feather = feathering > 0 && feathering * 2 < h && feathering * 2 < w;
        for (int i = 0; i < h; i++) {
            for (int j = 0; j < w; j++) {
                float t = 0f;
                if (feather) {
                    int dt = top != 0 ? i : h;
                    int db = bottom != 0 ? h - i : h;
                    int dl = left != 0 ? j : w;
                    int dr = right != 0 ? w - j : w;
                    int d = Math.min(Math.min(dt, db), Math.min(dl, dr));
                    if (d < feathering) {
                        double v = (double) (feathering - d) / feathering;
                        t = (float) (v * v);
                    }
                }
                mask[(i + top) * nw + j + left] = t;
            }
        }
        return new Padded(out, mask, nh, nw);
    }

    /**
     * comfy.sampler_helpers.prepare_mask: the noise mask [mb][mh][mw] bilinear-resized to the latent size, repeated
     * over the channels and to the batch (rows past the mask's batch repeat it, extra mask rows are dropped).
     */
    public static float[] prepareDenoiseMask(float[] mask, int mb, int mh, int mw, int batch, int channels, int h,
            int w) {
        float[] resized = bilinear(mask, mb, mh, mw, h, w);
        int plane = h * w;
        float[] out = new float[batch * channels * plane];
        for (int b = 0; b < batch; b++) {
            int src = (b % mb) * plane;
            for (int c = 0; c < channels; c++) {
                System.arraycopy(resized, src, out, (b * channels + c) * plane, plane);
            }
        }
        return out;
    }

    /** The result of VAEEncodeForInpaint / InpaintModelConditioning's pixel side (before the VAE). */
    public record MaskedPixels(float[] pixels, float[] mask, int height, int width) {
    }

    /**
     * The shared first half of VAEEncodeForInpaint and InpaintModelConditioning: the mask bilinear-resized to the
     * image size, image and mask centre-cropped to multiples of {@code multiple}, masked pixels (round(mask) = 1)
     * set to 0.5. Returns the cropped masked pixels (NCHW, [0, 1]) and the cropped UNROUNDED mask [B][h][w].
     */
    public static MaskedPixels greyMasked(float[] pixels, int batch, int h, int w, float[] mask, int mb, int mh,
            int mw, int multiple) {
        int ch = h / multiple * multiple;
        int cw = w / multiple * multiple;
        if (ch == 0 || cw == 0) {
            throw new IllegalArgumentException("image " + w + "x" + h + " is smaller than " + multiple + " pixels");
        }
        int y0 = (h % multiple) / 2;
        int x0 = (w % multiple) / 2;
        float[] m = crop(bilinear(mask, mb, mh, mw, h, w), mb, h, w, y0, x0, ch, cw);
        float[] px = crop(pixels, batch * 3, h, w, y0, x0, ch, cw);
        int plane = ch * cw;
        for (int b = 0; b < batch; b++) {
            int mrow = (b % mb) * plane;
            for (int c = 0; c < 3; c++) {
                int base = (b * 3 + c) * plane;
                for (int i = 0; i < plane; i++) {
                    float keep = 1f - (float) Math.rint(m[mrow + i]);
                    px[base + i] = (px[base + i] - 0.5f) * keep + 0.5f;
                }
            }
        }
        return new MaskedPixels(px, m, ch, cw);
    }

    /** diffusers' mask processor: 0 where {@code v < 0.5}, else 1. */
    public static float[] binarize(float[] m) {
        float[] out = new float[m.length];
        for (int i = 0; i < m.length; i++) {
            out[i] = m[i] < 0.5f ? 0f : 1f;
        }
        return out;
    }

    /** torch {@code F.interpolate(mode="nearest")} by an integer factor down: the top-left pixel of each block. */
    public static float[] nearestDown(float[] m, int planes, int h, int w, int oh, int ow) {
        float[] out = new float[planes * oh * ow];
        float sy = (float) h / oh;
        float sx = (float) w / ow;
        for (int p = 0; p < planes; p++) {
            for (int y = 0; y < oh; y++) {
                int iy = Math.min((int) Math.floor(y * sy), h - 1);
                for (int x = 0; x < ow; x++) {
                    int ix = Math.min((int) Math.floor(x * sx), w - 1);
                    out[(p * oh + y) * ow + x] = m[(p * h + iy) * w + ix];
                }
            }
        }
        return out;
    }

    /**
     * A1111's mask blur: a Gaussian of standard deviation {@code sigma} pixels, separable, kernel size
     * {@code 2 * int(2.5 * sigma + 0.5) + 1}, borders reflected (OpenCV's default BORDER_REFLECT_101).
     */
    public static float[] gaussianBlur(float[] m, int planes, int h, int w, double sigma) {
        if (sigma <= 0) {
            return m.clone();
        }
        int radius = (int) (2.5 * sigma + 0.5);
        double[] k = new double[2 * radius + 1];
        double sum = 0;
        for (int i = -radius; i <= radius; i++) {
            k[i + radius] = Math.exp(-(i * i) / (2 * sigma * sigma));
            sum += k[i + radius];
        }
        for (int i = 0; i < k.length; i++) {
            k[i] /= sum;
        }
        float[] tmp = new float[m.length];
        float[] out = new float[m.length];
        for (int p = 0; p < planes; p++) {
            int base = p * h * w;
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    double v = 0;
                    for (int i = -radius; i <= radius; i++) {
                        v += k[i + radius] * m[base + y * w + reflect(x + i, w)];
                    }
                    tmp[base + y * w + x] = (float) v;
                }
            }
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    double v = 0;
                    for (int i = -radius; i <= radius; i++) {
                        v += k[i + radius] * tmp[base + reflect(y + i, h) * w + x];
                    }
                    out[base + y * w + x] = (float) v;
                }
            }
        }
        return out;
    }

    private static int reflect(int i, int n) {
        if (n == 1) {
            return 0;
        }
        while (i < 0 || i >= n) {
            i = i < 0 ? -i : 2 * (n - 1) - i;
        }
        return i;
    }
}
