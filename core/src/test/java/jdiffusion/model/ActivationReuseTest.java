package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;

import java.util.SplittableRandom;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import jdiffusion.model.UNetLayers.Feature;
import jdiffusion.tensor.Ops;
import org.junit.jupiter.api.Test;

/**
 * The memory-saving paths give the same bits as the allocating ones: group norm in place, the res block's norm1
 * output in a reused (dirty) array, and the VAE decode (which uses both) decoding the same latent twice.
 */
class ActivationReuseTest {
    @Test
    void groupNormInPlaceEqualsTheAllocatingOne() {
        SplittableRandom r = new SplittableRandom(7);
        int batch = 2;
        int hw = 333;
        int c = 64;
        float[] x = random(r, batch * hw * c, 3f);
        float[] gamma = random(r, c, 1f);
        float[] beta = random(r, c, 1f);
        for (boolean silu : new boolean[] {false, true}) {
            float[] expected = Ops.groupNorm(x, batch, hw, c, 32, gamma, beta, 1e-6f, silu);
            float[] inPlace = x.clone();
            Ops.groupNormInto(inPlace, inPlace, batch, hw, c, 32, gamma, beta, 1e-6f, silu);
            assertArrayEquals(expected, inPlace, "silu " + silu);
        }
    }

    @Test
    void scratchHandsOutOneArrayPerLengthAndKeepsTheLastTwo() {
        ActivationScratch s = new ActivationScratch();
        float[] a = s.take(100);
        assertSame(a, s.take(100));
        float[] b = s.take(200);
        assertSame(a, s.take(100), "two lengths are kept");
        assertSame(b, s.take(200));
        assertEquals(2, s.allocated());
        s.take(300); // replaces the oldest (100)
        assertNotSame(a, s.take(100));
        assertEquals(4, s.allocated());
    }

    @Test
    void resBlockWithReusedNormArrayGivesTheSameBits() throws Exception {
        try (SafeTensors file = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            UNetTensors t = new UNetTensors(Weights.prefixed(file, "first_stage_model."));
            // a block that changes the width (nin_shortcut) and one that keeps it
            for (String prefix : new String[] {"decoder.up.0.block.0", "decoder.up.0.block.1"}) {
                int in = t.inWidth(prefix + ".conv1");
                ResnetBlock block = ResnetBlock.vae(t, prefix, in);
                SplittableRandom r = new SplittableRandom(prefix.hashCode());
                Feature x = new Feature(random(r, 2 * 9 * 11 * in, 2f), 2, 9, 11, in);
                float[] xCopy = x.data().clone();
                float[] expected = block.forward(x, null).data();
                ActivationScratch scratch = new ActivationScratch();
                java.util.Arrays.fill(scratch.take(x.data().length), Float.NaN); // dirty: must be overwritten
                float[] first = block.forward(x, null, scratch).data();
                float[] second = block.forward(x, null, scratch).data();
                assertArrayEquals(expected, first, prefix);
                assertArrayEquals(expected, second, prefix + " again with the same scratch");
                assertEquals(1, scratch.allocated(), prefix + ": the norm array was reused");
                assertArrayEquals(xCopy, x.data(), prefix + ": the input is left unchanged");
            }
        }
    }

    @Test
    void decodingTwiceGivesTheSameBits() throws Exception {
        try (SafeTensors file = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            Vae vae = Vae.load(Weights.prefixed(file, "first_stage_model."));
            float[] latent = random(new SplittableRandom(3), 2 * vae.latentChannels() * 12 * 10, 1f);
            float[] latentCopy = latent.clone();
            float[] a = vae.decode(latent, 2, 12, 10, VaeTiling.never());
            float[] b = vae.decode(latent, 2, 12, 10, VaeTiling.never());
            assertArrayEquals(a, b);
            assertArrayEquals(latentCopy, latent, "the latent is left unchanged");
        }
    }

    private static float[] random(SplittableRandom r, int n, float scale) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (r.nextDouble(-1, 1) * scale);
        }
        return x;
    }
}
