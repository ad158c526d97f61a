package jdiffusion.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jdiffusion.model.Taesd;
import org.junit.jupiter.api.Test;

/** {@code bench vae --vae-decoder taesd}: runs a full-size random TAESD decoder and reports its time. */
class TaesdBenchTest {
    @Test
    void benchesARandomFullSizeDecoder() {
        CliTests.Result r = CliTests.run("bench", "vae", "--vae-decoder", "taesd", "-W", "64", "-H", "64", "--runs",
                "1", "--warmup", "0", "-t", "1");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("TAESD decode 64x64, batch 1"), r.out());
        assertTrue(r.out().contains("median "), r.out());
    }

    @Test
    void macsOfTheFullSizeDecoder() {
        Taesd t = Taesd.randomDecoder(4, 64, 1);
        assertEquals(64, t.width());
        double ww = 64 * 64 * 9;
        // per latent pixel: conv 4->64 + 9 convs, then 10 convs at 4x, 10 at 16x, 4 at 64x and 64->3 at 64x
        double perPixel = 4 * 64 * 9 + 9 * ww + 40 * ww + 160 * ww + 64 * (4 * ww + 64 * 3 * 9);
        assertEquals(perPixel * 64 * 64, TaesdBench.macs(t, 1, 64, 64), 1);
        float[] out = t.decode(new float[4 * 2 * 3], 1, 2, 3);
        assertEquals(3 * 16 * 24, out.length);
    }
}
