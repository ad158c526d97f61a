package jdiffusion.model.mmdit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import jdiffusion.Golden;
import jdiffusion.io.BasicView;
import jdiffusion.io.DType;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import org.junit.jupiter.api.Test;

/**
 * The positional table is not copied: the MMDiT reads only the centre crop each grid size needs (SD3.5 Medium's
 * whole table would be 0.9 GB as float32). Over weights that refuse a whole-table read it gives the same output as
 * over a plain view of the file (up to float rounding), for several grid sizes in turn; weightBytes counts only the crop.
 */
class MMDiTPosTableTest {

    /** The file's MMDiT weights; reading pos_embed whole fails. */
    private static Weights noWholeTable(Weights w) {
        return new BasicView(w) {
            @Override
            public float[] get(String name) {
                if (name.equals("pos_embed")) {
                    throw new AssertionError("the whole positional table was read");
                }
                return w.get(name);
            }

            @Override
            public DType dtype(String name) {
                return w.dtype(name);
            }

            @Override
            public float[] slice(String name, long start, int count) {
                return w.slice(name, start, count);
            }
        };
    }

    /** The same weights as a plain view whose slice is the default (whole tensor, then a copy of the range). */
    private static Weights plain(Weights w) {
        return new BasicView(w) {
            @Override
            public DType dtype(String name) {
                return w.dtype(name);
            }
        };
    }

    private static float[] random(int n, long seed) {
        Random r = new Random(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) r.nextGaussian();
        }
        return v;
    }

    @Test
    void onlyTheCropIsReadAndTheOutputIsTheSame() throws Exception {
        try (SafeTensors f = SafeTensors.open(Golden.model("tiny-sd35-fp16.safetensors"))) {
            Weights w = Weights.prefixed(f, Sd3Config.MMDIT_PREFIX);
            MMDiT mapped = MMDiT.load(noWholeTable(w));
            MMDiT copied = MMDiT.load(plain(w));
            MMDiTConfig c = mapped.config();
            int tokens = 5;
            int[][] sizes = {{8, 12}, {6, 6}, {24, 24}, {5, 7}, {8, 12}};
            for (int[] s : sizes) {
                int h = s[0];
                int wd = s[1];
                float[] x = random(2 * c.inChannels() * h * wd, h * 31 + wd);
                float[] ctx = random(2 * tokens * c.contextIn(), 2);
                float[] pooled = random(2 * c.admIn(), 3);
                float[] t = {1000f, 500.5f};
                float[] a = mapped.forward(x, 2, h, wd, t, ctx, tokens, pooled);
                float[] b = copied.forward(x, 2, h, wd, t, ctx, tokens, pooled);
                for (int i = 0; i < a.length; i++) { // the same up to float rounding of the parallel kernels
                    assertEquals(b[i], a[i], 1e-5 * (1 + Math.abs(b[i])), h + "x" + wd + " at " + i);
                }
                int gh = (h + 1) / 2;
                int gw = (wd + 1) / 2;
                long linears = copied.weightBytes() - (long) gh * gw * c.hidden() * 4;
                assertTrue(mapped.weightBytes() - linears == (long) gh * gw * c.hidden() * 4,
                        "weightBytes counts the last crop only");
            }
        }
    }
}
