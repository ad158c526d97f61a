package jdiffusion.sampling;

/**
 * ComfyUI's ModelSamplingDiscrete, or (see {@link #flow(double)}) its ModelSamplingDiscreteFlow with the CONST model
 * type of SD3: the 1000 training noise levels of SD1 / SD2 / SDXL (betas linspace(sqrt(0.00085),
 * sqrt(0.012))^2 in float64, sigma = sqrt((1 - alphas_cumprod) / alphas_cumprod), kept as float32) and the maps between
 * sigma and timestep. sigma(t) and timestep(sigma) are computed in float32 exactly as torch does: a double version
 * moves the half-integer ties (t = 499.5) by one ulp and picks another timestep.
 */
public final class ModelSamplingDiscrete {
    public static final int TIMESTEPS = 1000;

    /** SD1 / SD2 / SDXL default schedule. */
    public static final ModelSamplingDiscrete DEFAULT = new ModelSamplingDiscrete(0.00085, 0.012, false);

    private final float[] sigmas;
    private final float[] logSigmas;
    private final boolean zeroTerminalSnr;
    /** 0 for the discrete (DDPM) schedule; the flow shift of a rectified-flow schedule. */
    private final double shift;

    public ModelSamplingDiscrete(double linearStart, double linearEnd, boolean zeroTerminalSnr) {
        this.zeroTerminalSnr = zeroTerminalSnr;
        this.shift = 0;
        double[] s = trainingSigmas(linearStart, linearEnd);
        if (zeroTerminalSnr) {
            s = rescaleZeroTerminalSnr(s);
        }
        sigmas = new float[TIMESTEPS];
        logSigmas = new float[TIMESTEPS];
        for (int i = 0; i < TIMESTEPS; i++) {
            sigmas[i] = (float) s[i];
            logSigmas[i] = (float) Math.log(s[i]);
        }
    }

    /** The table of a flow schedule: sigma(k / 1000) for k = 1..1000, ascending to 1. */
    private ModelSamplingDiscrete(double shift) {
        if (!(shift > 0) || Double.isInfinite(shift)) {
            throw new IllegalArgumentException("flow shift must be positive, got " + shift);
        }
        this.zeroTerminalSnr = false;
        this.shift = shift;
        sigmas = new float[TIMESTEPS];
        logSigmas = new float[TIMESTEPS];
        for (int k = 1; k <= TIMESTEPS; k++) {
            // torch: (arange(1, 1001) / 1000) * 1000, then sigma(t) divides by the multiplier again
            float t = ((float) k / TIMESTEPS) * FLOW_MULTIPLIER;
            sigmas[k - 1] = flowSigma(t);
            logSigmas[k - 1] = (float) Math.log(sigmas[k - 1]);
        }
    }

    /** The timestep multiplier of SD3's flow schedule (timestep = sigma * 1000). */
    public static final float FLOW_MULTIPLIER = 1000f;

    /**
     * ComfyUI's ModelSamplingDiscreteFlow with model type CONST (SD3 / SD3.5; the ModelSamplingSD3 node): sigma(t) =
     * shift * t / (1 + (shift - 1) * t) for t = timestep / 1000, the network sees timestep = sigma * 1000 (not
     * rounded), inputs are not scaled, the output is a velocity (denoised = x - v * sigma) and the noise is mixed
     * in as sigma * noise + (1 - sigma) * latent.
     */
    public static ModelSamplingDiscrete flow(double shift) {
        return new ModelSamplingDiscrete(shift);
    }

    /** Whether this is a rectified-flow schedule ({@link #flow(double)}). */
    public boolean isFlow() {
        return shift > 0;
    }

    /** The flow shift (0 for the discrete schedule). */
    public double shift() {
        return shift;
    }

    /** time_snr_shift(shift, t / multiplier) in float32, as torch evaluates it on a float32 tensor. */
    private float flowSigma(float timestep) {
        float t = timestep / FLOW_MULTIPLIER;
        if (shift == 1.0) {
            return t;
        }
        float a = (float) shift;
        float am1 = (float) (shift - 1.0);
        return a * t / (1f + am1 * t);
    }

    /**
     * The timestep the network is given for sigma: the nearest training timestep of a discrete schedule, sigma *
     * 1000 (float32) for flow.
     */
    public float networkTimestep(double sigma) {
        if (isFlow()) {
            return (float) sigma * FLOW_MULTIPLIER;
        }
        return timestep(sigma);
    }

    /** The zero-terminal-SNR variant of the default schedule (ComfyUI's ModelSamplingDiscrete zsnr=True). */
    public static ModelSamplingDiscrete zeroTerminalSnr() {
        return new ModelSamplingDiscrete(0.00085, 0.012, true);
    }

