package jdiffusion.sampling;

import static jdiffusion.sampling.SamplerMath.addScaled;
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
        if (model.flow()) {
            return dpmpp2sAncestralRf(model, x0, sigmas, noise, callback, 1.0, 1.0);
        }
        float[] x = x0.clone();
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            double[] downUp = ancestralStep(sigmas[i], sigmas[i + 1], 1.0);
            callback.onStep(i, x, denoised);
            x = solver2sDown(x, denoised, sigmas[i], downUp[0], model::denoise);
            x = ancestralNoise(x, noise, sigmas[i], sigmas[i + 1], downUp[1]);
        }
        return x;
    }

    /**
     * ComfyUI's dpmpp_2s_ancestral_RF (what dpmpp_2s_ancestral runs on a rectified-flow model): the midpoint in
     * lambda = log((1 - sigma) / sigma) between sigma and sigma_down (0.9999 when sigma is 1, where lambda is
     * infinite), both sub-steps along the line to the prediction, then {@link EulerSamplers#rfAncestralStep}'s
     * rescale and renoise; an Euler step on the last step.
     */
    static float[] dpmpp2sAncestralRf(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise,
            StepCallback callback, double eta, double sNoise) {
        float[] x = x0.clone();
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            double[] rf = EulerSamplers.rfAncestralStep(sigmas[i], sigmas[i + 1], eta);
            callback.onStep(i, x, denoised);
            float[] xi = x;
            if (sigmas[i + 1] == 0) {
                double sigma = sigmas[i];
                double dt = rf[0] - sigma;
                x = map(x.length, k -> xi[k] + (xi[k] - (double) denoised[k]) / sigma * dt);
            } else {
                double sigmaS = rfMidpoint(sigmas[i], rf[0]);
                double ratioS = sigmaS / sigmas[i];
                double ratio = rf[0] / sigmas[i];
                float[] u = map(x.length, k -> ratioS * xi[k] + (1 - ratioS) * denoised[k]);
                float[] d2 = model.denoise(u, sigmaS);
                x = map(x.length, k -> ratio * xi[k] + (1 - ratio) * d2[k]);
            }
            if (sigmas[i + 1] > 0 && eta > 0) {
                float[] eps = noise.next(sigmas[i], sigmas[i + 1]);
                float[] xd = x;
                x = map(x.length, k -> xd[k] * rf[1] + eps[k] * sNoise * rf[2]);
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
        if (model.flow()) {
            return dpmpp2sAncestralRfCfgPp(model, x0, sigmas, noise, callback, 1.0, 1.0);
        }
        float[] x = x0.clone();
        for (int i = 0; i < steps(sigmas); i++) {
            Denoiser.Prediction p = model.predict(x, sigmas[i]);
            float[] denoised = p.denoised();
            float[] uncond = p.requireUncond();
            float[] guidance = map(x.length, k -> denoised[k] - (double) uncond[k]);
            double[] downUp = ancestralStep(sigmas[i], sigmas[i + 1], 1.0);
            callback.onStep(i, x, denoised);
            x = solver2sDown(x, uncond, sigmas[i], downUp[0], (x2, s) -> model.predict(x2, s).requireUncond());
            x = ancestralNoise(x, noise, sigmas[i], sigmas[i + 1], downUp[1]);
            float[] xs = x;
            x = map(x.length, k -> xs[k] + guidance[k]);
        }
        return x;
    }

    /**
     * ComfyUI's dpmpp_2s_ancestral_RF_cfg_pp (the CFG++ form on a rectified-flow model): {@link #dpmpp2sAncestralRf}
     * stepping along the uncond predictions (the midpoint evaluation is read for its uncond part only), then the
     * guidance vector (guided - uncond) of the step's first evaluation added scaled by alpha_next = 1 - sigma_next.
     */
    static float[] dpmpp2sAncestralRfCfgPp(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise,
            StepCallback callback, double eta, double sNoise) {
        float[] x = x0.clone();
        for (int i = 0; i < steps(sigmas); i++) {
            Denoiser.Prediction p = model.predict(x, sigmas[i]);
            float[] denoised = p.denoised();
            float[] uncond = p.requireUncond();
            float[] guidance = map(x.length, k -> denoised[k] - (double) uncond[k]);
            double[] rf = EulerSamplers.rfAncestralStep(sigmas[i], sigmas[i + 1], eta);
            callback.onStep(i, x, denoised);
            float[] xi = x;
            if (sigmas[i + 1] == 0) {
                double sigma = sigmas[i];
                double dt = rf[0] - sigma;
                x = map(x.length, k -> xi[k] + (xi[k] - (double) uncond[k]) / sigma * dt);
            } else {
                double sigmaS = rfMidpoint(sigmas[i], rf[0]);
                double ratioS = sigmaS / sigmas[i];
                double ratio = rf[0] / sigmas[i];
                float[] u = map(x.length, k -> ratioS * xi[k] + (1 - ratioS) * uncond[k]);
                float[] uncond2 = model.predict(u, sigmaS).requireUncond();
                x = map(x.length, k -> ratio * xi[k] + (1 - ratio) * uncond2[k]);
            }
            if (sigmas[i + 1] > 0 && eta > 0) {
                float[] eps = noise.next(sigmas[i], sigmas[i + 1]);
                float[] xd = x;
                x = map(x.length, k -> xd[k] * rf[1] + eps[k] * sNoise * rf[2]);
            }
            double alphaNext = 1 - sigmas[i + 1];
            float[] xg = x;
            x = map(x.length, k -> xg[k] + alphaNext * guidance[k]);
        }
        return x;
    }

    /** The 2S midpoint of a flow step: halfway in lambda = log((1 - sigma) / sigma), 0.9999 when sigma is 1. */
    private static double rfMidpoint(double sigma, double sigmaDown) {
        if (sigma == 1.0) {
            return 0.9999;
        }
        double lambda = Math.log((1 - sigma) / sigma);
        double lambdaDown = Math.log((1 - sigmaDown) / sigmaDown);
        return 1 / (Math.exp(lambda + 0.5 * (lambdaDown - lambda)) + 1);
    }

    /** The prediction a step follows at a sigma: the guided one, or for CFG++ the uncond part. */
    private interface Prediction {
        float[] at(float[] x, double sigma);
    }

    /**
     * One DPM-Solver++(2S) step from sigma to sigmaDown with the step's prediction, the midpoint (in log-sigma)
     * prediction evaluated on the way; an Euler step when sigmaDown is 0.
     */
    private static float[] solver2sDown(float[] x, float[] pred, double sigma, double sigmaDown, Prediction midpoint) {
        if (sigmaDown == 0) {
            double dt = sigmaDown - sigma;
            return map(x.length, k -> x[k] + (x[k] - (double) pred[k]) / sigma * dt);
        }
        double t = t(sigma);
        double tNext = t(sigmaDown);
        double h = tNext - t;
        double s = t + 0.5 * h;
        double ratioS = sigmaOf(s) / sigmaOf(t);
        double coefS = Math.expm1(-h * 0.5);
        float[] x2 = map(x.length, k -> ratioS * x[k] - coefS * pred[k]);
        float[] pred2 = midpoint.at(x2, sigmaOf(s));
        double ratio = sigmaOf(tNext) / sigmaOf(t);
        double coef = Math.expm1(-h);
        return map(x.length, k -> ratio * x[k] - coef * pred2[k]);
    }

    /** Fresh noise up to sigma_next, scaled by sigma_up; none on the last step to 0. */
    private static float[] ancestralNoise(float[] x, NoiseSource noise, double sigma, double sigmaNext, double up) {
        return sigmaNext > 0 ? addScaled(x, noise.next(sigma, sigmaNext), up) : x;
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
