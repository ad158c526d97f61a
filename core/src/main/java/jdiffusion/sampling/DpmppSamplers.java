package jdiffusion.sampling;

import static jdiffusion.sampling.SamplerMath.ancestralStep;
import static jdiffusion.sampling.SamplerMath.map;
import static jdiffusion.sampling.SamplerMath.sigmaOf;
import static jdiffusion.sampling.SamplerMath.steps;
import static jdiffusion.sampling.SamplerMath.t;

import java.util.List;

/** DPM-Solver++ (2S ancestral, 2M) and their CFG++ variants (the SDE ones live with the Brownian samplers). */
final class DpmppSamplers {
    private DpmppSamplers() {
    }

    static List<SamplerInfo> all() {
        return List.of(
                SamplerInfo.withNoise("dpmpp_2s_ancestral", DpmppSamplers::dpmpp2sAncestral, NoiseSources.DEFAULT),
                SamplerInfo.withNoise("dpmpp_2s_ancestral_cfg_pp", DpmppSamplers::dpmpp2sAncestralCfgPp,
                        NoiseSources.DEFAULT).cfgPp(),
                SamplerInfo.plain("dpmpp_2m", DpmppSamplers::dpmpp2m),
                SamplerInfo.plain("dpmpp_2m_cfg_pp", DpmppSamplers::dpmpp2mCfgPp).cfgPp());
    }

    /** DPM-Solver++(2S) down to sigma_down (midpoint in log-sigma), then ancestral noise. */
    static float[] dpmpp2sAncestral(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise,
            StepCallback callback) {
        float[] x = x0.clone();
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            double[] downUp = ancestralStep(sigmas[i], sigmas[i + 1], 1.0);
            callback.onStep(i, x, denoised);
            float[] xi = x;
            double sigma = sigmas[i];
            if (downUp[0] == 0) {
                double dt = downUp[0] - sigma;
                x = map(x.length, k -> xi[k] + (xi[k] - (double) denoised[k]) / sigma * dt);
            } else {
                double t = t(sigma);
                double tNext = t(downUp[0]);
                double h = tNext - t;
                double s = t + 0.5 * h;
                double ratioS = sigmaOf(s) / sigmaOf(t);
                double coefS = Math.expm1(-h * 0.5);
                float[] x2 = map(x.length, k -> ratioS * xi[k] - coefS * denoised[k]);
                float[] denoised2 = model.denoise(x2, sigmaOf(s));
                double ratio = sigmaOf(tNext) / sigmaOf(t);
                double coef = Math.expm1(-h);
                x = map(x.length, k -> ratio * xi[k] - coef * denoised2[k]);
            }
            if (sigmas[i + 1] > 0) {
                float[] eps = noise.next(sigmas[i], sigmas[i + 1]);
                float[] xs = x;
                x = map(x.length, k -> xs[k] + eps[k] * downUp[1]);
            }
        }
        return x;
    }

    /**
     * CFG++ DPM-Solver++(2S) ancestral: steps with the uncond prediction, then adds the guidance vector
     * (guided - uncond) of the step's first evaluation. The midpoint evaluation is only read for its uncond part.
     */
    static float[] dpmpp2sAncestralCfgPp(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise,
            StepCallback callback) {
        float[] x = x0.clone();
        for (int i = 0; i < steps(sigmas); i++) {
            Denoiser.Prediction p = model.predict(x, sigmas[i]);
            float[] denoised = p.denoised();
            float[] uncond = p.requireUncond();
            float[] guidance = map(x.length, k -> denoised[k] - (double) uncond[k]);
            double[] downUp = ancestralStep(sigmas[i], sigmas[i + 1], 1.0);
            callback.onStep(i, x, denoised);
            float[] xi = x;
            double sigma = sigmas[i];
            if (downUp[0] == 0) {
                double dt = downUp[0] - sigma;
                x = map(x.length, k -> xi[k] + (xi[k] - (double) uncond[k]) / sigma * dt);
            } else {
                double t = t(sigma);
                double tNext = t(downUp[0]);
                double h = tNext - t;
                double s = t + 0.5 * h;
                double ratioS = sigmaOf(s) / sigmaOf(t);
                double coefS = Math.expm1(-h * 0.5);
                float[] x2 = map(x.length, k -> ratioS * xi[k] - coefS * uncond[k]);
                float[] uncond2 = model.predict(x2, sigmaOf(s)).requireUncond();
                double ratio = sigmaOf(tNext) / sigmaOf(t);
                double coef = Math.expm1(-h);
                x = map(x.length, k -> ratio * xi[k] - coef * uncond2[k]);
            }
            if (sigmas[i + 1] > 0) {
                float[] eps = noise.next(sigmas[i], sigmas[i + 1]);
                float[] xs = x;
                x = map(x.length, k -> xs[k] + eps[k] * downUp[1]);
            }
            float[] xs = x;
            x = map(x.length, k -> xs[k] + guidance[k]);
        }
        return x;
    }

    /** DPM-Solver++(2M): second-order multistep in log-sigma, first order on the first and the last step. */
    static float[] dpmpp2m(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise, StepCallback callback) {
        float[] x = x0.clone();
        float[] oldDenoised = null;
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            callback.onStep(i, x, denoised);
            double t = t(sigmas[i]);
            double tNext = t(sigmas[i + 1]);
            double h = tNext - t;
            double ratio = sigmaOf(tNext) / sigmaOf(t);
            double coef = Math.expm1(-h);
            float[] xi = x;
            if (oldDenoised == null || sigmas[i + 1] == 0) {
                x = map(x.length, k -> ratio * xi[k] - coef * denoised[k]);
            } else {
                double hLast = t - t(sigmas[i - 1]);
                double r = hLast / h;
                double a = 1 + 1 / (2 * r);
                double b = 1 / (2 * r);
                float[] old = oldDenoised;
                x = map(x.length, k -> ratio * xi[k] - coef * (a * denoised[k] - b * old[k]));
            }
            oldDenoised = denoised;
        }
        return x;
    }

    /** CFG++ DPM-Solver++(2M): the exponential-integrator step uses the uncond prediction. */
    static float[] dpmpp2mCfgPp(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise,
            StepCallback callback) {
        float[] x = x0.clone();
        float[] oldUncond = null;
        for (int i = 0; i < steps(sigmas); i++) {
            Denoiser.Prediction p = model.predict(x, sigmas[i]);
            float[] denoised = p.denoised();
            float[] uncond = p.requireUncond();
            callback.onStep(i, x, denoised);
            double t = t(sigmas[i]);
            double h = t(sigmas[i + 1]) - t;
            double decay = Math.exp(-h);
            float[] xi = x;
            if (oldUncond == null || sigmas[i + 1] == 0) {
                x = map(x.length, k -> denoised[k] - decay * uncond[k] + decay * xi[k]);
            } else {
                double hLast = t - t(sigmas[i - 1]);
                double r = hLast / h;
                double c = Math.expm1(-h) * (1 / (2 * r));
                float[] old = oldUncond;
                x = map(x.length, k -> denoised[k] + (-decay * uncond[k] - c * (denoised[k] - (double) old[k]))
                        + decay * xi[k]);
            }
            oldUncond = uncond;
        }
        return x;
    }
}
