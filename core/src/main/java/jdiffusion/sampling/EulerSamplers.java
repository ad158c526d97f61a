package jdiffusion.sampling;

import static jdiffusion.sampling.SamplerMath.addScaled;
import static jdiffusion.sampling.SamplerMath.ancestralStep;
import static jdiffusion.sampling.SamplerMath.map;
import static jdiffusion.sampling.SamplerMath.steps;
import static jdiffusion.sampling.SamplerMath.toD;

import java.util.List;

/** Euler, Euler ancestral and their CFG++ variants; ddim is ComfyUI's euler. */
final class EulerSamplers {
    private EulerSamplers() {
    }

    static List<SamplerInfo> all() {
        return List.of(
                SamplerInfo.plain("euler", EulerSamplers::euler),
                // ComfyUI's ddim is the euler function (its random inpaint noise only matters with masks).
                SamplerInfo.plain("ddim", EulerSamplers::euler),
                SamplerInfo.withNoise("euler_ancestral", EulerSamplers::eulerAncestral, NoiseSources.DEFAULT),
                SamplerInfo.plain("euler_cfg_pp", (m, x, s, n, cb) -> eulerAncestralCfgPp(m, x, s, n, cb, 0.0, 0.0))
                        .cfgPp(),
                SamplerInfo.withNoise("euler_ancestral_cfg_pp",
                        (m, x, s, n, cb) -> eulerAncestralCfgPp(m, x, s, n, cb, 1.0, 1.0), NoiseSources.DEFAULT).cfgPp());
    }

    /** Karras et al. (2022) Algorithm 2 with Euler steps (no churn, as ComfyUI's defaults). */
    static float[] euler(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise, StepCallback callback) {
        float[] x = x0.clone();
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            float[] d = toD(x, sigmas[i], denoised);
            callback.onStep(i, x, denoised);
            x = addScaled(x, d, sigmas[i + 1] - sigmas[i]);
        }
        return x;
    }

    /** Euler steps down to sigma_down, then fresh noise up to sigma_next; the last step returns denoised. */
    static float[] eulerAncestral(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise,
            StepCallback callback) {
        if (model.flow()) {
            return eulerAncestralRf(model, x0, sigmas, noise, callback, 1.0, 1.0);
        }
        float[] x = x0.clone();
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            double[] downUp = ancestralStep(sigmas[i], sigmas[i + 1], 1.0);
            callback.onStep(i, x, denoised);
            if (downUp[0] == 0) {
                x = denoised;
            } else {
                float[] d = toD(x, sigmas[i], denoised);
                double dt = downUp[0] - sigmas[i];
                float[] eps = noise.next(sigmas[i], sigmas[i + 1]);
                float[] xi = x;
                x = map(x.length, k -> xi[k] + d[k] * dt + eps[k] * downUp[1]);
            }
        }
        return x;
    }

    /**
     * ComfyUI's euler_ancestral_RF (what euler_ancestral runs on a rectified-flow model): a deterministic step to
     * sigma_down = sigma_next * (1 + (sigma_next / sigma - 1) * eta) along the line between x and denoised, then the
     * signal rescaled by (1 - sigma_next) / (1 - sigma_down) and fresh noise added so that the noise level is
     * sigma_next again; the last step (sigma_next 0) returns denoised.
     */
    static float[] eulerAncestralRf(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise,
            StepCallback callback, double eta, double sNoise) {
        float[] x = x0.clone();
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            callback.onStep(i, x, denoised);
            if (sigmas[i + 1] == 0) {
                x = denoised;
                continue;
            }
            double[] rf = rfAncestralStep(sigmas[i], sigmas[i + 1], eta);
            double ratio = rf[0] / sigmas[i];
            float[] xi = x;
            x = map(x.length, k -> xi[k] * ratio + denoised[k] * (1 - ratio));
            if (eta > 0) {
                float[] eps = noise.next(sigmas[i], sigmas[i + 1]);
                float[] xd = x;
                x = map(x.length, k -> xd[k] * rf[1] + eps[k] * sNoise * rf[2]);
            }
        }
        return x;
    }

    /**
     * The ancestral step of a rectified-flow model (ComfyUI's _RF samplers): {sigma_down, alpha_next / alpha_down,
     * renoise coefficient} with alpha = 1 - sigma; the renoise coefficient is sqrt(sigma_next^2 - sigma_down^2
     * alpha_next^2 / alpha_down^2).
     */
    static double[] rfAncestralStep(double sigma, double sigmaNext, double eta) {
        double down = sigmaNext * (1 + (sigmaNext / sigma - 1) * eta);
        double alphaNext = 1 - sigmaNext;
        double alphaDown = 1 - down;
        double renoise = Math.sqrt(sigmaNext * sigmaNext - down * down * alphaNext * alphaNext
                / (alphaDown * alphaDown));
        return new double[] {down, alphaNext / alphaDown, renoise};
    }

    /**
     * CFG++ Euler (ancestral when eta > 0): the step direction comes from the uncond prediction, the target from
     * the guided one, alpha = sigma * exp(lambda): 1 up to rounding for discrete models, 1 - sigma for flow (0 at
     * sigma 1, where the step keeps the whole latent as noise).
     */
    static float[] eulerAncestralCfgPp(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise,
            StepCallback callback, double eta, double sNoise) {
        float[] x = x0.clone();
        for (int i = 0; i < steps(sigmas); i++) {
            Denoiser.Prediction p = model.predict(x, sigmas[i]);
            float[] denoised = p.denoised();
            float[] uncond = p.requireUncond();
            callback.onStep(i, x, denoised);
            if (sigmas[i + 1] == 0) {
                x = denoised;
                continue;
            }
            double alphaS = sigmas[i] * Math.exp(SamplerMath.halfLogSnr(sigmas[i], model.flow()));
            double alphaT = sigmas[i + 1] * Math.exp(SamplerMath.halfLogSnr(sigmas[i + 1], model.flow()));
            float[] xi = x;
            double[] d = new double[x.length];
            for (int k = 0; k < d.length; k++) {
                d[k] = (xi[k] - alphaS * uncond[k]) / sigmas[i];
            }
            double[] downUp = ancestralStep(sigmas[i] / alphaS, sigmas[i + 1] / alphaT, eta);
            double sigmaDown = alphaT * downUp[0];
            float[] eps = eta > 0 && sNoise > 0 ? noise.next(sigmas[i], sigmas[i + 1]) : null;
            x = map(x.length, k -> {
                double v = alphaT * denoised[k] + sigmaDown * d[k];
                return eps == null ? v : v + alphaT * eps[k] * sNoise * downUp[1];
            });
        }
        return x;
    }
}
