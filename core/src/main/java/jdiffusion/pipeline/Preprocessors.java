package jdiffusion.pipeline;

import java.util.ArrayDeque;

/**
 * Hint preprocessors that need no model, on one RGB image as NCHW [3][h][w] floats in [0, 1] (a grayscale PNG is read
 * as three equal channels: the grayscale-to-hint step).
 */
public final class Preprocessors {
    private Preprocessors() {
    }

    /** "none" (the image as is), "canny" (thresholds low/high), "invert" (1 - v: white-background line art). */
    public static float[] apply(String module, float[] image, int h, int w, double low, double high) {
        return switch (module) {
            case "none" -> image;
            case "canny" -> canny(image, h, w, low, high);
            case "invert" -> invert(image);
            default -> throw new GenerateException("unknown ControlNet preprocessor '" + module + "' (known: none,"
                    + " canny, invert)");
        };
    }

    public static float[] invert(float[] image) {
        float[] out = new float[image.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = 1f - image[i];
        }
        return out;
    }

    /** ComfyUI's Canny node range: thresholds in [0.01, 0.99], low <= high (kornia refuses low > high). */
    public static void checkCannyThresholds(double low, double high) {
        if (!(low >= 0.01 && low <= 0.99 && high >= 0.01 && high <= 0.99)) {
            throw new GenerateException("canny thresholds must be in [0.01, 0.99], got low " + low + ", high " + high);
        }
        if (low > high) {
            throw new GenerateException("canny low threshold " + low + " is above the high threshold " + high);
        }
    }

    /** Sobel x kernel (correlation); y is its transpose. */
    private static final float[] SOBEL_X = {-1, 0, 1, -2, 0, 2, -1, 0, 1};
    /** Neighbour offsets (dy, dx) of NMS directions 0..7: right, down-right, down, down-left, left, up-left, up, up-right. */
    private static final int[][] DIRECTION = {{0, 1}, {1, 1}, {1, 0}, {1, -1}, {0, -1}, {-1, -1}, {-1, 0}, {-1, 1}};

    /**
     * ComfyUI's Canny node (kornia.filters.canny, 5x5 Gaussian blur sigma 1, hysteresis on): grayscale (0.299, 0.587,
     * 0.114), separable Gaussian with reflect borders, Sobel with replicated borders (not normalised), magnitude
     * sqrt(gx^2 + gy^2 + 1e-6), the gradient angle rounded to 45 degrees, non-maximum suppression against both
     * neighbours along it (zero outside the image), weak (> low) and strong (> high) edges, weak ones kept when
     * 8-connected to a strong one. Returns the edges (0 or 1) on all three channels.
     */
    public static float[] canny(float[] image, int h, int w, double low, double high) {
        checkCannyThresholds(low, high);
        if (h < 3 || w < 3) {
            throw new GenerateException("canny needs an image of at least 3x3 pixels, got " + w + "x" + h);
        }
        int n = h * w;
        float[] gray = new float[n];
        for (int p = 0; p < n; p++) {
            gray[p] = 0.299f * image[p] + 0.587f * image[n + p] + 0.114f * image[2 * n + p];
        }
        float[] blurred = gaussianBlur(gray, h, w);
        float[] magnitude = new float[n];
        float[] angle = new float[n];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                float gx = 0f;
                float gy = 0f;
                for (int i = 0; i < 3; i++) {
                    int yy = Math.clamp(y + i - 1, 0, h - 1);
                    for (int j = 0; j < 3; j++) {
                        float v = blurred[yy * w + Math.clamp(x + j - 1, 0, w - 1)];
                        gx += SOBEL_X[i * 3 + j] * v;
                        gy += SOBEL_X[j * 3 + i] * v;
                    }
                }
                magnitude[y * w + x] = (float) Math.sqrt(gx * gx + gy * gy + 1e-6f);
                float degrees = (float) (180.0f * (float) Math.atan2(gy, gx) / (float) Math.PI);
                angle[y * w + x] = (float) Math.rint(degrees / 45f);
            }
        }
        byte[] level = new byte[n]; // 0 none, 1 weak, 2 strong
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int p = y * w + x;
                float m = magnitude[p];
                int pos = Math.floorMod((int) angle[p], 8);
                int neg = Math.floorMod((int) angle[p] + 4, 8);
                boolean isMax = Math.min(m - neighbour(magnitude, h, w, y, x, pos),
                        m - neighbour(magnitude, h, w, y, x, neg)) > 0f;
                float kept = isMax ? m : 0f;
                level[p] = (byte) ((kept > low ? 1 : 0) + (kept > high ? 1 : 0));
            }
        }
        // hysteresis: strong edges spread through 8-connected weak ones (kornia iterates to the same fixpoint)
        ArrayDeque<Integer> queue = new ArrayDeque<>();
        for (int p = 0; p < n; p++) {
            if (level[p] == 2) {
                queue.add(p);
            }
        }
        while (!queue.isEmpty()) {
            int p = queue.poll();
            int y = p / w;
            int x = p % w;
            for (int[] d : DIRECTION) {
                int yy = y + d[0];
                int xx = x + d[1];
                if (yy >= 0 && yy < h && xx >= 0 && xx < w && level[yy * w + xx] == 1) {
                    level[yy * w + xx] = 2;
                    queue.add(yy * w + xx);
                }
            }
        }
        float[] out = new float[3 * n];
        for (int p = 0; p < n; p++) {
            float v = level[p] == 2 ? 1f : 0f;
            out[p] = v;
            out[n + p] = v;
            out[2 * n + p] = v;
        }
        return out;
    }

    private static float neighbour(float[] m, int h, int w, int y, int x, int direction) {
        int yy = y + DIRECTION[direction][0];
        int xx = x + DIRECTION[direction][1];
        return yy >= 0 && yy < h && xx >= 0 && xx < w ? m[yy * w + xx] : 0f;
    }

    /** kornia gaussian_blur2d((5, 5), (1, 1)): normalised exp(-x^2 / 2), rows then columns, reflect borders. */
    static float[] gaussianBlur(float[] img, int h, int w) {
        float[] k = new float[5];
        float sum = 0f;
        for (int i = 0; i < 5; i++) {
            float x = i - 2;
            k[i] = (float) Math.exp(-(x * x) / 2f);
            sum += k[i];
        }
        for (int i = 0; i < 5; i++) {
            k[i] /= sum;
        }
        float[] rows = new float[h * w];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                float acc = 0f;
                for (int i = 0; i < 5; i++) {
                    acc += k[i] * img[y * w + reflect(x + i - 2, w)];
                }
                rows[y * w + x] = acc;
            }
        }
        float[] out = new float[h * w];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                float acc = 0f;
                for (int i = 0; i < 5; i++) {
                    acc += k[i] * rows[reflect(y + i - 2, h) * w + x];
                }
                out[y * w + x] = acc;
            }
        }
        return out;
    }

    /** torch 'reflect' padding: mirror without repeating the edge (-1 -> 1, n -> n - 2). */
    private static int reflect(int i, int n) {
        if (i < 0) {
            return -i;
        }
        if (i >= n) {
            return 2 * (n - 1) - i;
        }
        return i;
    }
}
