package jdiffusion.pipeline;

import jdiffusion.io.PngImage;

/** Hint images as the ControlNet takes them: RGB in [0, 1] (uint8 / 255, not [-1, 1]), NCHW. */
public final class ControlHint {
    private ControlHint() {
    }

    /** One image as NCHW [1][3][H][W] floats {@code v / 255} (diffusers' do_normalize=False, ComfyUI's LoadImage). */
    public static float[] unitFloats(PngImage image) {
        int plane = image.width() * image.height();
        float[] out = new float[3 * plane];
        byte[] rgb = image.rgb();
        for (int p = 0; p < plane; p++) {
            for (int c = 0; c < 3; c++) {
                out[c * plane + p] = (rgb[p * 3 + c] & 0xFF) / 255f;
            }
        }
        return out;
    }

    /**
     * ComfyUI's hint resize (controlnet.py get_control, utils.common_upscale "nearest-exact", "center"): crop the
     * centre to the target aspect (offsets rounded half to even, as Python's round), then nearest-exact.
     *
     * @param image NCHW planes of channels x h x w (one image)
     */
    public static float[] comfyResize(float[] image, int channels, int h, int w, int outH, int outW) {
        if (h == outH && w == outW) {
            return image.clone();
        }
        int y0 = 0;
        int x0 = 0;
        double oldAspect = (double) w / h;
        double newAspect = (double) outW / outH;
        if (oldAspect > newAspect) {
            x0 = (int) Math.rint((w - w * (newAspect / oldAspect)) / 2);
        } else if (oldAspect < newAspect) {
            y0 = (int) Math.rint((h - h * (oldAspect / newAspect)) / 2);
        }
        int ch = h - 2 * y0;
        int cw = w - 2 * x0;
        // torch nearest-exact: source index floor((dst + 0.5) * in / out), clamped (scale in float32 as torch does)
        float sy = (float) ch / outH;
        float sx = (float) cw / outW;
        float[] out = new float[channels * outH * outW];
        for (int c = 0; c < channels; c++) {
            for (int y = 0; y < outH; y++) {
                int iy = Math.min((int) Math.floor((y + 0.5f) * sy), ch - 1) + y0;
                for (int x = 0; x < outW; x++) {
                    int ix = Math.min((int) Math.floor((x + 0.5f) * sx), cw - 1) + x0;
                    out[(c * outH + y) * outW + x] = image[(c * h + iy) * w + ix];
                }
            }
        }
        return out;
    }

    /**
     * diffusers' hint resize (VaeImageProcessor.resize of a PIL image, LANCZOS) when the size differs: the image as
     * 8-bit RGB resized by PIL's two-pass fixed-point Lanczos (horizontal, then vertical), then / 255.
     *
     * @param image NCHW [1][3][h][w] in [0, 1]
     */
    public static float[] diffusersResize(float[] image, int h, int w, int outH, int outW) {
        if (h == outH && w == outW) {
            return image.clone();
        }
        int plane = h * w;
        float[] out = new float[3 * outH * outW];
        for (int c = 0; c < 3; c++) {
            int[] px = new int[plane];
            for (int p = 0; p < plane; p++) {
                px[p] = Math.round(Math.min(1f, Math.max(0f, image[c * plane + p])) * 255f);
            }
            int[] horizontal = w == outW ? px : Lanczos.pass(px, h, w, outW, true);
            int[] both = h == outH ? horizontal : Lanczos.pass(horizontal, h, outW, outH, false);
            for (int p = 0; p < outH * outW; p++) {
                out[c * outH * outW + p] = both[p] / 255f;
            }
        }
        return out;
    }

    /** Pillow's ImagingResample for 8-bit bands with the LANCZOS filter (support 3). */
    static final class Lanczos {
        private static final int PRECISION_BITS = 32 - 8 - 2;

        private Lanczos() {
        }

        private static double sinc(double x) {
            if (x == 0.0) {
                return 1.0;
            }
            x = x * Math.PI;
            return Math.sin(x) / x;
        }

        private static double filter(double x) {
            return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0;
        }

        /** One pass along rows (horizontal) or columns: in is rows x cols, the resized axis becomes outSize. */
        static int[] pass(int[] in, int rows, int cols, int outSize, boolean horizontal) {
            int inSize = horizontal ? cols : rows;
            double scale = (double) inSize / outSize;
            double filterScale = Math.max(scale, 1.0);
            double support = 3.0 * filterScale;
            int ksize = (int) Math.ceil(support) * 2 + 1;
            int[] bounds = new int[outSize * 2];
            int[] kk = new int[outSize * ksize];
            for (int xx = 0; xx < outSize; xx++) {
                double center = (xx + 0.5) * scale;
                double ss = 1.0 / filterScale;
                int xmin = Math.max((int) (center - support + 0.5), 0);
                int xmax = Math.min((int) (center + support + 0.5), inSize) - xmin;
                double[] k = new double[xmax];
                double ww = 0.0;
                for (int x = 0; x < xmax; x++) {
                    double v = filter((x + xmin - center + 0.5) * ss);
                    k[x] = v;
                    ww += v;
                }
                for (int x = 0; x < xmax; x++) {
                    double v = ww != 0.0 ? k[x] / ww : k[x];
                    kk[xx * ksize + x] = v < 0 ? (int) (-0.5 + v * (1 << PRECISION_BITS))
                            : (int) (0.5 + v * (1 << PRECISION_BITS));
                }
                bounds[xx * 2] = xmin;
                bounds[xx * 2 + 1] = xmax;
            }
            int outRows = horizontal ? rows : outSize;
            int outCols = horizontal ? outSize : cols;
            int[] out = new int[outRows * outCols];
            for (int r = 0; r < outRows; r++) {
                for (int c = 0; c < outCols; c++) {
                    int xx = horizontal ? c : r;
                    int xmin = bounds[xx * 2];
                    int xmax = bounds[xx * 2 + 1];
                    long ss = 1L << (PRECISION_BITS - 1);
                    for (int x = 0; x < xmax; x++) {
                        int v = horizontal ? in[r * cols + xmin + x] : in[(xmin + x) * cols + c];
                        ss += (long) v * kk[xx * ksize + x];
                    }
                    int level = (int) (ss >> PRECISION_BITS);
                    out[r * outCols + c] = Math.min(255, Math.max(0, level));
                }
            }
            return out;
        }
    }
}
