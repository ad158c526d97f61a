package jdiffusion.sampling;

import static jdiffusion.sampling.SamplerMath.map;
import static jdiffusion.sampling.SamplerMath.steps;

import java.util.List;

/**
 * exp_heun_2_x0: the deterministic exponential Heun method in data prediction and log-SNR time (ComfyUI's seeds_2
 * with eta = 0, r = 1 and the phi_2 solver). For discrete models lambda = -log(sigma) and alpha = 1; for rectified
 * flow lambda = log((1 - sigma) / sigma), alpha = 1 - sigma, and a first sigma of 1 is offset as in seeds_2.
 */
final class ExpHeunSampler {
    private ExpHeunSampler() {
    }

    static List<SamplerInfo> all() {
        return List.of(SamplerInfo.plain("exp_heun_2_x0", ExpHeunSampler::expHeun2X0));
    }

    static float[] expHeun2X0(Denoiser model, float[] x0, double[] sigmas0, NoiseSource noise,
            StepCallback callback) {
        boolean flow = model.flow();
        double[] sigmas = SamplerMath.offsetFirstSigma(sigmas0, model);
        float[] x = x0.clone();
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            callback.onStep(i, x, denoised);
            if (sigmas[i + 1] == 0) {
                x = denoised;
                continue;
            }
            double lambdaS = SamplerMath.halfLogSnr(sigmas[i], flow);
            double lambdaT = SamplerMath.halfLogSnr(sigmas[i + 1], flow);
            double h = lambdaT - lambdaS;
            // The intermediate point of r = 1 is the end point itself.
            double sigmaS1 = SamplerMath.sigmaOfHalfLogSnr(lambdaT, flow);
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
