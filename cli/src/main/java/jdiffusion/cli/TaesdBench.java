package jdiffusion.cli;

import java.nio.file.Path;
import java.util.Locale;
import java.util.SplittableRandom;
import jdiffusion.bench.Flops;
import jdiffusion.bench.OpProfile;
import jdiffusion.bench.Timing;
import jdiffusion.io.ModelFormatException;
import jdiffusion.model.ModelConfig;
import jdiffusion.model.Taesd;

/**
 * {@code bench vae --vae-decoder taesd|FILE}: TAESD decodes at the family's native size (or --width/--height);
 * {@code taesd} builds a full-size random decoder (width 64, the family's latent channels) in memory, a FILE is read.
 */
final class TaesdBench {
    private TaesdBench() {
    }

    static void run(ModelBench.Options o, int batch, String decoder) {
        double peak = ModelBench.setUp(o, "vae (TAESD)");
        ModelConfig config = ModelConfig.preset(o.arch);
        int latentChannels = config.family() == jdiffusion.model.Family.SD3 ? 16 : 4;
        Taesd t = ModelBench.timed("load TAESD", () -> {
            if (decoder.equalsIgnoreCase("taesd")) {
                return Taesd.randomDecoder(latentChannels, 64, o.seed);
            }
            try {
                return Taesd.open(Path.of(decoder));
            } catch (ModelFormatException e) {
                throw new CliException(e.getMessage());
            }
        });
        if (!t.canDecode()) {
            throw new CliException("--vae-decoder " + decoder + ": no TAESD decoder in it");
        }
        System.out.println("weights: " + (decoder.equalsIgnoreCase("taesd")
                ? "TAESD decoder, full-size (width 64) random fp16 weights, made in memory" : decoder));
        int[] size = o.size(config);
        int h = size[1] / 8;
        int w = size[0] / 8;
        float[] latent = ModelBench.gaussian(new SplittableRandom(o.seed), batch * t.latentChannels() * h * w, 1);
        System.out.printf(Locale.ROOT, "TAESD decode %dx%d, batch %d%n", size[0], size[1], batch);
        for (int i = 0; i < o.warmup(1); i++) {
            ModelBench.timed("warm-up run", () -> t.decode(latent, batch, h, w));
        }
        OpProfile profile = OpProfile.start(5);
        Timing.Runs runs = Timing.run(0, o.runs(3), () -> t.decode(latent, batch, h, w));
        ModelBench.report(runs, Flops.convolutions(macs(t, batch, h, w), 0), peak, profile.stop());
    }

    /** Nominal multiply-adds of one decode (the fused upsample convolutions counted at full size). */
    static double macs(Taesd t, int batch, int h, int w) {
        double ww = (double) t.width() * t.width() * 9;
        double px = (double) h * w;
        double m = px * t.latentChannels() * t.width() * 9 + px * 9 * ww; // conv 1, blocks 3-5
        m += 4 * px * 10 * ww; // conv 7, blocks 8-10
        m += 16 * px * 10 * ww; // conv 12, blocks 13-15
        m += 64 * px * (4 * ww + t.width() * 3 * 9.0); // conv 17, block 18, conv 19
        return batch * m;
    }
}
