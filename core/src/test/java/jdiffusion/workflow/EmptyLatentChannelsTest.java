package jdiffusion.workflow;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import jdiffusion.workflow.Values.Latent;
import jdiffusion.workflow.Values.Mask;
import org.junit.jupiter.api.Test;

/** ComfyUI's fix_empty_latent_channels as {@link Latent#withChannelsIfEmpty}. */
class EmptyLatentChannelsTest {
    @Test
    void anEmptyLatentTakesTheModelsChannelsAndKeepsItsSizeAndMask() {
        Mask mask = new Mask(new float[] {1, 0, 0, 1, 1, 0}, 1, 2, 3);
        Latent sd1 = new Latent(new float[2 * 4 * 5 * 7], 2, 4, 5, 7, mask);
        Latent sd3 = sd1.withChannelsIfEmpty(16);
        assertEquals(16, sd3.channels());
        assertEquals(2, sd3.batch());
        assertEquals(5, sd3.height());
        assertEquals(7, sd3.width());
        assertSame(mask, sd3.noiseMask());
        assertArrayEquals(new float[2 * 16 * 5 * 7], sd3.samples());
        Latent back = sd3.withChannelsIfEmpty(4);
        assertEquals(4, back.channels());
        assertEquals(2 * 4 * 5 * 7, back.samples().length);
    }

    @Test
    void aLatentWithContentOrTheRightChannelsIsLeftAlone() {
        float[] v = new float[4 * 3 * 3];
        v[17] = 0.25f;
        Latent encoded = new Latent(v, 1, 4, 3, 3);
        assertSame(encoded, encoded.withChannelsIfEmpty(16));
        Latent empty = new Latent(new float[16 * 9], 1, 16, 3, 3);
        assertSame(empty, empty.withChannelsIfEmpty(16));
    }
}
