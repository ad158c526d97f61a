package jdiffusion.pipeline;

import java.util.ArrayList;
import java.util.List;
import jdiffusion.model.ControlNet;
import jdiffusion.model.ControlResiduals;
import jdiffusion.sampling.ModelSamplingDiscrete;

/**
 * The ControlNets of one generation, each with its hint (already at the generation's size), strength and window:
 * for every model evaluation, the summed residuals of those whose window holds the evaluation's sigma. Both
 * references run the ControlNet on the whole CFG batch [uncond, cond] with the UNet's own inputs.
 */
public final class ControlStack {

    /** When a ControlNet steers, as a function of the sampler's sigma of the evaluation. */
    @FunctionalInterface
    public interface Window {
        boolean active(double sigma);

        Window ALWAYS = sigma -> true;

        /**
         * ComfyUI (controlnet.py get_control): skipped when sigma > percent_to_sigma(start) or sigma <
         * percent_to_sigma(end), compared in float32 as torch compares a float32 tensor with a Python float.
         */
        static Window comfy(ModelSamplingDiscrete ms, double startPercent, double endPercent) {
            float start = (float) ms.percentToSigma(startPercent);
            float end = (float) ms.percentToSigma(endPercent);
            return sigma -> !((float) sigma > start || (float) sigma < end);
        }

        /**
         * diffusers (control_guidance_start/end): loop step i of N steers unless {@code i/N < start or (i+1)/N >
         * end} (strict). The step is found by the sigma the schedule lists for it; a sigma between two listed ones
         * (a second-order sampler's extra evaluation) belongs to the step in progress.
         */
        static Window diffusers(double[] sigmas, int steps, double start, double end) {
            return sigma -> {
                int i = stepOf(sigmas, sigma);
                return !((double) i / steps < start || (double) (i + 1) / steps > end);
            };
        }

        private static int stepOf(double[] sigmas, double sigma) {
            float s = (float) sigma;
            for (int i = 0; i < sigmas.length; i++) {
                if ((float) sigmas[i] == s) {
                    return i;
                }
            }
            int step = 0;
            for (int i = 0; i < sigmas.length; i++) {
                if (sigmas[i] >= sigma) {
                    step = i;
                }
            }
            return step;
        }
    }

    /**
     * One ControlNet with its hint.
     *
     * @param hint     NCHW [hintBatch][3][H][W] in [0, 1] at the generation's pixel size
     * @param strength multiplies its residuals
     */
    public record Entry(ControlNet net, float[] hint, int hintBatch, int height, int width, float strength,
            Window window) {
    }

    private final List<Entry> entries;
    private final ControlNet.Hint[] encoded;
    private int applied;

    public ControlStack(List<Entry> entries) {
        this.entries = List.copyOf(entries);
        this.encoded = new ControlNet.Hint[entries.size()];
    }

    public boolean isEmpty() {
        return entries.isEmpty();
    }

    public List<Entry> entries() {
        return entries;
    }

    /** Evaluations at which at least one ControlNet steered. */
    public int applied() {
        return applied;
    }

    /** The summed residuals for one evaluation, or null when no ControlNet's window holds sigma. */
    public ControlResiduals residuals(float[] xc, int rows, int h, int w, float[] timesteps, float[] context,
            int tokens, float[] y, double sigma) {
        ControlResiduals sum = null;
        for (int i = 0; i < entries.size(); i++) {
            Entry e = entries.get(i);
            if (e.strength() == 0f || !e.window().active(sigma)) {
                continue; // diffusers runs it with scale 0 (residuals exactly 0), ComfyUI skips it: the same result
            }
            if (encoded[i] == null || encoded[i].h() != h || encoded[i].w() != w) {
                if (e.height() != 8 * h || e.width() != 8 * w) {
                    throw new GenerateException("ControlNet hint is " + e.width() + "x" + e.height()
                            + " pixels but the latent is " + w + "x" + h + " (" + 8 * w + "x" + 8 * h + " pixels)");
                }
                encoded[i] = e.net().encodeHint(e.hint(), e.hintBatch(), e.height(), e.width());
            }
            ControlResiduals r = e.net().forward(xc, rows, h, w, timesteps, context, tokens, y, encoded[i],
                    e.strength());
            sum = ControlResiduals.sum(sum, r);
        }
        if (sum != null) {
            applied++;
        }
        return sum;
    }
}
