package jdiffusion.sampling;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * ComfyUI's schedulers ({@code SCHEDULER_HANDLERS}): functions from (model sampling, steps) to a descending sigma
 * list ending in 0. The values are float32 as ComfyUI's {@code torch.FloatTensor}, returned as doubles; the
 * arithmetic follows torch's float32 order where it decides the last bit (linspace, interpolation of log-sigmas).
 */
public final class Schedulers {

    /** A scheduler: steps + 1 sigmas (ddim_uniform may give fewer), float32 values. */
    @FunctionalInterface
    public interface Scheduler {
        double[] sigmas(ModelSamplingDiscrete modelSampling, int steps);
    }

    private static final Map<String, Scheduler> REGISTRY = new LinkedHashMap<>();

    static {
        REGISTRY.put("simple", Schedulers::simple);
        REGISTRY.put("sgm_uniform", (ms, steps) -> normal(ms, steps, true));
        REGISTRY.put("karras", (ms, steps) -> karras(steps, ms.sigmaMin(), ms.sigmaMax(), 7.0));
        REGISTRY.put("exponential", (ms, steps) -> exponential(steps, ms.sigmaMin(), ms.sigmaMax()));
        REGISTRY.put("ddim_uniform", Schedulers::ddimUniform);
        REGISTRY.put("beta", (ms, steps) -> beta(ms, steps, 0.6, 0.6));
        REGISTRY.put("normal", (ms, steps) -> normal(ms, steps, false));
        REGISTRY.put("linear_quadratic", (ms, steps) -> linearQuadratic(ms, steps, 0.025));
        REGISTRY.put("kl_optimal", (ms, steps) -> klOptimal(steps, ms.sigmaMin(), ms.sigmaMax()));
    }

    /** The scheduler names in ComfyUI's order. */
    public static final List<String> NAMES = List.copyOf(REGISTRY.keySet());

    private Schedulers() {
    }

    public static Scheduler get(String name) {
        Scheduler s = REGISTRY.get(name);
        if (s == null) {
            throw new IllegalArgumentException("unknown scheduler '" + name + "'; valid schedulers: "
                    + String.join(", ", NAMES));
        }
        return s;
    }

    /** ComfyUI's calculate_sigmas(model_sampling, name, steps). */
    public static double[] sigmas(String name, ModelSamplingDiscrete modelSampling, int steps) {
        return get(name).sigmas(modelSampling, steps);
    }

    /** Every (1000 / steps)-th training sigma from the top. */
    static double[] simple(ModelSamplingDiscrete ms, int steps) {
        double stride = (double) ModelSamplingDiscrete.TIMESTEPS / steps;
        double[] out = new double[steps + 1];
        for (int i = 0; i < steps; i++) {
            out[i] = ms.sigmaAt(ModelSamplingDiscrete.TIMESTEPS - 1 - (int) (i * stride));
        }
        return out;
    }

    /** Training sigmas 1, 1 + k, 1 + 2k, ... (k = 1000 / steps), reversed, after a leading 0. */
    static double[] ddimUniform(ModelSamplingDiscrete ms, int steps) {
        List<Double> sigs = new java.util.ArrayList<>();
        int first = 1;
        if (Math.abs(ms.sigmaAt(first)) <= 1e-5) {
            // A schedule whose sigma 1 is ~0 takes one more step and no extra zero (ComfyUI's rule).
            steps += 1;
        } else {
            sigs.add(0.0);
        }
        int stride = Math.max(ModelSamplingDiscrete.TIMESTEPS / steps, 1);
        for (int t = first; t < ModelSamplingDiscrete.TIMESTEPS; t += stride) {
            sigs.add((double) ms.sigmaAt(t));
        }
        double[] out = new double[sigs.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = sigs.get(out.length - 1 - i);
        }
        return out;
    }

    /** normal: sigma(t) at linspace(999, 0, steps) then 0; sgm_uniform: linspace(999, 0, steps + 1) without its end. */
    static double[] normal(ModelSamplingDiscrete ms, int steps, boolean sgm) {
        double start = ms.schedulerTimestep(ms.sigmaMax());
        double end = ms.schedulerTimestep(ms.sigmaMin());
        boolean appendZero = true;
        float[] timesteps;
        if (sgm) {
            float[] all = linspaceF32(start, end, steps + 1);
            timesteps = java.util.Arrays.copyOf(all, steps);
        } else {
            if (Math.abs(ms.sigma(end)) <= 1e-5) {
                steps += 1;
                appendZero = false;
            }
            timesteps = linspaceF32(start, end, steps);
        }
        double[] out = new double[timesteps.length + (appendZero ? 1 : 0)];
        for (int i = 0; i < timesteps.length; i++) {
            out[i] = ms.sigma(timesteps[i]);
        }
        return out;
    }

    /** Karras et al. rho schedule between sigmaMax and sigmaMin, in float32 as k-diffusion's get_sigmas_karras. */
    public static double[] karras(int n, double sigmaMin, double sigmaMax, double rho) {
        float[] ramp = linspaceF32(0, 1, n);
        float maxInvRho = (float) Math.pow(sigmaMax, 1 / rho);
        float span = (float) (Math.pow(sigmaMin, 1 / rho) - Math.pow(sigmaMax, 1 / rho));
        double[] out = new double[n + 1];
        for (int i = 0; i < n; i++) {
            float base = maxInvRho + ramp[i] * span;
            out[i] = (float) Math.pow(base, (float) rho);
        }
        return out;
    }

