package jdiffusion.pipeline;

import java.util.HashMap;
import java.util.Map;
import jdiffusion.sampling.ConditionalModel;
import jdiffusion.sampling.DiscreteModel;
import jdiffusion.sampling.PredictionType;

/**
 * The denoiser wrapper of diffusers' Euler-family schedulers (and of the explicit-sigmas path): the input is scaled
 * by 1 / sqrt(sigma^2 + 1) (scale_model_input), the UNet gets the timestep the schedule paired with that sigma (a
 * fractional one for Euler/Heun, not ComfyUI's nearest integer), and eps / v / x0 become the denoised estimate.
 * A sigma the schedule does not list (a sampler's intermediate point) gets diffusers' log-sigma interpolation.
 */
final class ScheduledModel implements ConditionalModel {
    private final DiscreteModel.Network network;
    private final PredictionType prediction;
    private final Map<Float, Float> timestepBySigma = new HashMap<>();
    private final float[] logSigmas;

    /**
     * @param sigmas    the schedule's sigmas (as the sampler sees them)
     * @param timesteps the UNet timestep of each sigma, same order (the final sigma 0 needs none)
     * @param trainingSigmas the 1000 training sigmas (for sigmas not in the schedule)
     */
    ScheduledModel(DiscreteModel.Network network, PredictionType prediction, double[] sigmas, double[] timesteps,
            float[] trainingSigmas) {
        this.network = network;
        this.prediction = prediction;
        for (int i = 0; i < timesteps.length && i < sigmas.length; i++) {
            timestepBySigma.putIfAbsent((float) sigmas[i], (float) timesteps[i]);
        }
        logSigmas = new float[trainingSigmas.length];
        for (int i = 0; i < logSigmas.length; i++) {
            logSigmas[i] = (float) Math.log(trainingSigmas[i]);
        }
    }

    @Override
    public Pair evaluate(float[] x, double sigma, boolean withUncond) {
        float[] xc = prediction.calculateInput(x, sigma);
        float t = timestep(sigma);
        int n = x.length;
        if (!withUncond) {
            return new Pair(prediction.denoised(x, network.apply(xc, t, false, sigma), sigma), null);
        }
        float[] out = network.apply(UnetNetwork.concat(xc, xc), t, true, sigma);
        float[] uncond = java.util.Arrays.copyOfRange(out, 0, n);
        float[] cond = java.util.Arrays.copyOfRange(out, n, 2 * n);
        return new Pair(prediction.denoised(x, cond, sigma), prediction.denoised(x, uncond, sigma));
    }

    float timestep(double sigma) {
        Float t = timestepBySigma.get((float) sigma);
        if (t == null && prediction == PredictionType.FLOW) {
            return (float) sigma * 1000f; // flow: the timestep is sigma * 1000
        }
        return t != null ? t : (float) interpolatedTimestep(sigma);
    }

    /** diffusers' _sigma_to_t: linear interpolation in log sigma between the two neighbouring table entries. */
    double interpolatedTimestep(double sigma) {
        double logSigma = Math.log(Math.max(sigma, 1e-10));
        int last = logSigmas.length - 1;
        int low = 0;
        for (int i = 0; i < logSigmas.length; i++) {
            if (logSigma >= logSigmas[i]) {
                low = i;
            }
        }
        low = Math.min(low, last - 1);
        double lo = logSigmas[low];
        double hi = logSigmas[low + 1];
        double w = Math.min(Math.max((lo - logSigma) / (lo - hi), 0), 1);
        return (1 - w) * low + w * (low + 1);
    }
}
