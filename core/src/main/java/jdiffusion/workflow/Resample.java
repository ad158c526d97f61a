package jdiffusion.workflow;

/**
 * ComfyUI's common_upscale over NCHW planes: optional center crop to the new aspect ratio, then torch's
 * interpolate modes nearest-exact, bilinear and bicubic (align_corners=False, cubic a = -0.75) and area
 * (adaptive average pooling).
 */
final class Resample {
    private Resample() {
    }

    /** planes = batch * channels, each h x w, to newH x newW. */
    static float[] upscale(float[] src, int planes, int h, int w, int newW, int newH, String method, String crop) {
        int y0 = 0;
        int x0 = 0;
        if ("center".equals(crop)) {
            double oldAspect = (double) w / h;
            double newAspect = (double) newW / newH;
            if (oldAspect > newAspect) {
                x0 = (int) Math.round((w - w * (newAspect / oldAspect)) / 2);
            } else if (oldAspect < newAspect) {
                y0 = (int) Math.round((h - h * (oldAspect / newAspect)) / 2);
            }
        }
        int ch = h - 2 * y0;
        int cw = w - 2 * x0;
        float[] out = new float[planes * newH * newW];
        for (int p = 0; p < planes; p++) {
            float[] plane = new float[ch * cw];
            for (int y = 0; y < ch; y++) {
                System.arraycopy(src, p * h * w + (y + y0) * w + x0, plane, y * cw, cw);
            }
            float[] r = resize(plane, ch, cw, newH, newW, method);
            System.arraycopy(r, 0, out, p * newH * newW, r.length);
        }
        return out;
    }

    private static float[] resize(float[] in, int h, int w, int oh, int ow, String method) {
        return switch (method) {
            case "nearest-exact" -> nearestExact(in, h, w, oh, ow);
            case "bilinear" -> separable(in, h, w, oh, ow, false);
            case "bicubic" -> separable(in, h, w, oh, ow, true);
            case "area" -> area(in, h, w, oh, ow);
            default -> throw new WorkflowException("upscale_method '" + method + "' is not supported by this build"
                    + " (supported: nearest-exact, bilinear, area, bicubic)");
        };
    }

    private static float[] nearestExact(float[] in, int h, int w, int oh, int ow) {
        float[] out = new float[oh * ow];
        double sy = (double) h / oh;
        double sx = (double) w / ow;
        for (int y = 0; y < oh; y++) {
            int iy = Math.min((int) Math.floor((y + 0.5) * sy), h - 1);
            for (int x = 0; x < ow; x++) {
                int ix = Math.min((int) Math.floor((x + 0.5) * sx), w - 1);
                out[y * ow + x] = in[iy * w + ix];
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
                double t = src - i0;
                double[] c = cubicWeights(t);
                v = 0;
                for (int k = 0; k < 4; k++) {
                    int idx = Math.min(Math.max(i0 - 1 + k, 0), n - 1);
                    v += c[k] * in[inOff + idx * inStride];
                }
            } else {
                double s = Math.max(src, 0);
                int i0 = Math.min((int) Math.floor(s), n - 1);
                int i1 = Math.min(i0 + 1, n - 1);
                double l = s - i0;
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

    private static float[] area(float[] in, int h, int w, int oh, int ow) {
        float[] out = new float[oh * ow];
        for (int y = 0; y < oh; y++) {
            int ys = (int) Math.floor((double) y * h / oh);
            int ye = (int) Math.ceil((double) (y + 1) * h / oh);
            for (int x = 0; x < ow; x++) {
                int xs = (int) Math.floor((double) x * w / ow);
                int xe = (int) Math.ceil((double) (x + 1) * w / ow);
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
}