    /** Log-linear from sigmaMax down to sigmaMin (float32 linspace of the logs, then exp). */
    public static double[] exponential(int n, double sigmaMin, double sigmaMax) {
        float[] logs = linspaceF32(Math.log(sigmaMax), Math.log(sigmaMin), n);
        double[] out = new double[n + 1];
        for (int i = 0; i < n; i++) {
            out[i] = (float) Math.exp(logs[i]);
        }
        return out;
    }

    /**
     * The beta scheduler (arXiv 2407.12173): timesteps at the Beta(alpha, beta) quantiles of 1 - linspace(0, 1,
     * steps, endpoint=False), rounded to integers, repeated timesteps dropped.
     */
    static double[] beta(ModelSamplingDiscrete ms, int steps, double alpha, double beta) {
        int totalTimesteps = ModelSamplingDiscrete.TIMESTEPS - 1;
        List<Double> sigs = new java.util.ArrayList<>();
        double lastT = -1;
        for (int i = 0; i < steps; i++) {
            double q = 1.0 - (double) i / steps;
            double t = Math.rint(BetaDistribution.quantile(q, alpha, beta) * totalTimesteps);
            if (t != lastT) {
                sigs.add((double) ms.sigmaAt((int) t));
            }
            lastT = t;
        }
        sigs.add(0.0);
        return sigs.stream().mapToDouble(Double::doubleValue).toArray();
    }

    /** Mochi's linear-then-quadratic schedule in units of sigma_max (computed in double, stored in float32). */
    static double[] linearQuadratic(ModelSamplingDiscrete ms, int steps, double thresholdNoise) {
        double[] schedule;
        if (steps == 1) {
            schedule = new double[] {1.0, 0.0};
        } else {
            int linearSteps = steps / 2;
            schedule = new double[steps + 1];
            for (int i = 0; i < linearSteps; i++) {
                schedule[i] = i * thresholdNoise / linearSteps;
            }
            double stepDiff = linearSteps - thresholdNoise * steps;
            int quadraticSteps = steps - linearSteps;
            double quadraticCoef = stepDiff / (linearSteps * Math.pow(quadraticSteps, 2));
            double linearCoef = thresholdNoise / linearSteps - 2 * stepDiff / Math.pow(quadraticSteps, 2);
            double constant = quadraticCoef * Math.pow(linearSteps, 2);
            for (int i = linearSteps; i < steps; i++) {
                schedule[i] = quadraticCoef * Math.pow(i, 2) + linearCoef * i + constant;
            }
            schedule[steps] = 1.0;
            for (int i = 0; i <= steps; i++) {
                schedule[i] = 1.0 - schedule[i];
            }
        }
        float sigmaMax = (float) ms.sigmaMax();
        double[] out = new double[schedule.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) schedule[i] * sigmaMax;
        }
        return out;
    }

    /** KL-optimal schedule (A1111 PR 15608): tan of the linear blend of atan(sigma_max) and atan(sigma_min). */
    public static double[] klOptimal(int n, double sigmaMin, double sigmaMax) {
        float atanMin = (float) Math.atan(sigmaMin);
        float atanMax = (float) Math.atan(sigmaMax);
        double[] out = new double[n + 1];
        for (int i = 0; i < n; i++) {
            // n == 1 divides 0 by 0 (NaN), as ComfyUI does.
            float w = (float) i / (float) (n - 1);
            float blend = w * atanMin + (1f - w) * atanMax;
            out[i] = (float) Math.tan(blend);
        }
        return out;
    }

    /**
     * torch.linspace in float32 as its AVX2 CPU kernel computes it: step = (end - start) / (n - 1); whole blocks of 16
     * are written as two vectors of 8 whose base is start + step * idx (first half) or end - step * (n - 1 - idx)
     * (second half, decided by the vector's first index) plus j * step; the remaining tail element by element.
     * The scalar expressions are contracted into FMAs (one rounding), the vector's base + j * step is not; this
     * combination reproduces every karras / sgm_uniform / normal golden bit for bit.
     * The last bit matters: it moves sigma(t) across argmin ties.
     */
    static float[] linspaceF32(double start, double end, int n) {
        float[] out = new float[n];
        if (n == 1) {
            out[0] = (float) start;
            return out;
        }
        float s = (float) start;
        float e = (float) end;
        float step = (e - s) / (float) (n - 1);
        int half = n / 2;
        int i = 0;
        for (; i + 16 <= n; i += 16) {
            for (int v = i; v < i + 16; v += 8) {
                float base = v < half ? Math.fma(step, v, s) : Math.fma(-step, n - v - 1, e);
                for (int j = 0; j < 8; j++) {
                    out[v + j] = base + j * step;
                }
            }
        }
        for (; i < n; i++) {
            out[i] = i < half ? Math.fma(step, i, s) : Math.fma(-step, n - i - 1, e);
        }
        return out;
    }
}
