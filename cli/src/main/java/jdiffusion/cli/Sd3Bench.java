package jdiffusion.cli;

import java.nio.file.Files;
import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;
import jdiffusion.bench.Flops;
import jdiffusion.bench.OpProfile;
import jdiffusion.bench.RandomWeights;
import jdiffusion.bench.Timing;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import jdiffusion.model.mmdit.MMDiT;
import jdiffusion.model.mmdit.MMDiTConfig;
import jdiffusion.model.mmdit.Sd3Config;
import jdiffusion.model.mmdit.Sd3Keys;

/**
 * {@code bench unet --arch sd35m|sd35l|sd3m} (or {@code -c} an SD3 file): MMDiT evaluations at 1024x1024 by default,
 * batch 2 (one CFG step), 154 context tokens (ComfyUI's 77 CLIP + 77 T5 rows), on full-size random fp16 weights
 * made in memory.
 */
final class Sd3Bench {
    static final int TOKENS = 154;

    private Sd3Bench() {
    }

    /** Whether the options name an SD3 architecture or file. */
    static boolean wanted(ModelBench.Options o) {
        if (o.checkpoint == null) {
            return Sd3Keys.isPreset(o.arch);
        }
        if (!Files.isRegularFile(o.checkpoint)) {
            return false;
        }
        try (SafeTensors f = SafeTensors.open(o.checkpoint)) {
            return Sd3Config.isSd3(f);
        } catch (ModelFormatException | RuntimeException e) {
            return false;
        }
    }

    static void run(ModelBench.Options o, int batch) {
        double peak = ModelBench.setUp(o, "unet (MMDiT)");
        int w = o.width == null ? 1024 : o.width;
        int h = o.height == null ? 1024 : o.height;
        if (w < 16 || h < 16 || w % 16 != 0 || h % 16 != 0) {
            throw new CliException("width and height must be positive multiples of 16 for SD3, got " + w + "x" + h);
        }
        SafeTensors file = null;
        try {
            Weights weights;
            String description;
            if (o.checkpoint != null) {
                file = SafeTensors.open(o.checkpoint);
                weights = Weights.prefixed(file, Sd3Config.MMDIT_PREFIX);
                description = "SD3 checkpoint " + o.checkpoint;
            } else {
                MMDiTConfig cfg = Sd3Keys.preset(o.arch);
                weights = RandomWeights.of(Sd3Keys.checkpoint(cfg), Sd3Config.MMDIT_PREFIX, o.seed);
                description = o.arch + " (" + cfg.variant() + ") full-size random fp16 weights, made in memory";
            }
            System.out.println("weights: " + description);
            Weights wts = weights;
            MMDiT mmdit = ModelBench.timed("load + pack MMDiT", () -> {
                try {
                    return MMDiT.load(wts);
                } catch (ModelFormatException e) {
                    throw new CliException(e.getMessage());
                }
            });
            MMDiTConfig c = mmdit.config();
            int lh = h / 8;
            int lw = w / 8;
            SplittableRandom rnd = new SplittableRandom(o.seed);
            float[] x = ModelBench.gaussian(rnd, batch * c.inChannels() * lh * lw, 1);
            float[] t = new float[batch];
            Arrays.fill(t, 500f);
            float[] context = ModelBench.gaussian(rnd, batch * TOKENS * c.contextIn(), 1);
            float[] pooled = ModelBench.gaussian(rnd, batch * c.admIn(), 1);
            System.out.printf(Locale.ROOT, "MMDiT %s: %d blocks of %d, %dx%d latent (%dx%d image), batch %d,"
                    + " %d context tokens%n", c.variant(), c.depth(), c.hidden(), lw, lh, w, h, batch, TOKENS);
            int warmup = o.warmup(1);
            for (int i = 0; i < warmup; i++) {
                ModelBench.timed("warm-up run", () -> mmdit.forward(x, batch, lh, lw, t, context, TOKENS, pooled));
            }
            OpProfile profile = OpProfile.start(5);
            Timing.Runs runs = Timing.run(0, o.runs(3),
                    () -> mmdit.forward(x, batch, lh, lw, t, context, TOKENS, pooled));
            ModelBench.report(runs, Flops.mmdit(c, batch, lh, lw, TOKENS), peak, profile.stop());
        } catch (CliException e) {
            throw e;
        } catch (Exception e) {
            throw new CliException("bench unet: " + e.getMessage());
        } finally {
            if (file != null) {
                file.close();
            }
        }
    }
}
