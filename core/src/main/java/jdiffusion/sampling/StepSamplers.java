package jdiffusion.sampling;

import static jdiffusion.sampling.SamplerMath.map;
import static jdiffusion.sampling.SamplerMath.steps;

import java.util.List;

/** Samplers that re-noise a fresh estimate every step: ddpm (ancestral DDPM posterior) and lcm. */
final class StepSamplers {
    private StepSamplers() {
    }

    static List<SamplerInfo> all() {
        return List.of(
                SamplerInfo.withNoise("ddpm", StepSamplers::ddpm, NoiseSources.DEFAULT),
                SamplerInfo.withNoise("lcm", StepSamplers::lcm, NoiseSources.DEFAULT));
    }

    /**
     * DDPM ancestral sampling in the variance-preserving space: x / sqrt(1 + sigma^2) takes one posterior step with
     * eps = (x - denoised) / sigma, and is scaled back by sqrt(1 + sigma_next^2).
     */
    static float[] ddpm(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise, StepCallback callback) {
        float[] x = x0.clone();
        for (int i = 0; i < steps(sigmas); i++) {
            double sigma = sigmas[i];
            double sigmaPrev = sigmas[i + 1];
            float[] denoised = model.denoise(x, sigma);
            callback.onStep(i, x, denoised);
            double alphaCumprod = 1 / (sigma * sigma + 1);
            double alphaCumprodPrev = 1 / (sigmaPrev * sigmaPrev + 1);
            double alpha = alphaCumprod / alphaCumprodPrev;
            double vpScale = Math.sqrt(1.0 + sigma * sigma);
            double meanScale = Math.sqrt(1.0 / alpha);
            double epsScale = (1 - alpha) / Math.sqrt(1 - alphaCumprod);
            float[] xi = x;
            float[] eps = sigmaPrev > 0 ? noise.next(sigma, sigmaPrev) : null;
            double noiseScale = Math.sqrt((1 - alpha) * (1. - alphaCumprodPrev) / (1. - alphaCumprod));
            double outScale = sigmaPrev != 0 ? Math.sqrt(1.0 + sigmaPrev * sigmaPrev) : 1.0;
            x = map(x.length, k -> {
                double predictedEps = (xi[k] - (double) denoised[k]) / sigma;
                double mu = meanScale * (xi[k] / vpScale - epsScale * predictedEps);
                if (eps != null) {
                    mu += noiseScale * eps[k];
                }
                return mu * outScale;
            });
        }
        return x;
    }

    /**
     * LCM: jump to the denoised estimate, then noise it to sigma_next with the model's noise_scaling: EPS adds
     * sigma_next z, rectified flow (CONST) mixes (1 - sigma_next) x + sigma_next z.
     */
    static float[] lcm(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise, StepCallback callback) {
        float[] x = x0.clone();
        int n = Math.max(1, steps(sigmas));
        for (int i = 0; i < n; i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            callback.onStep(i, x, denoised);
            x = denoised;
            if (sigmas[i + 1] > 0) {
                float[] eps = noise.next(sigmas[i], sigmas[i + 1]);
                double sigmaNext = sigmas[i + 1];
                float[] xi = x;
                if (model.flow()) {
                    x = map(x.length, k -> sigmaNext * eps[k] + (1 - sigmaNext) * xi[k]);
                } else {
                    x = map(x.length, k -> eps[k] * sigmaNext + xi[k]);
                }
            }
        }
        return x;
    }
}
