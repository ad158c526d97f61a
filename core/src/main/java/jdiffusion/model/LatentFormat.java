package jdiffusion.model;

/**
 * How a family's sampler latents relate to its VAE's latents (ComfyUI's latent_format): model = (vae - shift) *
 * scale, vae = model / scale + shift. SD1/SD2 (0.18215, 0), SDXL (0.13025, 0), SD3 (1.5305, 0.0609). Elementwise
 * in float32 in torch's order.
 */
public record LatentFormat(double scale, double shift) {

    /** process_in: (vae - shift) * scale. */
    public float[] toModel(float[] vae) {
        float sc = (float) scale;
        float sh = (float) shift;
        float[] out = new float[vae.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = (vae[i] - sh) * sc;
        }
        return out;
    }

    /** process_out: model / scale + shift. */
    public float[] toVae(float[] model) {
        float sc = (float) scale;
        float sh = (float) shift;
        float[] out = new float[model.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = model[i] / sc + sh;
        }
        return out;
    }
}
