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
        double up = Math.min(sigmaTo,
                eta * Math.sqrt(sigmaTo * sigmaTo * (sigmaFrom * sigmaFrom - sigmaTo * sigmaTo) / (sigmaFrom * sigmaFrom)));
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

    static int steps(double[] sigmas) {
        return sigmas.length - 1;
    }
}
