package jdiffusion.sampling;

import static jdiffusion.sampling.SamplerMath.addScaled;
import static jdiffusion.sampling.SamplerMath.ancestralStep;
import static jdiffusion.sampling.SamplerMath.map;
import static jdiffusion.sampling.SamplerMath.steps;
import static jdiffusion.sampling.SamplerMath.toD;

import java.util.List;

/** Second-order single-step samplers: heun, heunpp2, dpm_2 and dpm_2_ancestral. */
final class HeunSamplers {
    private HeunSamplers() {
    }

    static List<SamplerInfo> all() {
        return List.of(
                SamplerInfo.plain("heun", HeunSamplers::heun),
                SamplerInfo.plain("heunpp2", HeunSamplers::heunpp2),
                SamplerInfo.plain("dpm_2", HeunSamplers::dpm2).dropPenultimate(),
                SamplerInfo.withNoise("dpm_2_ancestral", HeunSamplers::dpm2Ancestral, NoiseSources.DEFAULT)
                        .dropPenultimate());
    }

    /** Karras et al. (2022) Algorithm 2 with Heun steps; the last step (to 0) is plain Euler. */
    static float[] heun(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise, StepCallback callback) {
        float[] x = x0.clone();
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            float[] d = toD(x, sigmas[i], denoised);
            callback.onStep(i, x, denoised);
            double dt = sigmas[i + 1] - sigmas[i];
            float[] xi = x;
            if (sigmas[i + 1] == 0) {
                x = addScaled(x, d, dt);
            } else {
                float[] x2 = addScaled(x, d, dt);
                float[] d2 = toD(x2, sigmas[i + 1], model.denoise(x2, sigmas[i + 1]));
                x = map(x.length, k -> xi[k] + ((d[k] + (double) d2[k]) / 2) * dt);
            }
        }
        return x;
    }

    /**
     * Heun++ (sd-webui-samplers-scheduler): up to three evaluations per step, weighted by the sigmas relative to
     * sigmas[0]. (ComfyUI also draws an unused randn_like from the global generator each step; it changes nothing.)
     */
    static float[] heunpp2(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise, StepCallback callback) {
        float[] x = x0.clone();
        double sEnd = sigmas[sigmas.length - 1];
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            float[] d = toD(x, sigmas[i], denoised);
            callback.onStep(i, x, denoised);
            double dt = sigmas[i + 1] - sigmas[i];
            float[] xi = x;
            if (sigmas[i + 1] == sEnd) {
                x = addScaled(x, d, dt);
            } else if (sigmas[i + 2] == sEnd) {
                float[] x2 = addScaled(x, d, dt);
                float[] d2 = toD(x2, sigmas[i + 1], model.denoise(x2, sigmas[i + 1]));
                double w2 = sigmas[i + 1] / (2 * sigmas[0]);
                double w1 = 1 - w2;
                x = map(x.length, k -> xi[k] + (d[k] * w1 + d2[k] * w2) * dt);
            } else {
                float[] x2 = addScaled(x, d, dt);
                float[] d2 = toD(x2, sigmas[i + 1], model.denoise(x2, sigmas[i + 1]));
                float[] x3 = addScaled(x2, d2, sigmas[i + 2] - sigmas[i + 1]);
                float[] d3 = toD(x3, sigmas[i + 2], model.denoise(x3, sigmas[i + 2]));
                double w = 3 * sigmas[0];
                double w2 = sigmas[i + 1] / w;
                double w3 = sigmas[i + 2] / w;
                double w1 = 1 - w2 - w3;
                x = map(x.length, k -> xi[k] + (w1 * d[k] + w2 * d2[k] + w3 * d3[k]) * dt);
            }
        }
        return x;
    }

    /** The geometric midpoint exp(lerp(log a, log b, 0.5)). */
    private static double logMidpoint(double a, double b) {
        double la = Math.log(a);
        return Math.exp(la + 0.5 * (Math.log(b) - la));
    }

    /** DPM-Solver-2 flavoured Heun: one evaluation at the log-midpoint sigma. */
    static float[] dpm2(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise, StepCallback callback) {
        float[] x = x0.clone();
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            float[] d = toD(x, sigmas[i], denoised);
            callback.onStep(i, x, denoised);
            if (sigmas[i + 1] == 0) {
                x = addScaled(x, d, sigmas[i + 1] - sigmas[i]);
            } else {
                double sigmaMid = logMidpoint(sigmas[i], sigmas[i + 1]);
                x = midpointStep(model, x, d, sigmas[i], sigmaMid, sigmas[i + 1]);
            }
        }
        return x;
    }

    private static float[] midpointStep(Denoiser model, float[] x, float[] d, double sigma, double sigmaMid,
            double sigmaTarget) {
        float[] x2 = addScaled(x, d, sigmaMid - sigma);
        float[] d2 = toD(x2, sigmaMid, model.denoise(x2, sigmaMid));
        return addScaled(x, d2, sigmaTarget - sigma);
    }

    /** dpm_2 down to sigma_down, then ancestral noise up to sigma_next. */
    static float[] dpm2Ancestral(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise,
            StepCallback callback) {
        if (model.flow()) {
            return dpm2AncestralRf(model, x0, sigmas, noise, callback, 1.0, 1.0);
        }
        float[] x = x0.clone();
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            double[] downUp = ancestralStep(sigmas[i], sigmas[i + 1], 1.0);
            callback.onStep(i, x, denoised);
            float[] d = toD(x, sigmas[i], denoised);
            if (downUp[0] == 0) {
                x = addScaled(x, d, downUp[0] - sigmas[i]);
            } else {
                double sigmaMid = logMidpoint(sigmas[i], downUp[0]);
                float[] stepped = midpointStep(model, x, d, sigmas[i], sigmaMid, downUp[0]);
                x = addScaled(stepped, noise.next(sigmas[i], sigmas[i + 1]), downUp[1]);
            }
        }
        return x;
    }

    /**
     * ComfyUI's dpm_2_ancestral_RF (what dpm_2_ancestral runs on a rectified-flow model): the DPM-Solver-2 step
     * (log-midpoint evaluation) down to the flow sigma_down of {@link EulerSamplers#rfAncestralStep}, then the signal
     * rescaled by alpha_next / alpha_down and renoised; a plain Euler step when sigma_down is 0 (the last step).
     */
    static float[] dpm2AncestralRf(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise,
            StepCallback callback, double eta, double sNoise) {
        float[] x = x0.clone();
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            double[] rf = EulerSamplers.rfAncestralStep(sigmas[i], sigmas[i + 1], eta);
            callback.onStep(i, x, denoised);
            float[] d = toD(x, sigmas[i], denoised);
            if (rf[0] == 0) {
                x = addScaled(x, d, rf[0] - sigmas[i]);
            } else {
                double sigmaMid = logMidpoint(sigmas[i], rf[0]);
                float[] stepped = midpointStep(model, x, d, sigmas[i], sigmaMid, rf[0]);
                float[] eps = noise.next(sigmas[i], sigmas[i + 1]);
                x = map(x.length, k -> stepped[k] * rf[1] + eps[k] * sNoise * rf[2]);
            }
        }
        return x;
    }
}
