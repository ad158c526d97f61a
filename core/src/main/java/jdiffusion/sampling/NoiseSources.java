package jdiffusion.sampling;

/** The noise sources ComfyUI's samplers make for themselves. */
public final class NoiseSources {
    private NoiseSources() {
    }

    /**
     * k-diffusion's default_noise_sampler on the CPU: one torch generator seeded with seed + 1 (seeds truncated to
     * their low 32 bits as torch's mt19937 does), each call one randn over the whole batch latent.
     */
    public static final NoiseSource.Factory DEFAULT = (seed, size, sigmas) -> {
        throw new UnsupportedOperationException("default noise needs TorchGenerator (not merged yet)");
    };

    /** torch.randn(n, generator=torch.manual_seed(seed)) on the CPU. */
    static float[] randn(long seed, int n) {
        throw new UnsupportedOperationException("initial noise needs TorchGenerator (not merged yet)");
    }
}
