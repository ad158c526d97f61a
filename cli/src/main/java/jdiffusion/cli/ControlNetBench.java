package jdiffusion.cli;

import java.util.Locale;
import java.util.SplittableRandom;
import jdiffusion.bench.RandomControlNetWeights;
import jdiffusion.bench.Timing;
import jdiffusion.io.ModelFormatException;
import jdiffusion.model.ControlNet;
import jdiffusion.model.ControlResiduals;
import jdiffusion.model.ModelConfig;
import jdiffusion.model.UNet;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/**
 * {@code bench controlnet}: seconds per sampling step (one CFG evaluation, batch 2) of the UNet alone and of the
 * UNet steered by one ControlNet (the ControlNet's pass plus the UNet with its residuals), full-size random fp16
 * weights; the hint encoder runs once per generation and is timed apart.
 */
@Command(name = "controlnet", mixinStandardHelpOptions = true,
        description = "Seconds per step with and without one ControlNet (batch 2: one cfg step).")
final class ControlNetBench implements Runnable {
    @Mixin
    ModelBench.Options o;

    @Override
    public void run() {
        ModelBench.setUp(o, "controlnet");
        try (ModelBench.Source src = ModelBench.Source.open(o)) {
            System.out.println("weights: " + src.description());
            UNet unet = ModelBench.timed("load + pack UNet", () -> load(() -> UNet.load(src.unet())));
            ControlNet net = ModelBench.timed("load + pack ControlNet", () -> load(() -> ControlNet.load(
                    RandomControlNetWeights.of(src.unet(), unet.config(), o.seed))));
            int[] size = o.size(src.config());
            int h = size[1] / 8;
            int w = size[0] / 8;
            int batch = 2;
            int tokens = 77;
            ModelConfig.UNetSpec spec = src.config().unet();
            SplittableRandom rnd = new SplittableRandom(o.seed);
            float[] x = ModelBench.gaussian(rnd, batch * spec.inChannels() * h * w, 1);
            float[] t = {500f, 500f};
            float[] context = ModelBench.gaussian(rnd, batch * tokens * spec.contextDim(), 1);
            float[] y = spec.admInChannels() > 0 ? ModelBench.gaussian(rnd, batch * spec.admInChannels(), 1) : null;
            float[] image = new float[3 * size[0] * size[1]];
            for (int i = 0; i < image.length; i++) {
                image[i] = rnd.nextDouble() < 0.1 ? 1f : 0f;
            }
            System.out.printf(Locale.ROOT, "%dx%d image (%dx%d latent), batch %d%n", size[0], size[1], w, h, batch);
            ControlNet.Hint hint = ModelBench.timed("hint encoder (once per generation)",
                    () -> net.encodeHint(image, 1, size[1], size[0]));
            int warmup = o.warmup(1);
            int runs = o.runs(3);
            Timing.Runs plain = Timing.run(warmup, runs, () -> unet.forward(x, batch, h, w, t, context, tokens, y));
            Timing.Runs controlled = Timing.run(warmup, runs, () -> {
                ControlResiduals r = net.forward(x, batch, h, w, t, context, tokens, y, hint, 1f);
                unet.forwardWithControl(x, batch, h, w, t, context, tokens, y, r);
            });
            Timing.Runs alone = Timing.run(0, runs, () -> net.forward(x, batch, h, w, t, context, tokens, y, hint, 1f));
            System.out.printf(Locale.ROOT, "UNet alone: %.2f s/step; UNet + 1 ControlNet: %.2f s/step (+%.0f%%);"
                            + " ControlNet pass alone %.2f s%n", plain.median(), controlled.median(),
                    100 * (controlled.median() / plain.median() - 1), alone.median());
            System.out.printf(Locale.ROOT, "load average now %.2f (figures measured under this load)%n",
                    ModelBench.loadAverage());
        } catch (CliException e) {
            throw e;
        } catch (Exception e) {
            throw new CliException("bench controlnet: " + e.getMessage());
        }
    }

    private interface Loader<T> {
        T load() throws ModelFormatException;
    }

    private static <T> T load(Loader<T> l) {
        try {
            return l.load();
        } catch (ModelFormatException e) {
            throw new CliException(e.getMessage());
        }
    }
}
