package jdiffusion.model;

/**
 * The sinusoidal embedding of timesteps (and of SDXL's size/crop numbers), as LDM, ComfyUI and diffusers compute
 * it with flip_sin_to_cos: {@code [cos(t * f_0) .. cos(t * f_{half-1}), sin(t * f_0) .. sin(t * f_{half-1})]}
 * with {@code f_i = exp(-ln(10000) * i / half)}.
 *
 * <p>Every step is rounded to float32 exactly where torch rounds: the frequency exponent, the frequency, and the
 * product {@code t * f_i}. The argument reaches ~1000 rad, so a product kept in double would move sin/cos by up to
 * ~6e-5 relative to the reference, more than the golden tolerances.
 */
public final class TimestepEmbedding {
    /** Width of each of SDXL's six size/crop embeddings (diffusers' addition_time_embed_dim). */
    public static final int SDXL_SIZE_EMBED_DIM = 256;

    private static final float NEG_LOG_MAX_PERIOD = (float) -Math.log(10000.0);

    private TimestepEmbedding() {
    }

    /** Embeds each value of t into dim channels; returns [t.length][dim] (an odd dim gets a zero last channel). */
    public static float[] sinusoid(float[] t, int dim) {
        int half = dim / 2;
        float[] freqs = frequencies(half);
        float[] out = new float[t.length * dim];
        for (int n = 0; n < t.length; n++) {
            int base = n * dim;
            for (int i = 0; i < half; i++) {
                float arg = t[n] * freqs[i];
                out[base + i] = (float) Math.cos(arg);
                out[base + half + i] = (float) Math.sin(arg);
            }
        }
        return out;
    }

    /** f_i = exp((-ln(10000) * i) / half), each operation in float32 as torch does it. */
    private static float[] frequencies(int half) {
        float[] f = new float[half];
        for (int i = 0; i < half; i++) {
            float exponent = NEG_LOG_MAX_PERIOD * (float) i / (float) half;
            f[i] = (float) Math.exp(exponent);
        }
        return f;
    }
}
