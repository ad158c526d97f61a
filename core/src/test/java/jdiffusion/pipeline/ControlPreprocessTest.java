package jdiffusion.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The hint preprocessors and resizers against math and a second, literal implementation of kornia's canny (the
 * eight NMS kernels as convolutions and a gather, hysteresis by repeated neighbour convolution to the fixpoint).
 */
class ControlPreprocessTest {

    /** A square of value v on black, [from, to) in both axes, with a ring of v / 2 around it (the edge then lies on
     * that ring's pixel centres: a unique maximum of the gradient across it). */
    private static float[] square(int size, int from, int to, float v) {
        float[] img = new float[3 * size * size];
        for (int c = 0; c < 3; c++) {
            for (int y = from - 1; y <= to; y++) {
                for (int x = from - 1; x <= to; x++) {
                    boolean ring = y == from - 1 || y == to || x == from - 1 || x == to;
                    img[(c * size + y) * size + x] = ring ? v / 2 : v;
                }
            }
        }
        return img;
    }

    @Test
    void cannyOfASquareIsItsOutline() {
        int n = 64;
        float[] edges = Preprocessors.canny(square(n, 16, 48, 1f), n, n, 0.4, 0.8);
        int count = 0;
        for (int y = 0; y < n; y++) {
            for (int x = 0; x < n; x++) {
                float v = edges[y * n + x];
                assertTrue(v == 0f || v == 1f);
                assertEquals(v, edges[n * n + y * n + x], "three equal channels");
                boolean nearCorner = Math.min(Math.abs(x - 15), Math.abs(x - 48)) <= 3
                        && Math.min(Math.abs(y - 15), Math.abs(y - 48)) <= 3;
                if (!nearCorner) {
                    assertEquals(v, edges[x * n + y], "symmetric under transpose at " + x + "," + y);
                    assertEquals(v, edges[y * n + (n - 1 - x)], "symmetric under a mirror at " + x + "," + y);
                }
                int dist = Math.min(Math.min(Math.abs(x - 15), Math.abs(x - 48)), Math.min(Math.abs(y - 15),
                        Math.abs(y - 48)));
                boolean nearBoundary = dist <= 1 && x >= 13 && x <= 50 && y >= 13 && y <= 50;
                if (v == 1f) {
                    assertTrue(nearBoundary, "edge away from the square's boundary at " + x + "," + y);
                    count++;
                }
            }
        }
        // every side carries edges along its middle
        for (int i = 20; i < 44; i++) {
            assertEquals(1f, edges[i * n + 15], "left side (the ring) at row " + i);
            assertEquals(0f, edges[i * n + 14] + edges[i * n + 16], "one pixel wide at row " + i);
        }
        assertTrue(count >= 4 * 28, "outline pixels " + count);
    }

    @Test
    void thresholdsAboveEveryGradientGiveNoEdges() {
        // a step of 0.1 gives Sobel magnitudes near 0.2 at most
        float[] edges = Preprocessors.canny(square(32, 8, 24, 0.1f), 32, 32, 0.98, 0.99);
        for (float v : edges) {
            assertEquals(0f, v);
        }
        float[] flat = new float[3 * 32 * 32];
        java.util.Arrays.fill(flat, 0.5f);
        for (float v : Preprocessors.canny(flat, 32, 32, 0.01, 0.02)) {
            assertEquals(0f, v, "a flat image has no edges");
        }
    }

