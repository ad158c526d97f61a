package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.SplittableRandom;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import org.junit.jupiter.api.Test;

/** Tiled VAE decode: tiles cover the image, the blend weights, and tiled against whole decodes on the tiny VAE. */
class VaeTilingTest {
    /** Tiled against whole decode of the tiny SD1 VAE, in units of the whole image's value range. */
    static final double MEAN_TOLERANCE = 0.03;
    static final double P99_TOLERANCE = 0.15;

    @Test
    void autoTilingUsesTheFewestTilesThatFitTheBudget() {
        // the SD VAE decoder's largest activation: 256 channels at the full resolution (8x the latent)
        Vae.Largest sd = (th, tw) -> 256L * (8L * th) * (8L * tw);
        VaeTiling auto = new VaeTiling(VaeTiling.Mode.AUTO, 64, 8, 3L << 30);
        // 1024x1024 (128 latent cells): 2 x 2 tiles of 68 cells (starts 0 and 60) fit 3 GB, not 3 x 3 of 64
        VaeTiling t = Vae.fewestTiles(auto, 128, 128, sd);
        assertEquals(68, t.tile());
        assertEquals(List.of(0, 60), t.starts(128));
        assertTrue(sd.of(68, 68) * 4 * VaeTiling.LIVE_TENSORS <= 3L << 30);
        assertTrue(sd.of(128, 128) * 4 * VaeTiling.LIVE_TENSORS > 3L << 30);
        // a smaller budget needs more tiles; never smaller than the configured tile
        VaeTiling small = Vae.fewestTiles(new VaeTiling(VaeTiling.Mode.AUTO, 64, 8, 1L << 30), 128, 128, sd);
        assertEquals(3, small.starts(128).size());
        assertEquals(64, Vae.fewestTiles(new VaeTiling(VaeTiling.Mode.AUTO, 64, 8, 1L << 20), 128, 128, sd).tile());
    }

    @Test
    void startsCoverTheAxisWithTheOverlap() {
        VaeTiling t = new VaeTiling(VaeTiling.Mode.ALWAYS, 16, 4, 0);
        assertEquals(List.of(0), t.starts(16));
        assertEquals(List.of(0, 12, 24, 34), t.starts(50));
        for (int size = 17; size < 80; size++) {
            List<Integer> s = t.starts(size);
            assertEquals(0, s.getFirst());
            assertEquals(size - 16, s.getLast(), "last tile ends at the border for " + size);
            for (int i = 1; i < s.size(); i++) {
                assertTrue(s.get(i - 1) + 16 - s.get(i) >= 4, "overlap at least 4 for " + size + ": " + s);
            }
        }
    }

    @Test
    void weightsRampOnlyAtInnerEdges() {
        assertEquals(1f, VaeTiling.weight(0, 0, 100, 300, 32));
        assertEquals(1f / 33, VaeTiling.weight(0, 100, 100, 300, 32), 1e-7);
        assertEquals(1f / 33, VaeTiling.weight(99, 100, 100, 300, 32), 1e-7);
        assertEquals(1f, VaeTiling.weight(50, 100, 100, 300, 32));
        assertEquals(1f, VaeTiling.weight(99, 200, 100, 300, 32), "the image's border keeps weight 1");
        assertThrows(IllegalArgumentException.class, () -> new VaeTiling(VaeTiling.Mode.ALWAYS, 8, 8, 0));
    }

    @Test
    void autoTilesOnlyOverTheBudget() {
        VaeTiling t = new VaeTiling(VaeTiling.Mode.AUTO, 64, 8, 1L << 30);
        assertTrue(!t.tiles(10_000_000, 128, 128));
        assertTrue(t.tiles(100_000_000, 128, 128));
        assertTrue(!VaeTiling.always().tiles(Long.MAX_VALUE / 8, 64, 64), "one tile covers it");
        assertTrue(!VaeTiling.never().tiles(100_000_000, 128, 128));
    }

