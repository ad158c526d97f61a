package jdiffusion.sampling;

import java.util.Arrays;
import java.util.Locale;

/**
 * Timesteps and sigmas as HuggingFace diffusers' schedulers compute them for the SD1.x / SD2.x / SDXL training
 * config (scaled-linear betas 0.00085..0.012, 1000 steps, steps_offset 1): EulerDiscrete, EulerAncestralDiscrete and
 * HeunDiscrete (float timesteps, sigmas in the k-diffusion convention), DPMSolverMultistep and DDIM (integer
 * timesteps). The pipeline uses it for {@code --scheduler leading|linspace|trailing}.
 *
 * <p>diffusers mixes precisions and this class follows it: the training tables are float32 torch tensors, the spacing
 * and interpolation run in numpy float64, the results are stored as float32.
 */
public final class DiffusersSchedule {
    public static final int TRAIN_STEPS = 1000;
    public static final double BETA_START = 0.00085;
    public static final double BETA_END = 0.012;
    public static final int STEPS_OFFSET = 1;

    /** diffusers' timestep_spacing. */
    public enum Spacing {
        LEADING, LINSPACE, TRAILING;

        /** The spacing named as on the command line (leading, linspace, trailing), else null. */
        public static Spacing byName(String name) {
            for (Spacing s : values()) {
                if (s.name().toLowerCase(Locale.ROOT).equals(name)) {
                    return s;
                }
            }
            return null;
        }

        public String lowerName() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /**
     * One scheduler's plan: the timesteps the UNet sees in order, the sigmas (one more than the Euler/DPM
     * timesteps: the final 0), and the factor the pipeline multiplies the initial noise with.
     */
    public record Schedule(double[] timesteps, double[] sigmas, double initNoiseSigma) {
        /**
         * img2img with diffusers' strength: keep the last {@code min(int(steps * strength), steps)} steps (the
         * sigmas keep their final 0). Not for Heun, whose timesteps repeat.
         */
        public Schedule strength(double strength) {
            int steps = timesteps.length;
            int init = Math.min((int) (steps * strength), steps);
            int start = Math.max(steps - init, 0);
            return new Schedule(Arrays.copyOfRange(timesteps, start, steps),
                    sigmas == null ? null : Arrays.copyOfRange(sigmas, start, sigmas.length), initNoiseSigma);
        }
    }

    private static final float[] BETAS = computeBetas();
    private static final float[] ALPHAS_CUMPROD = computeAlphasCumprod(BETAS);
    private static final float[] SIGMAS = computeSigmas(ALPHAS_CUMPROD);
    private static final float[] LOG_SIGMAS = computeLogSigmas(SIGMAS);

    private DiffusersSchedule() {
    }

    /** betas = torch.linspace(sqrt(0.00085), sqrt(0.012), 1000, float32) ** 2. */
    public static float[] betas() {
        return BETAS.clone();
    }

    /** torch.cumprod(1 - betas) (float32 values, accumulated in double as torch's CPU kernel does). */
    public static float[] alphasCumprod() {
        return ALPHAS_CUMPROD.clone();
    }

    /** The 1000 training sigmas sqrt((1 - acp) / acp) in float32, index = timestep. */
    public static float[] trainingSigmas() {
        return SIGMAS.clone();
    }

    private static float[] computeBetas() {
        float start = (float) Math.sqrt(BETA_START);
        float end = (float) Math.sqrt(BETA_END);
        float step = (end - start) / (TRAIN_STEPS - 1);
        float[] b = new float[TRAIN_STEPS];
        int half = TRAIN_STEPS / 2;
        for (int i = 0; i < TRAIN_STEPS; i++) {
            // torch.linspace fills the first half upwards from start and the second half downwards from end
            float v = i < half ? start + step * i : end - step * (TRAIN_STEPS - 1 - i);
            b[i] = v * v;
        }
        return b;
    }

    private static float[] computeAlphasCumprod(float[] betas) {
        float[] acp = new float[betas.length];
        double running = 1.0;
        for (int i = 0; i < betas.length; i++) {
            running *= 1.0f - betas[i];
            acp[i] = (float) running;
        }
        return acp;
    }

    private static float[] computeSigmas(float[] acp) {
        float[] s = new float[acp.length];
        for (int i = 0; i < acp.length; i++) {
            s[i] = (float) Math.sqrt((1.0f - acp[i]) / acp[i]);
        }
        return s;
    }

    private static float[] computeLogSigmas(float[] sigmas) {
        float[] l = new float[sigmas.length];
        for (int i = 0; i < sigmas.length; i++) {
            l[i] = (float) Math.log(sigmas[i]);
        }
        return l;
    }