    @Test
    void cannyMatchesALiteralKorniaTranscription() {
        Random r = new Random(7);
        for (int trial = 0; trial < 6; trial++) {
            int h = 20 + r.nextInt(20);
            int w = 20 + r.nextInt(20);
            float[] img = new float[3 * h * w];
            // smooth blobs plus noise: edges of every direction and weak/strong mixtures
            double cx = r.nextDouble() * w;
            double cy = r.nextDouble() * h;
            for (int c = 0; c < 3; c++) {
                for (int y = 0; y < h; y++) {
                    for (int x = 0; x < w; x++) {
                        double d = Math.hypot(x - cx, y - cy);
                        img[(c * h + y) * w + x] = (float) Math.min(1, Math.max(0, (d < h / 3.0 ? 0.8 : 0.1)
                                + 0.3 * r.nextDouble() * (c + 1) / 3));
                    }
                }
            }
            double low = 0.1 + 0.3 * r.nextDouble();
            double high = low + 0.3 * r.nextDouble();
            float[] ours = Preprocessors.canny(img, h, w, low, high);
            float[] theirs = KorniaCanny.edges(img, h, w, (float) low, (float) high);
            assertArrayEquals(theirs, java.util.Arrays.copyOf(ours, h * w), "trial " + trial);
        }
    }

    @Test
    void cannyRefusesBadThresholds() {
        float[] img = square(16, 4, 12, 1f);
        assertThrows(GenerateException.class, () -> Preprocessors.canny(img, 16, 16, 0.8, 0.4));
        assertThrows(GenerateException.class, () -> Preprocessors.canny(img, 16, 16, 0.0, 0.4));
        assertThrows(GenerateException.class, () -> Preprocessors.canny(img, 16, 16, 0.4, 1.0));
    }

    @Test
    void invertIsOneMinus() {
        float[] out = Preprocessors.invert(new float[] {0f, 0.25f, 1f});
        assertArrayEquals(new float[] {1f, 0.75f, 0f}, out);
    }

    @Test
    void comfyResizeCropsTheCentreThenTakesNearestExact() {
        // 1 channel 2x6 -> 2x2: the centre 2x2 (columns 2, 3) is kept
        float[] img = {0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15};
        assertArrayEquals(new float[] {2, 3, 12, 13}, ControlHint.comfyResize(img, 1, 2, 6, 2, 2));
        // 2x2 -> 4x4 nearest-exact repeats each pixel twice
        float[] up = ControlHint.comfyResize(new float[] {1, 2, 3, 4}, 1, 2, 2, 4, 4);
        assertArrayEquals(new float[] {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}, up);
        float[] same = {5, 6, 7, 8};
        assertArrayEquals(same, ControlHint.comfyResize(same, 1, 2, 2, 2, 2));
    }

    @Test
    void lanczosKeepsConstantsAndIsIdentityAtTheSameSize() {
        float[] grey = new float[3 * 10 * 14];
        java.util.Arrays.fill(grey, 100 / 255f);
        float[] down = ControlHint.diffusersResize(grey, 10, 14, 6, 9);
        for (float v : down) {
            assertEquals(100 / 255f, v, 1e-7f, "a constant image stays constant");
        }
        float[] up = ControlHint.diffusersResize(grey, 10, 14, 23, 31);
        for (float v : up) {
            assertEquals(100 / 255f, v, 1e-7f);
        }
        float[] img = new float[3 * 4 * 4];
        for (int i = 0; i < img.length; i++) {
            img[i] = (i * 37 % 256) / 255f;
        }
        assertArrayEquals(img, ControlHint.diffusersResize(img, 4, 4, 4, 4));
        // a step edge resized up keeps its two plateaus and overshoots a little (Lanczos ringing), clamped to 8 bits
        float[] step = new float[3 * 1 * 8];
        for (int c = 0; c < 3; c++) {
            for (int x = 4; x < 8; x++) {
                step[c * 8 + x] = 1f;
            }
        }
        float[] s = ControlHint.diffusersResize(step, 1, 8, 1, 16);
        assertEquals(0f, s[0]);
        assertEquals(1f, s[15]);
        for (int x = 1; x < 16; x++) {
            assertTrue(s[x] >= 0f && s[x] <= 1f);
        }
    }

    /** kornia.filters.canny written out as its operations (second implementation, test only). */
    static final class KorniaCanny {
        private static final int[][] NMS = {{0, 1}, {1, 1}, {1, 0}, {1, -1}, {0, -1}, {-1, -1}, {-1, 0}, {-1, 1}};

