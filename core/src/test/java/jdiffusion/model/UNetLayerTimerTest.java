package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import org.junit.jupiter.api.Test;

/** The per-layer timer sees every layer of the original structure once, and does not change the output. */
class UNetLayerTimerTest {
    @Test
    void reportsEveryLayerOfTheTinySd1Once() throws Exception {
        try (SafeTensors f = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            UNet unet = UNet.load(Weights.prefixed(f, "model.diffusion_model."));
            SplittableRandom r = new SplittableRandom(1);
            float[] x = new float[4 * 8 * 8];
            float[] ctx = new float[77 * 64];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) r.nextGaussian();
            }
            for (int i = 0; i < ctx.length; i++) {
                ctx[i] = (float) r.nextGaussian();
            }
            List<String> seen = new ArrayList<>();
            float[] timed = unet.forward(x, 1, 8, 8, new float[] {10}, ctx, 77, null,
                    (block, kind, nanos) -> {
                        assertTrue(nanos >= 0);
                        seen.add(block + " " + kind);
                    });
            // Not bit-exact: the kernels' first (interpreted) calls round reductions differently from JIT-compiled
            // ones, up to ~1e-6 here; the timer itself touches no numbers.
            Golden.assertClose("timed vs untimed forward", unet.forward(x, 1, 8, 8, new float[] {10}, ctx, 77, null),
                    timed, 3e-6);
            // 4 levels x 2 res blocks down + 3 down-samplers, middle res/attn/res, 12 output res blocks + 3 up-samplers
            assertEquals(8, seen.stream().filter(s -> s.startsWith("input_blocks") && s.endsWith(" res")).count());
            assertEquals(3, seen.stream().filter(s -> s.endsWith(" downsample")).count());
            assertEquals(3, seen.stream().filter(s -> s.endsWith(" upsample")).count());
            assertEquals(6 + 1 + 9, seen.stream().filter(s -> s.endsWith(" transformer")).count());
            assertTrue(seen.contains("middle_block transformer"));
            assertTrue(seen.contains("output_blocks.11 transformer"));
            assertEquals("time_embed embedding", seen.getFirst());
            assertEquals("out out", seen.getLast());
        }
    }
}
