package jdiffusion.workflow;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import org.junit.jupiter.api.Test;

/** Values torch.nn.functional.interpolate gives for small inputs (align_corners=False). */
class ResampleTest {
    private static final float[] TWO_BY_TWO = {1, 2, 3, 4};

    @Test
    void bilinearUpscale() {
        float[] out = Resample.upscale(TWO_BY_TWO, 1, 2, 2, 4, 4, "bilinear", "disabled");
        assertArrayEquals(new float[] {1, 1.25f, 1.75f, 2, 1.5f, 1.75f, 2.25f, 2.5f, 2.5f, 2.75f, 3.25f, 3.5f, 3,
            3.25f, 3.75f, 4}, out, 1e-6f);
    }

    @Test
    void nearestExactAndArea() {
        assertArrayEquals(new float[] {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4},
                Resample.upscale(TWO_BY_TWO, 1, 2, 2, 4, 4, "nearest-exact", "disabled"));
        float[] four = new float[16];
        for (int i = 0; i < 16; i++) {
            four[i] = i;
        }
        assertArrayEquals(new float[] {2.5f, 4.5f, 10.5f, 12.5f},
                Resample.upscale(four, 1, 4, 4, 2, 2, "area", "disabled"), 1e-6f);
    }

    @Test
    void bicubicUpscale() {
        // torch's upsample_bicubic2d worked by hand for the first row: source x = (i + 0.5) / 2 - 0.5 (not clamped),
        // taps at floor(x) - 1 .. floor(x) + 2 clamped to the edge, Keys weights with a = -0.75 (t = 0.75: -0.03515625,
        // 0.26171875, 0.87890625, -0.10546875), the same in y
        float[] out = Resample.upscale(TWO_BY_TWO, 1, 2, 2, 4, 4, "bicubic", "disabled");
        assertArrayEquals(new float[] {0.68359375f, 1.015625f, 1.5625f, 1.89453125f},
                java.util.Arrays.copyOf(out, 4), 1e-5f);
    }

    @Test
    void centerCropKeepsTheMiddle() {
        float[] wide = {1, 2, 3, 4, 5, 6, 7, 8}; // 2 x 4 to 2 x 2: the middle two columns
        assertArrayEquals(new float[] {2, 3, 6, 7}, Resample.upscale(wide, 1, 2, 4, 2, 2, "nearest-exact", "center"));
    }
}