    @Test
    void tiledDecodeAgreesWithWholeDecode() throws Exception {
        try (SafeTensors file = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            Vae vae = Vae.load(Weights.prefixed(file, "first_stage_model."));
            int b = 1;
            int h = 20;
            int w = 28;
            float[] latent = smoothLatent(b, vae.latentChannels(), h, w);
            float[] whole = vae.decode(latent, b, h, w, VaeTiling.never());
            float[] tiled = vae.decode(latent, b, h, w, new VaeTiling(VaeTiling.Mode.ALWAYS, 16, 8, 0));
            assertEquals(whole.length, tiled.length);
            double min = Double.MAX_VALUE;
            double max = -Double.MAX_VALUE;
            double sumDiff = 0;
            double maxDiff = 0;
            for (int i = 0; i < whole.length; i++) {
                min = Math.min(min, whole[i]);
                max = Math.max(max, whole[i]);
                double d = Math.abs(whole[i] - tiled[i]);
                sumDiff += d;
                maxDiff = Math.max(maxDiff, d);
            }
            double range = max - min;
            double[] diffs = new double[whole.length];
            for (int i = 0; i < whole.length; i++) {
                diffs[i] = Math.abs(whole[i] - tiled[i]) / range;
            }
            java.util.Arrays.sort(diffs);
            double p99 = diffs[(int) (0.99 * (diffs.length - 1))];
            double mean = sumDiff / whole.length / range;
            System.out.printf("tiled vs whole: mean |diff| %.4f, 99th percentile %.4f, max %.4f of the range %.3f%n",
                    mean, p99, maxDiff / range, range);
            assertTrue(mean < MEAN_TOLERANCE, "mean difference " + mean + " of the range");
            assertTrue(p99 < P99_TOLERANCE, "99th percentile difference " + p99 + " of the range");
        }
    }

    /** With a decoder whose pixels depend on their own latent cell only, the blend reproduces the whole exactly. */
    @Test
    void localDecoderBlendsToTheWholeImage() {
        int b = 2;
        int c = 3;
        int h = 37;
        int w = 23;
        int factor = 4;
        float[] latent = smoothLatent(b, c, h, w);
        VaeTiling tiling = new VaeTiling(VaeTiling.Mode.ALWAYS, 10, 3, 0);
        VaeTiling.TileDecoder local = (tile, th, tw) -> {
            // image channel k = sin of latent channel k, nearest-upsampled
            float[] img = new float[b * c * th * factor * tw * factor];
            for (int p = 0; p < b * c; p++) {
                for (int y = 0; y < th * factor; y++) {
                    for (int x = 0; x < tw * factor; x++) {
                        img[(p * th * factor + y) * tw * factor + x] =
                                (float) Math.sin(tile[(p * th + y / factor) * tw + x / factor]);
                    }
                }
            }
            return img;
        };
        float[] whole = local.decode(latent, h, w);
        float[] tiled = tiling.decode(latent, b, c, h, w, c, factor, local);
        assertArrayEquals(whole, tiled, 1e-6f);
    }

    /** Tiles bound the activations, not the output: an image that no Java array holds is still refused first. */
    @Test
    void tiledOutputTooLargeForJavaArraysIsRejected() throws Exception {
        try (SafeTensors file = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            Vae vae = Vae.load(Weights.prefixed(file, "first_stage_model."));
            int h = 2560;
            int w = 2560;
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> vae.decode(new float[2 * 4 * h * w], 2, h, w, VaeTiling.always()));
            assertTrue(e.getMessage().contains("20480x20480") && e.getMessage().contains("Java array"),
                    e.getMessage());
        }
    }

    @Test
    void oneTileIsTheWholeDecode() throws Exception {
        try (SafeTensors file = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            Vae vae = Vae.load(Weights.prefixed(file, "first_stage_model."));
            float[] latent = smoothLatent(1, vae.latentChannels(), 8, 8);
            assertArrayEquals(vae.decode(latent, 1, 8, 8, VaeTiling.never()),
                    vae.decode(latent, 1, 8, 8, new VaeTiling(VaeTiling.Mode.ALWAYS, 8, 2, 0)));
        }
    }

    /** A latent like a real one: smooth structure plus some noise (pure noise makes every tile's statistics alike). */
    private static float[] smoothLatent(int b, int c, int h, int w) {
        SplittableRandom rnd = new SplittableRandom(7);
        float[] z = new float[b * c * h * w];
        for (int bc = 0; bc < b * c; bc++) {
            double fy = 0.2 + 0.1 * bc;
            double fx = 0.15 + 0.05 * bc;
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    z[(bc * h + y) * w + x] = (float) (Math.sin(fy * y) * Math.cos(fx * x) + 0.3 * rnd.nextGaussian());
                }
            }
        }
        return z;
    }

    @Test
    void budgetComesFromThePropertyWhenSetElseAThirdOfTheHeapAtMost3Gb() {
        long gb = 1L << 30;
        assertEquals(3 * gb, VaeTiling.budget(null, 18 * gb));
        assertEquals(gb, VaeTiling.budget(null, 3 * gb));
        // the launcher's heap plan fixes the default heap's budget, so a smaller heap decodes the same tiles
        assertEquals(3 * gb, VaeTiling.budget(Long.toString(3 * gb), 3 * gb));
        assertEquals(gb, VaeTiling.budget("nonsense", 3 * gb));
        assertEquals(gb, VaeTiling.budget("-5", 3 * gb));
    }
}