        static float[] edges(float[] img, int h, int w, float low, float high) {
            int n = h * w;
            float[] gray = new float[n];
            for (int p = 0; p < n; p++) {
                gray[p] = 0.299f * img[p] + 0.587f * img[n + p] + 0.114f * img[2 * n + p];
            }
            float[] blurred = Preprocessors.gaussianBlur(gray, h, w);
            float[] mag = new float[n];
            float[] ang = new float[n];
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    float a = at(blurred, h, w, y - 1, x - 1);
                    float b = at(blurred, h, w, y - 1, x);
                    float c = at(blurred, h, w, y - 1, x + 1);
                    float d = at(blurred, h, w, y, x - 1);
                    float f = at(blurred, h, w, y, x + 1);
                    float g = at(blurred, h, w, y + 1, x - 1);
                    float hh = at(blurred, h, w, y + 1, x);
                    float i = at(blurred, h, w, y + 1, x + 1);
                    float gx = -a + c - 2 * d + 2 * f - g + i;
                    float gy = -a - 2 * b - c + g + 2 * hh + i;
                    mag[y * w + x] = (float) Math.sqrt(gx * gx + gy * gy + 1e-6f);
                    ang[y * w + x] = (float) Math.rint((180f * (float) Math.atan2(gy, gx) / (float) Math.PI) / 45f)
                            * 45f;
                }
            }
            // conv2d with the 8 NMS kernels (zero padding): centre minus neighbour k
            float[][] nms = new float[8][n];
            for (int k = 0; k < 8; k++) {
                for (int y = 0; y < h; y++) {
                    for (int x = 0; x < w; x++) {
                        int yy = y + NMS[k][0];
                        int xx = x + NMS[k][1];
                        float nb = yy >= 0 && yy < h && xx >= 0 && xx < w ? mag[yy * w + xx] : 0f;
                        nms[k][y * w + x] = mag[y * w + x] - nb;
                    }
                }
            }
            float[] edges = new float[n];
            for (int p = 0; p < n; p++) {
                int pos = (int) (((ang[p] / 45f) % 8 + 8) % 8);
                int neg = (int) ((((ang[p] / 45f) + 4) % 8 + 8) % 8);
                boolean isMax = Math.min(nms[pos][p], nms[neg][p]) > 0f;
                float m = isMax ? mag[p] : 0f;
                edges[p] = (m > low ? 0.5f : 0f) + (m > high ? 0.5f : 0f);
            }
            float[] old = new float[n];
            java.util.Arrays.fill(old, -1f);
            float[] hyst = edges;
            while (!java.util.Arrays.equals(old, edges)) {
                hyst = new float[n];
                for (int y = 0; y < h; y++) {
                    for (int x = 0; x < w; x++) {
                        boolean strongNeighbour = false;
                        for (int[] d : NMS) {
                            int yy = y + d[0];
                            int xx = x + d[1];
                            if (yy >= 0 && yy < h && xx >= 0 && xx < w && edges[yy * w + xx] == 1f) {
                                strongNeighbour = true;
                            }
                        }
                        float weak = edges[y * w + x] == 0.5f ? 1f : 0f;
                        float strong = edges[y * w + x] == 1f ? 1f : 0f;
                        hyst[y * w + x] = (strongNeighbour ? 1f : 0f) * weak + strong;
                    }
                }
                old = edges;
                float[] next = new float[n];
                for (int p = 0; p < n; p++) {
                    float weak = edges[p] == 0.5f ? 1f : 0f;
                    next[p] = hyst[p] + (hyst[p] == 0f ? weak * 0.5f : 0f);
                }
                edges = next;
            }
            return hyst;
        }

        private static float at(float[] m, int h, int w, int y, int x) {
            return m[Math.clamp(y, 0, h - 1) * w + Math.clamp(x, 0, w - 1)];
        }
    }
}
