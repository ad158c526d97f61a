package jdiffusion.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jdiffusion.model.ModelConfig;
import org.junit.jupiter.api.Test;

/** The architecture FLOP counts against the published figures (issue 6) and hand-computed layers. */
class FlopsTest {
    private static final ModelConfig SD15 = ModelConfig.preset("sd15");
    private static final ModelConfig SDXL = ModelConfig.preset("sdxl");

    @Test
    void sd15UnetAt64IsAbout080Tflop() {
        double t = Flops.unet(SD15.unet(), 1, 64, 64, 77).total() / 1e12;
        assertEquals(0.80, t, 0.80 * 0.06, "SD1.5 UNet at 64x64: " + t + " TFLOP");
    }

    @Test
    void sdxlUnetAt128IsAbout68Tflop() {
        double t = Flops.unet(SDXL.unet(), 1, 128, 128, 77).total() / 1e12;
        assertEquals(6.8, t, 6.8 * 0.06, "SDXL UNet at 128x128: " + t + " TFLOP");
    }

    @Test
    void vaeDecoderAt512IsAbout25TflopLessTheFusedUpsampling() {
        // the usual count is about 2.5 TFLOP; the three upsampling convolutions (3x3 over the upsampled image:
        // 512 channels at 128x128 and 256x256, 256 at 512x512) run fused at 4/9 of their work
        double upsampling = 2.0 * 9 * (128 * 128 * 512.0 * 512 + 256 * 256 * 512.0 * 512 + 512 * 512 * 256.0 * 256);
        double t = Flops.vaeDecoder(SD15.vae(), 1, 64, 64).total();
        assertEquals(2.5e12 - upsampling * 5 / 9, t, 2.5e12 * 0.06, "VAE decoder at 512x512: " + t / 1e12 + " TFLOP");
    }

    @Test
    void batchScalesLinearly() {
        double one = Flops.unet(SD15.unet(), 1, 64, 64, 77).total();
        double two = Flops.unet(SD15.unet(), 2, 64, 64, 77).total();
        assertEquals(2 * one, two, one * 1e-9);
    }

    @Test
    void clipLMatchesHandCount() {
        ModelConfig.TextEncoderSpec l = SD15.textEncoders().getFirst();
        Flops f = Flops.textEncoder(l, 1, 77);
        // per layer: q,k,v,out (4 w^2) and the MLP (2 w m) per token, 2 per multiply-add
        double gemm = 12 * 77 * 2.0 * (4.0 * 768 * 768 + 2.0 * 768 * 3072);
        assertEquals(gemm, f.of(Flops.Kind.GEMM), 1);
        assertEquals(12 * 2 * 2.0 * 77 * 77 * 768, f.of(Flops.Kind.ATTENTION), 1);
        assertTrue(f.total() > gemm);
    }
}
