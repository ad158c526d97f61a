package jdiffusion.sampling;

import java.util.function.IntToDoubleFunction;

/**
 * Element-wise helpers shared by the sampler families. Latents stay float32 between steps (as in ComfyUI); each
 * update is computed per element in double and rounded once.
 */
final class SamplerMath {
    private SamplerMath() {
    }

    /** A new latent whose element k is f(k). */
    static float[] map(int n, IntToDoubleFunction f) {
        float[] out = new float[n];
        for (int k = 0; k < n; k++) {
            out[k] = (float) f.applyAsDouble(k);
        }
        return out;
    }

    /** x + v * scale element-wise: an Euler step (v = d, scale = dt) or added noise (v = eps, scale = sigma_up). */
    static float[] addScaled(float[] x, float[] v, double scale) {
        return map(x.length, k -> x[k] + v[k] * scale);
    }

    /** The Karras ODE derivative (x - denoised) / sigma. */
    static float[] toD(float[] x, double sigma, float[] denoised) {
        return map(x.length, k -> (x[k] - (double) denoised[k]) / sigma);
    }

    /** (sigma_down, sigma_up) of an ancestral step from sigmaFrom to sigmaTo (k-diffusion get_ancestral_step). */
    static double[] ancestralStep(double sigmaFrom, double sigmaTo, double eta) {
        if (eta == 0) {
            return new double[] {sigmaTo, 0};
        }
        double candidate = eta
                * Math.sqrt(sigmaTo * sigmaTo * (sigmaFrom * sigmaFrom - sigmaTo * sigmaTo) / (sigmaFrom * sigmaFrom));
        // Python's min(sigma_to, candidate): sigma_to unless candidate is smaller, so also when candidate is NaN
        // (sigma_from infinite: the flow CFG++ step from sigma 1, where alpha = 0)
        double up = candidate < sigmaTo ? candidate : sigmaTo;
        double down = Math.sqrt(sigmaTo * sigmaTo - up * up);
        return new double[] {down, up};
    }

    /** k-diffusion's t = -log(sigma). */
    static double t(double sigma) {
        return -Math.log(sigma);
    }

    /** k-diffusion's sigma = exp(-t). */
    static double sigmaOf(double t) {
        return Math.exp(-t);
    }

    /**
     * The half log-SNR lambda = log(alpha / sigma) of ComfyUI's sigma_to_half_log_snr: -log(sigma) for the discrete
     * (eps / v) models, where alpha = 1, and -logit(sigma) = log((1 - sigma) / sigma) for a rectified-flow model
     * (CONST), where alpha = 1 - sigma. Infinite at sigma 0 (and, for flow, at sigma 1).
     */
    static double halfLogSnr(double sigma, boolean flow) {
        return flow ? -Math.log(sigma / (1 - sigma)) : -Math.log(sigma);
    }

    /** The inverse, half_log_snr_to_sigma: exp(-lambda), or for flow sigmoid(-lambda) = 1 / (1 + exp(lambda)). */
    static double sigmaOfHalfLogSnr(double lambda, boolean flow) {
        return flow ? 1 / (1 + Math.exp(lambda)) : Math.exp(-lambda);
    }

    /** The model sampling of a flow model, which percent_to_sigma needs; fails clearly when the denoiser lacks it. */
    static ModelSamplingDiscrete flowSampling(Denoiser model) {
        ModelSamplingDiscrete ms = model.modelSampling();
        if (ms == null) {
            throw new IllegalStateException("this sampler needs the flow model's sampling (its shift) on a"
                    + " rectified-flow model: mark the denoiser with asFlow(modelSampling)");
        }
        return ms;
    }

    /**
     * ComfyUI's offset_first_sigma_for_snr: on a flow model a first sigma >= 1 (infinite half log-SNR) becomes
     * percent_to_sigma(1e-4), rounded to float32 as it is stored in the sigma tensor; otherwise sigmas itself.
     */
    static double[] offsetFirstSigma(double[] sigmas, Denoiser model) {
        if (sigmas.length <= 1 || !model.flow() || !(sigmas[0] >= 1)) {
            return sigmas;
        }
        double[] out = sigmas.clone();
        out[0] = (float) flowSampling(model).percentToSigma(1e-4);
        return out;
    }

    static int steps(double[] sigmas) {
        return sigmas.length - 1;
    }
}
