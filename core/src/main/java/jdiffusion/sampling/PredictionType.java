package jdiffusion.sampling;

/**
 * What the network predicts, and how ComfyUI turns it into the denoised estimate (sigma_data = 1). The input of the
 * network is x * cIn(sigma) for EPS, V and X0; FLOW models see x itself.
 */
public enum PredictionType {
    /** Noise: denoised = x - eps * sigma. */
    EPS,
    /** Velocity (SD2 768): denoised = x / (sigma^2 + 1) - v * sigma / sqrt(sigma^2 + 1). */
    V,
    /** The clean latent itself (SDXL-Lightning 1-step): denoised = model output. */
    X0,
    /**
     * Rectified-flow velocity (ComfyUI's CONST model type, SD3): input not scaled, denoised = x - v * sigma, noise
     * mixed in as sigma * noise + (1 - sigma) * latent.
     */
    FLOW;

    /** The network's input for x at sigma: x / sqrt(sigma^2 + 1), or x itself for FLOW (a copy either way). */
    public float[] calculateInput(float[] x, double sigma) {
        return this == FLOW ? x.clone() : scaleInput(x, sigma);
    }

    /**
     * noise_scaling: EPS/V/X0 noise * sqrt(1 + sigma0^2) + latent at max denoise, else noise * sigma0 + latent;
     * FLOW sigma0 * noise + (1 - sigma0) * latent.
     */
    public float[] noiseScaling(double sigma0, float[] noise, float[] latentIn, boolean maxDenoise) {
        if (this != FLOW) {
            return jdiffusion.sampling.KSampler.noiseScaling(sigma0, noise, latentIn, maxDenoise);
        }
        float s = (float) sigma0;
        float keep = 1f - s;
        float[] out = new float[noise.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = s * noise[i] + keep * latentIn[i];
        }
        return out;
    }

    /** inverse_noise_scaling at the last sigma: latent / (1 - sigma) for FLOW, the latent itself otherwise. */
    public float[] inverseNoiseScaling(double sigma, float[] latent) {
        if (this != FLOW || sigma == 0) {
            return latent;
        }
        float keep = 1f - (float) sigma;
        float[] out = new float[latent.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = latent[i] / keep;
        }
        return out;
    }

    /** Input scaling 1 / sqrt(sigma^2 + 1), applied to x in float32 as torch does. */
    public static float[] scaleInput(float[] x, double sigma) {
        float s = (float) sigma;
        float denom = (float) Math.sqrt(s * s + 1f);
        float[] out = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = x[i] / denom;
        }
        return out;
    }

    /** The denoised estimate from the network output at sigma, for input x (unscaled). */
    public float[] denoised(float[] x, float[] modelOutput, double sigma) {
        float s = (float) sigma;
        float[] out = new float[x.length];
        switch (this) {
            case EPS, FLOW -> {
                for (int i = 0; i < x.length; i++) {
                    out[i] = x[i] - modelOutput[i] * s;
                }
            }
            case V -> {
                float var = s * s + 1f;
                float std = (float) Math.sqrt(var);
                for (int i = 0; i < x.length; i++) {
                    out[i] = x[i] / var - modelOutput[i] * s / std;
                }
            }
            case X0 -> System.arraycopy(modelOutput, 0, out, 0, x.length);
        }
        return out;
    }
}