    // ---- Euler / Euler ancestral / Heun ----

    /** EulerDiscreteScheduler.set_timesteps (also EulerAncestralDiscrete, which has no Karras option). */
    public static Schedule euler(int steps, Spacing spacing, boolean karras) {
        checkSteps(steps);
        double[] timesteps = kDiffusionTimesteps(steps, spacing);
        double[] sigmas = interpolateSigmas(timesteps);
        if (karras) {
            sigmas = karrasSigmas(sigmas[sigmas.length - 1], sigmas[0], steps);
            for (int i = 0; i < steps; i++) {
                timesteps[i] = sigmaToT(sigmas[i]);
            }
        }
        double[] withZero = toFloat32(Arrays.copyOf(sigmas, steps + 1));
        return new Schedule(toFloat32(timesteps), withZero, initNoiseSigma(withZero, spacing));
    }

    /** HeunDiscreteScheduler.set_timesteps: Euler's plan with every timestep but the first repeated. */
    public static Schedule heun(int steps, Spacing spacing, boolean karras) {
        Schedule e = euler(steps, spacing, karras);
        double[] t = new double[2 * steps - 1];
        double[] s = new double[2 * steps];
        t[0] = e.timesteps[0];
        s[0] = e.sigmas[0];
        for (int i = 1; i < steps; i++) {
            t[2 * i - 1] = t[2 * i] = e.timesteps[i];
            s[2 * i - 1] = s[2 * i] = e.sigmas[i];
        }
        s[2 * steps - 1] = 0.0;
        return new Schedule(t, s, e.initNoiseSigma);
    }

    /** Euler's rule: sqrt(max^2 + 1) for leading spacing, max sigma otherwise (computed in float32). */
    static double initNoiseSigma(double[] sigmas, Spacing spacing) {
        float max = 0f;
        for (double s : sigmas) {
            max = Math.max(max, (float) s);
        }
        if (spacing != Spacing.LEADING) {
            return max;
        }
        return (float) Math.sqrt(max * max + 1.0f);
    }

    /** Euler/Heun float timesteps: descending, before any Karras replacement. */
    static double[] kDiffusionTimesteps(int steps, Spacing spacing) {
        double[] t = new double[steps];
        switch (spacing) {
            case LINSPACE -> {
                double[] lin = numpyLinspace(0, TRAIN_STEPS - 1, steps);
                for (int i = 0; i < steps; i++) {
                    t[i] = (float) lin[steps - 1 - i];
                }
            }
            case LEADING -> {
                int ratio = TRAIN_STEPS / steps;
                for (int i = 0; i < steps; i++) {
                    t[i] = (double) (steps - 1 - i) * ratio + STEPS_OFFSET;
                }
            }
            case TRAILING -> {
                double[] a = numpyArangeDown(TRAIN_STEPS, (double) TRAIN_STEPS / steps);
                for (int i = 0; i < steps; i++) {
                    t[i] = Math.rint(a[i]) - 1;
                }
            }
        }
        return t;
    }

    // ---- DPMSolverMultistep and DDIM ----

    /** DPMSolverMultistepScheduler.set_timesteps (final_sigmas_type "zero", lambda_min_clipped -inf). */
    public static Schedule dpmSolverMultistep(int steps, Spacing spacing, boolean karras) {
        checkSteps(steps);
        double[] timesteps = new double[steps];
        switch (spacing) {
            case LINSPACE -> {
                double[] lin = numpyLinspace(0, TRAIN_STEPS - 1, steps + 1);
                for (int i = 0; i < steps; i++) {
                    timesteps[i] = Math.rint(lin[steps - i]);
                }
            }
            case LEADING -> {
                int ratio = TRAIN_STEPS / (steps + 1);
                for (int i = 0; i < steps; i++) {
                    timesteps[i] = (double) (steps - i) * ratio + STEPS_OFFSET;
                }
            }
            case TRAILING -> {
                double[] a = numpyArangeDown(TRAIN_STEPS, (double) TRAIN_STEPS / steps);
                for (int i = 0; i < steps; i++) {
                    timesteps[i] = Math.rint(a[i]) - 1;
                }
            }
        }
        double[] sigmas;
        if (karras) {
            sigmas = karrasSigmas(SIGMAS[0], SIGMAS[TRAIN_STEPS - 1], steps);
            for (int i = 0; i < steps; i++) {
                timesteps[i] = Math.rint(sigmaToT(sigmas[i]));
            }
        } else {
            sigmas = interpolateSigmas(timesteps);
        }
        return new Schedule(timesteps, toFloat32(Arrays.copyOf(sigmas, steps + 1)), 1.0);
    }

