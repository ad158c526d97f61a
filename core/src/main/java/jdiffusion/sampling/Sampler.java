package jdiffusion.sampling;

/**
 * A sampler function, k-diffusion style: runs the schedule sigmas (sigmas[0] is the level of x, the last is
 * usually 0) and returns the final latent. It must not modify x or sigmas (copy them), and calls noise and callback
 * exactly where ComfyUI's function does.
 */
@FunctionalInterface
public interface Sampler {
    float[] sample(Denoiser model, float[] x, double[] sigmas, NoiseSource noise, StepCallback callback);
}
