package jdiffusion.tensor;

import static jdiffusion.tensor.Oracle.abs;
import static jdiffusion.tensor.Oracle.assertClose;
import static jdiffusion.tensor.Oracle.random;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The fused upsample convolution against the scalar oracle: nearest 2x upsampling, then a 3x3 pad-1 convolution. */
class UpsampleConvTest {
    private static final double REL = 1e-5;

    @Test
    void matchesUpsampleThenConvolve() {
        SplittableRandom rnd = new SplittableRandom(21);
        // batch, h, w, in, out: odd and even sizes, a single pixel, channels off the vector width
        int[][] cases = {{1, 1, 1, 3, 5}, {2, 3, 4, 7, 9}, {1, 5, 2, 16, 33}, {2, 4, 4, 40, 17}, {1, 6, 7, 5, 64}};
        for (int[] cs : cases) {
            int batch = cs[0];
            int h = cs[1];
            int w = cs[2];
            int in = cs[3];
            int out = cs[4];
            float[] x = random(rnd, batch * h * w * in);
            float[] weight = random(rnd, out * in * 9);
            float[] bias = random(rnd, out);
            float[] up = Reference.resizeNearest(x, batch, h, w, in, 2 * h, 2 * w);
            float[] expected = Reference.conv2d(up, batch, 2 * h, 2 * w, in, weight, bias, out, 3, 3, 1, 1, 1, 1, 1);
            float[] mag = Reference.conv2d(abs(up), batch, 2 * h, 2 * w, in, abs(weight), abs(bias), out, 3, 3, 1, 1, 1, 1, 1);
            UpsampleConv conv = UpsampleConv.of(weight, bias, out, in);
            assertClose("upsample conv " + java.util.Arrays.toString(cs), expected, conv.forward(x, batch, h, w), mag,
                    REL, 1e-30);
            UpsampleConv noBias = UpsampleConv.of(weight, null, out, in);
            assertClose("without bias", Reference.conv2d(up, batch, 2 * h, 2 * w, in, weight, null, out, 3, 3, 1, 1, 1, 1, 1),
                    noBias.forward(x, batch, h, w), mag, REL, 1e-30);
        }
    }

    @Test
    void rejectsAWeightOfTheWrongSize() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> UpsampleConv.of(new float[10], null, 2, 2));
        org.junit.jupiter.api.Assertions.assertTrue(e.getMessage().contains("2x2x3x3"), e.getMessage());
    }
}