    /** DDIMScheduler.set_timesteps: integer timesteps only (DDIM works in alphas_cumprod, not sigmas). */
    public static Schedule ddim(int steps, Spacing spacing) {
        checkSteps(steps);
        double[] timesteps = new double[steps];
        switch (spacing) {
            case LINSPACE -> {
                double[] lin = numpyLinspace(0, TRAIN_STEPS - 1, steps);
                for (int i = 0; i < steps; i++) {
                    timesteps[i] = Math.rint(lin[steps - 1 - i]);
                }
            }
            case LEADING -> {
                int ratio = TRAIN_STEPS / steps;
                for (int i = 0; i < steps; i++) {
                    timesteps[i] = (double) (steps - 1 - i) * ratio + STEPS_OFFSET;
                }
            }
            case TRAILING -> {
                double[] a = numpyArangeDown(TRAIN_STEPS, (double) TRAIN_STEPS / steps);
                for (int i = 0; i < steps; i++) {
                    timesteps[i] = Math.rint(a[i]) - 1;
                }
            }
        }
        return new Schedule(timesteps, null, 1.0);
    }

    // ---- numpy / diffusers helpers ----

    private static void checkSteps(int steps) {
        if (steps < 1 || steps > TRAIN_STEPS) {
            throw new IllegalArgumentException("steps must be in 1.." + TRAIN_STEPS + ", got " + steps);
        }
    }

    /** np.linspace(start, stop, n) in float64 (i * step + start, last value pinned to stop). */
    static double[] numpyLinspace(double start, double stop, int n) {
        double[] y = new double[n];
        if (n == 1) {
            y[0] = start;
            return y;
        }
        double step = (stop - start) / (n - 1);
        for (int i = 0; i < n; i++) {
            y[i] = i * step + start;
        }
        y[n - 1] = stop;
        return y;
    }

    /** np.arange(start, 0, -step): ceil(start / step) values start - i * step. */
    static double[] numpyArangeDown(double start, double step) {
        int n = (int) Math.ceil(start / step);
        double[] a = new double[n];
        for (int i = 0; i < n; i++) {
            a[i] = start + i * -step;
        }
        return a;
    }

    /** np.interp(timesteps, arange(1000), sigmas): linear in sigma (not log sigma), float64. */
    static double[] interpolateSigmas(double[] timesteps) {
        double[] out = new double[timesteps.length];
        for (int i = 0; i < timesteps.length; i++) {
            double t = timesteps[i];
            if (t <= 0) {
                out[i] = SIGMAS[0];
            } else if (t >= TRAIN_STEPS - 1) {
                out[i] = SIGMAS[TRAIN_STEPS - 1];
            } else {
                int j = (int) Math.floor(t);
                double slope = (double) SIGMAS[j + 1] - SIGMAS[j];
                out[i] = slope * (t - j) + SIGMAS[j];
            }
        }
        return out;
    }

    /** diffusers' _convert_to_karras: rho 7 between sigma max and sigma min, float64. */
    static double[] karrasSigmas(double sigmaMin, double sigmaMax, int steps) {
        double rho = 7.0;
        double minInvRho = Math.pow(sigmaMin, 1 / rho);
        double maxInvRho = Math.pow(sigmaMax, 1 / rho);
        double[] ramp = numpyLinspace(0, 1, steps);
        double[] s = new double[steps];
        for (int i = 0; i < steps; i++) {
            s[i] = Math.pow(maxInvRho + ramp[i] * (minInvRho - maxInvRho), rho);
        }
        return s;
    }

    /** diffusers' _sigma_to_t: fractional timestep by linear interpolation in log sigma between table entries. */
    static double sigmaToT(double sigma) {
        double logSigma = Math.log(Math.max(sigma, 1e-10));
        // low_idx = last index whose log sigma is <= log_sigma (cumsum(dists >= 0).argmax()), clipped to 998
        int count = 0;
        for (float l : LOG_SIGMAS) {
            if (logSigma - l >= 0) {
                count++;
            }
        }
        int low = Math.min(Math.max(count - 1, 0), TRAIN_STEPS - 2);
        double lo = LOG_SIGMAS[low];
        double hi = LOG_SIGMAS[low + 1];
        double w = (lo - logSigma) / (lo - hi);
        w = Math.min(Math.max(w, 0), 1);
        return (1 - w) * low + w * (low + 1);
    }

    private static double[] toFloat32(double[] v) {
        double[] out = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = (float) v[i];
        }
        return out;
    }
}
