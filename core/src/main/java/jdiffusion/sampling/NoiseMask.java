package jdiffusion.sampling;

/**
 * ComfyUI's KSamplerX0Inpaint: sampling with a denoise mask m (1 = repaint, soft values allowed). At every model
 * call at sigma s the kept region is put back, noised to s with THE initial noise tensor, before the model sees x:
 * {@code x_in = x * m + (latent + noise * s) * (1 - m)}; the prediction the sampler sees is
 * {@code denoised * m + latent * (1 - m)}. There is no re-blend after the last step.
 */
public final class NoiseMask {
    private NoiseMask() {
    }

    /**
     * @param inner  the guided denoiser (CFG already combined)
     * @param mask   the prepared denoise mask, same size as x ([B,C,h,w])
     * @param latent the latent image in model space (process_in'd)
     * @param noise  the initial noise
     */
    public static Denoiser wrap(Denoiser inner, float[] mask, float[] latent, float[] noise) {
        if (mask.length != latent.length || noise.length != latent.length) {
            throw new IllegalArgumentException("denoise mask (" + mask.length + "), latent (" + latent.length
                    + ") and noise (" + noise.length + ") must have the same size");
        }
        return (x, sigma) -> {
            float s = (float) sigma;
            float[] in = new float[x.length];
            for (int i = 0; i < in.length; i++) {
                float m = mask[i];
                in[i] = x[i] * m + (latent[i] + noise[i] * s) * (1f - m);
            }
            Denoiser.Prediction p = inner.predict(in, sigma);
            float[] d = p.denoised();
            float[] out = new float[d.length];
            for (int i = 0; i < out.length; i++) {
                float m = mask[i];
                out[i] = d[i] * m + latent[i] * (1f - m);
            }
            return new Denoiser.Prediction(out, p.uncondDenoised());
        };
    }
}
