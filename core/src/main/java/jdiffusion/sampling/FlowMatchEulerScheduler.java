package jdiffusion.sampling;

/**
 * diffusers' FlowMatchEulerDiscreteScheduler as the SD3 / SD3.5 pipelines use it (static shift, no dynamic
 * shifting): the training table, set_timesteps and the Euler step on a velocity. Note diffusers shifts the inference
 * sigmas a second time, already-shifted sigma_min included, so with shift 3 the last non-zero sigma is 0.00893.
 */
public final class FlowMatchEulerScheduler {
    public static final int TRAIN_TIMESTEPS = 1000;

    /** The schedule of one run: timesteps (sigma * 1000) and sigmas with a final 0, float32 values. */
    public record Schedule(float[] timesteps, float[] sigmas) {
        public int steps() {
            return timesteps.length;
        }
    }

    private FlowMatchEulerScheduler() {
    }

    /** The 1000 shifted training sigmas set at init, descending (float32, in torch's order). */
    public static float[] trainSigmas(double shift) {
        float[] s = new float[TRAIN_TIMESTEPS];
        float a = (float) shift;
        float am1 = (float) (shift - 1.0);
        for (int i = 0; i < TRAIN_TIMESTEPS; i++) {
            float t = (float) (TRAIN_TIMESTEPS - i) / TRAIN_TIMESTEPS;
            s[i] = a * t / (1f + am1 * t);
        }
        return s;
    }

    /** set_timesteps(steps): numpy float64 linspace from sigma_max*1000 to sigma_min*1000, shifted, to float32. */
    public static Schedule schedule(int steps, double shift) {
        if (steps < 1) {
            throw new IllegalArgumentException("steps must be at least 1, got " + steps);
        }
        if (!(shift > 0) || Double.isInfinite(shift)) {
            throw new IllegalArgumentException("shift must be positive, got " + shift);
        }
        float[] train = trainSigmas(shift);
        double start = (double) train[0] * TRAIN_TIMESTEPS;
        double stop = (double) train[TRAIN_TIMESTEPS - 1] * TRAIN_TIMESTEPS;
        float[] timesteps = new float[steps];
        float[] sigmas = new float[steps + 1];
        double step = steps > 1 ? (stop - start) / (steps - 1) : 0;
        for (int i = 0; i < steps; i++) {
            // numpy: arange * step + start, the end point set exactly
            double t = i == steps - 1 && steps > 1 ? stop : i * step + start;
            double s = t / TRAIN_TIMESTEPS;
            s = shift * s / (1 + (shift - 1) * s);
            sigmas[i] = (float) s;
            timesteps[i] = sigmas[i] * (float) TRAIN_TIMESTEPS;
        }
        return new Schedule(timesteps, sigmas);
    }

    /** One Euler step in float32: x + (sigma_next - sigma) * v, into a new array. */
    public static float[] step(float[] x, float[] v, float sigma, float sigmaNext) {
        float dt = sigmaNext - sigma;
        float[] out = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = x[i] + dt * v[i];
        }
        return out;
    }

    /**
     * The denoising loop of diffusers' StableDiffusion3Pipeline: for each timestep the network's velocity (with CFG
     * when guidance > 1: one batch [uncond rows, cond rows], v = v_u + g (v_c - v_u)), then an Euler step. The
     * callback sees step i's x before its update and the denoised estimate x - sigma * v.
     *
     * @param network  the MMDiT with its conditioning bound (input rows unscaled, timestep sigma * 1000)
     * @param latents  the start latents (noise at sigma 1; the noised image for img2img)
     */
    public static float[] sample(DiscreteModel.Network network, float[] latents, Schedule schedule, double guidance,
                                 StepCallback callback) {
        boolean cfg = guidance > 1.0;
        int n = latents.length;
        float[] x = latents.clone();
        for (int i = 0; i < schedule.steps(); i++) {
            float t = schedule.timesteps()[i];
            float[] v;
            if (cfg) {
                float[] both = java.util.Arrays.copyOf(x, 2 * n);
                System.arraycopy(x, 0, both, n, n);
                float[] out = network.apply(both, t, true);
                v = Cfg.combine(java.util.Arrays.copyOfRange(out, n, 2 * n), java.util.Arrays.copyOf(out, n),
                        guidance);
            } else {
                v = network.apply(x.clone(), t, false);
            }
            float sigma = schedule.sigmas()[i];
            float[] denoised = new float[n];
            for (int j = 0; j < n; j++) {
                denoised[j] = x[j] - v[j] * sigma;
            }
            callback.onStep(i, x, denoised);
            x = step(x, v, sigma, schedule.sigmas()[i + 1]);
        }
        return x;
    }

    /** diffusers' scale_noise (img2img): sigma * noise + (1 - sigma) * x0, float32. */
    public static float[] scaleNoise(float[] x0, float[] noise, float sigma) {
        float keep = 1f - sigma;
        float[] out = new float[x0.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = sigma * noise[i] + keep * x0[i];
        }
        return out;
    }
}
