package jdiffusion.sampling;

/**
 * A sampler's noise sampler (ComfyUI's {@code noise_sampler(sigma, sigma_next)}): the k-th call returns the k-th
 * draw, a standard-normal tensor of the latent's size. Samplers call it exactly where ComfyUI does, also when the
 * draw is then scaled by zero, because every draw advances the stream.
 */
@FunctionalInterface
public interface NoiseSource {

    float[] next(double sigma, double sigmaNext);

    /**
     * How a sampler's noise source is made for one run: seed is the KSampler seed (the default source seeds its
     * generator with seed + 1, the Brownian tree with seed), size the number of latent values, sigmas the schedule
     * handed to the sampler (the Brownian tree spans its smallest positive and its largest sigma).
     */
    @FunctionalInterface
    interface Factory {
        NoiseSource create(long seed, int size, double[] sigmas);
    }

    /** For samplers that draw no noise: any call is a bug. */
    Factory NONE = (seed, size, sigmas) -> (s, sn) -> {
        throw new IllegalStateException("this sampler has no noise source, but asked for noise at sigma " + s);
    };
}
