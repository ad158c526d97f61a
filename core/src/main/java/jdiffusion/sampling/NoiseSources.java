package jdiffusion.sampling;

/** The noise sources ComfyUI's samplers make for themselves. */
public final class NoiseSources {
    private NoiseSources() {
    }

    /**
     * k-diffusion's default_noise_sampler on the CPU: one torch generator seeded with seed + 1 (torch keeps the low
     * 32 bits of the seed, so seed + 1 wraps the same way), each call one randn over the whole batch latent; the
     * sigmas of the call do not matter.
     */
    public static final NoiseSource.Factory DEFAULT = (seed, size, sigmas) -> {
        TorchGenerator generator = new TorchGenerator(seed + 1);
        return (sigma, sigmaNext) -> generator.randn(size);
    };

    /** torch.randn(n, generator=torch.manual_seed(seed)) on the CPU. */
    static float[] randn(long seed, int n) {
        return TorchGenerator.randn(seed, n);
    }
}
