package jdiffusion.sampling;

import static jdiffusion.sampling.SamplerMath.map;
import static jdiffusion.sampling.SamplerMath.steps;

import java.util.List;

/** Gradient-estimation sampler (openreview o2ND9v0CeK, gamma 2) and its CFG++ variant. */
final class GradientEstimationSamplers {
    private static final double GE_GAMMA = 2.0;

    private GradientEstimationSamplers() {
    }

    static List<SamplerInfo> all() {
        return List.of(
                SamplerInfo.plain("gradient_estimation", (m, x, s, n, cb) -> sample(m, x, s, cb, false)),
                SamplerInfo.plain("gradient_estimation_cfg_pp", (m, x, s, n, cb) -> sample(m, x, s, cb, true))
                        .cfgPp());
    }

    static float[] sample(Denoiser model, float[] x0, double[] sigmas, StepCallback callback, boolean cfgPp) {
        float[] x = x0.clone();
        float[] oldD = null;
        for (int i = 0; i < steps(sigmas); i++) {
            Denoiser.Prediction p = model.predict(x, sigmas[i]);
            float[] denoised = p.denoised();
            float[] direction = cfgPp ? p.requireUncond() : denoised;
            float[] xi = x;
            double sigma = sigmas[i];
            float[] d = map(x.length, k -> (xi[k] - (double) direction[k]) / sigma);
            callback.onStep(i, x, denoised);
            double dt = sigmas[i + 1] - sigma;
            if (sigmas[i + 1] == 0) {
                x = denoised;
            } else {
                double sigmaNext = sigmas[i + 1];
                x = cfgPp ? map(x.length, k -> denoised[k] + d[k] * sigmaNext) : map(x.length, k -> xi[k] + d[k] * dt);
                if (i >= 1) {
                    float[] prev = oldD;
                    float[] xs = x;
                    x = map(x.length, k -> xs[k] + (GE_GAMMA - 1) * (d[k] - (double) prev[k]) * dt);
                }
            }
            oldD = d;
        }
        return x;
    }
}