    private static double[] trainingSigmas(double linearStart, double linearEnd) {
        double[] sqrtBetas = torchLinspace(Math.sqrt(linearStart), Math.sqrt(linearEnd), TIMESTEPS);
        double[] s = new double[TIMESTEPS];
        double alphasCumprod = 1.0;
        for (int i = 0; i < TIMESTEPS; i++) {
            double beta = sqrtBetas[i] * sqrtBetas[i];
            alphasCumprod *= 1.0 - beta;
            s[i] = Math.sqrt((1 - alphasCumprod) / alphasCumprod);
        }
        return s;
    }

    /** torch.linspace in float64: the first half counts up from start, the second half down from end. */
    static double[] torchLinspace(double start, double end, int n) {
        double[] out = new double[n];
        if (n == 1) {
            out[0] = start;
            return out;
        }
        double step = (end - start) / (n - 1);
        int half = n / 2;
        for (int i = 0; i < n; i++) {
            out[i] = i < half ? start + step * i : end - step * (n - 1 - i);
        }
        return out;
    }

    /** Rescales the schedule so the last level has (almost) zero SNR, as ComfyUI's rescale_zero_terminal_snr_sigmas. */
    private static double[] rescaleZeroTerminalSnr(double[] s) {
        int n = s.length;
        double[] alphaBarSqrt = new double[n];
        for (int i = 0; i < n; i++) {
            alphaBarSqrt[i] = Math.sqrt(1 / (s[i] * s[i] + 1));
        }
        double first = alphaBarSqrt[0];
        double last = alphaBarSqrt[n - 1];
        double[] out = new double[n];
        for (int i = 0; i < n; i++) {
            double a = (alphaBarSqrt[i] - last) * (first / (first - last));
            double alphaBar = a * a;
            if (i == n - 1) {
                // ComfyUI pins the terminal alpha_bar to a tiny positive value so sigma stays finite.
                alphaBar = 4.8973451890853435e-08;
            }
            out[i] = Math.sqrt((1 - alphaBar) / alphaBar);
        }
        return out;
    }

    public boolean isZeroTerminalSnr() {
        return zeroTerminalSnr;
    }

    public double sigmaMin() {
        return sigmas[0];
    }

    public double sigmaMax() {
        return sigmas[TIMESTEPS - 1];
    }

    /** Training sigma of integer timestep t (float32 value). */
    public float sigmaAt(int t) {
        return sigmas[t];
    }

    public float logSigmaAt(int t) {
        return logSigmas[t];
    }

    /**
     * exp of the float32 linear interpolation of log_sigmas at fractional t, t clamped to [0, 999]; for flow, the
     * shifted sigma of t / 1000.
     */
    public float sigma(double timestep) {
        if (isFlow()) {
            return flowSigma((float) timestep);
        }
        float t = (float) timestep;
        t = Math.min(Math.max(t, 0f), TIMESTEPS - 1);
        int lo = (int) Math.floor(t);
        int hi = (int) Math.ceil(t);
        float w = t - lo;
        float logSigma = (1f - w) * logSigmas[lo] + w * logSigmas[hi];
        return (float) Math.exp(logSigma);
    }

    /**
     * Nearest training timestep: argmin |log(sigma) - log_sigmas| in float32 (first index on ties). Schedulers use
     * {@link #schedulerTimestep(double)}, which is also right for flow.
     */
    public int timestep(double sigma) {
        float logSigma = (float) Math.log((float) sigma);
        int best = 0;
        float bestDist = Float.POSITIVE_INFINITY;
        for (int i = 0; i < TIMESTEPS; i++) {
            float d = Math.abs(logSigma - logSigmas[i]);
            if (d < bestDist) {
                bestDist = d;
                best = i;
            }
        }
        return best;
    }

    /** ComfyUI's model_sampling.timestep(sigma): the integer timestep (discrete) or sigma * 1000 (flow). */
    public double schedulerTimestep(double sigma) {
        return networkTimestep(sigma);
    }

    /**
     * ComfyUI's percent_to_sigma: 0 -> 999999999.9, 1 -> 0, else sigma((1 - percent) * 999); for flow 0 -> 1,
     * 1 -> 0, else the shifted 1 - percent.
     */
    public double percentToSigma(double percent) {
        if (isFlow()) {
            if (percent <= 0.0) {
                return 1.0;
            }
            if (percent >= 1.0) {
                return 0.0;
            }
            double t = 1.0 - percent;
            return shift == 1.0 ? t : shift * t / (1 + (shift - 1) * t);
        }
        if (percent <= 0.0) {
            return 999999999.9;
        }
        if (percent >= 1.0) {
            return 0.0;
        }
        return sigma((float) ((1.0 - percent) * 999.0));
    }
}
