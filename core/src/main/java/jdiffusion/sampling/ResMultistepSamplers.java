package jdiffusion.sampling;

import static jdiffusion.sampling.SamplerMath.ancestralStep;
import static jdiffusion.sampling.SamplerMath.map;
import static jdiffusion.sampling.SamplerMath.sigmaOf;
import static jdiffusion.sampling.SamplerMath.steps;
import static jdiffusion.sampling.SamplerMath.t;

import java.util.List;

/**
 * RES second-order multistep (arXiv 2308.02157) with optional ancestral noise (eta) and CFG++. ComfyUI draws noise
 * at every step with sigma_next > 0 even when eta = 0 scales it by zero, so the stream advances the same way.
 */
final class ResMultistepSamplers {
    private ResMultistepSamplers() {
    }

    static List<SamplerInfo> all() {
        return List.of(
                SamplerInfo.withNoise("res_multistep", sampler(0.0, false), NoiseSources.DEFAULT),
                SamplerInfo.withNoise("res_multistep_cfg_pp", sampler(0.0, true), NoiseSources.DEFAULT).cfgPp(),
                SamplerInfo.withNoise("res_multistep_ancestral", sampler(1.0, false), NoiseSources.DEFAULT),
                SamplerInfo.withNoise("res_multistep_ancestral_cfg_pp", sampler(1.0, true), NoiseSources.DEFAULT)
                        .cfgPp());
    }

    private static Sampler sampler(double eta, boolean cfgPp) {
        return (m, x, s, n, cb) -> resMultistep(m, x, s, n, cb, eta, cfgPp);
    }

    private static double phi1(double t) {
        return Math.expm1(t) / t;
    }

    private static double phi2(double t) {
        return (phi1(t) - 1.0) / t;
    }

    private static double nanToZero(double v) {
        if (Double.isNaN(v)) {
            return 0;
        }
        // torch.nan_to_num also clamps infinities to the largest float.
        if (Double.isInfinite(v)) {
            return v > 0 ? Float.MAX_VALUE : -Float.MAX_VALUE;
        }
        return v;
    }

    static float[] resMultistep(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise,
            StepCallback callback, double eta, boolean cfgPp) {
        float[] x = x0.clone();
        double oldSigmaDown = Double.NaN;
        float[] oldDenoised = null;
        for (int i = 0; i < steps(sigmas); i++) {
            Denoiser.Prediction p = model.predict(x, sigmas[i]);
            float[] denoised = p.denoised();
            float[] uncond = cfgPp ? p.requireUncond() : null;
            double[] downUp = ancestralStep(sigmas[i], sigmas[i + 1], eta);
            double sigmaDown = downUp[0];
            callback.onStep(i, x, denoised);
            float[] xi = x;
            double sigma = sigmas[i];
            if (sigmaDown == 0 || oldDenoised == null) {
                if (cfgPp) {
                    x = map(x.length, k -> denoised[k] + (xi[k] - (double) uncond[k]) / sigma * sigmaDown);
                } else {
                    double dt = sigmaDown - sigma;
                    x = map(x.length, k -> xi[k] + (xi[k] - (double) denoised[k]) / sigma * dt);
                }
            } else {
                double t = t(sigma);
                double tOld = t(oldSigmaDown);
                double tNext = t(sigmaDown);
                double tPrev = t(sigmas[i - 1]);
                double h = tNext - t;
                double c2 = (tPrev - tOld) / h;
                double phi1 = phi1(-h);
                double phi2 = phi2(-h);
                double b1 = nanToZero(phi1 - phi2 / c2);
                double b2 = nanToZero(phi2 / c2);
                double decay = sigmaOf(h);
                float[] old = oldDenoised;
                if (cfgPp) {
                    float[] shifted = map(x.length, k -> xi[k] + ((double) denoised[k] - uncond[k]));
                    x = map(x.length, k -> decay * shifted[k] + h * (b1 * uncond[k] + b2 * old[k]));
                } else {
                    x = map(x.length, k -> decay * xi[k] + h * (b1 * denoised[k] + b2 * old[k]));
                }
            }
            if (sigmas[i + 1] > 0) {
                float[] eps = noise.next(sigmas[i], sigmas[i + 1]);
                float[] xs = x;
                x = map(x.length, k -> xs[k] + eps[k] * downUp[1]);
            }
            oldDenoised = cfgPp ? uncond : denoised;
            oldSigmaDown = sigmaDown;
        }
        return x;
    }
}
