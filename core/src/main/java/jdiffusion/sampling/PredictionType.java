package jdiffusion.sampling;

/**
 * What the network predicts, and how ComfyUI turns it into the denoised estimate (sigma_data = 1). The input of the
 * network is x * cIn(sigma) for all three.
 */
public enum PredictionType {
    /** Noise: denoised = x - eps * sigma. */
    EPS,
    /** Velocity (SD2 768): denoised = x / (sigma^2 + 1) - v * sigma / sqrt(sigma^2 + 1). */
    V,
    /** The clean latent itself (SDXL-Lightning 1-step): denoised = model output. */
    X0;

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
            case EPS -> {
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
