package jdiffusion.sampling;

import static jdiffusion.sampling.SamplerMath.map;
import static jdiffusion.sampling.SamplerMath.steps;
import static jdiffusion.sampling.SamplerMath.t;

import java.util.List;

/**
 * exp_heun_2_x0: the deterministic exponential Heun method in data prediction and log-SNR time (ComfyUI's seeds_2
 * with eta = 0, r = 1 and the phi_2 solver). For discrete models lambda = -log(sigma) and alpha = 1.
 */
final class ExpHeunSampler {
    private ExpHeunSampler() {
    }

    static List<SamplerInfo> all() {
        return List.of(SamplerInfo.plain("exp_heun_2_x0", ExpHeunSampler::expHeun2X0));
    }

    static float[] expHeun2X0(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise,
            StepCallback callback) {
        float[] x = x0.clone();
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            callback.onStep(i, x, denoised);
            if (sigmas[i + 1] == 0) {
                x = denoised;
                continue;
            }
            double lambdaS = t(sigmas[i]);
            double lambdaT = t(sigmas[i + 1]);
            double h = lambdaT - lambdaS;
            // The intermediate point of r = 1 is the end point itself.
            double sigmaS1 = Math.exp(-lambdaT);
            double alphaS1 = sigmaS1 * Math.exp(lambdaT);
            double alphaT = sigmas[i + 1] * Math.exp(lambdaT);
            double phi1 = Math.expm1(-h);
            float[] xi = x;
            double ratio1 = sigmaS1 / sigmas[i];
            float[] x2 = map(x.length, k -> ratio1 * xi[k] - alphaS1 * phi1 * denoised[k]);
            float[] denoised2 = model.denoise(x2, sigmaS1);
            double b2 = (Math.expm1(-h) + h) / -h;
            double b1 = phi1 - b2;
            double ratio = sigmas[i + 1] / sigmas[i];
            x = map(x.length, k -> ratio * xi[k] - alphaT * (b1 * denoised[k] + b2 * denoised2[k]));
        }
        return x;
    }
}
