package jdiffusion.sampling;

import static jdiffusion.sampling.SamplerMath.map;
import static jdiffusion.sampling.SamplerMath.toD;

import java.util.List;

/**
 * k-diffusion's DPM-Solver (noise prediction, time t = -log sigma) as ComfyUI wires it: dpm_fast (fixed steps of
 * orders 3, 3, ..., then 2/1, over an even split of t) and dpm_adaptive (embedded 2/3-order pair with a PID step
 * size controller). Both only use the schedule's first sigma and its last non-zero one, and with eta = 0 they still
 * draw from the default noise generator after each (accepted) step, scaled by zero.
 */
final class DpmSolverSamplers {
    private DpmSolverSamplers() {
    }

    static List<SamplerInfo> all() {
        return List.of(
                SamplerInfo.withNoise("dpm_fast", DpmSolverSamplers::dpmFast, NoiseSources.DEFAULT),
                SamplerInfo.withNoise("dpm_adaptive", DpmSolverSamplers::dpmAdaptive, NoiseSources.DEFAULT));
    }

    private static double sigmaOf(double t) {
        return Math.exp(-t);
    }

    private static double tOf(double sigma) {
        return -Math.log(sigma);
    }

    /** ComfyUI's wrapper: the last sigma, or the one before it when the last is 0. */
    private static double sigmaMin(double[] sigmas) {
        double min = sigmas[sigmas.length - 1];
        return min == 0 ? sigmas[sigmas.length - 2] : min;
    }

    /** The noise prediction at time t. */
    private static float[] eps(Denoiser model, float[] x, double t) {
        double sigma = sigmaOf(t);
        return toD(x, sigma, model.denoise(x, sigma));
    }

    private record Step(float[] x, float[] epsR1) {
    }

    private static float[] solver1(float[] x, double t, double tNext, float[] eps) {
        double h = tNext - t;
        double c = sigmaOf(tNext) * Math.expm1(h);
        return map(x.length, k -> x[k] - c * eps[k]);
    }

    /** Second order with the intermediate point at t + r1 h (epsR1 reused when already known there). */
    private static Step solver2(Denoiser model, float[] x, double t, double tNext, double r1, float[] eps,
            float[] knownEpsR1) {
        double h = tNext - t;
        float[] epsR1 = knownEpsR1;
        if (epsR1 == null) {
            double s1 = t + r1 * h;
            double c1 = sigmaOf(s1) * Math.expm1(r1 * h);
            float[] u1 = map(x.length, k -> x[k] - c1 * eps[k]);
            epsR1 = eps(model, u1, s1);
        }
        double a = sigmaOf(tNext) * Math.expm1(h);
        double b = sigmaOf(tNext) / (2 * r1) * Math.expm1(h);
        float[] e1 = epsR1;
        return new Step(map(x.length, k -> x[k] - a * eps[k] - b * ((double) e1[k] - eps[k])), epsR1);
    }

    private static Step solver3(Denoiser model, float[] x, double t, double tNext, float[] eps, float[] knownEpsR1) {
        final double r1 = 1.0 / 3;
        final double r2 = 2.0 / 3;
        double h = tNext - t;
        double s1 = t + r1 * h;
        double s2 = t + r2 * h;
        float[] epsR1 = knownEpsR1;
        if (epsR1 == null) {
            double c1 = sigmaOf(s1) * Math.expm1(r1 * h);
            float[] u1 = map(x.length, k -> x[k] - c1 * eps[k]);
            epsR1 = eps(model, u1, s1);
        }
        float[] e1 = epsR1;
        double a2 = sigmaOf(s2) * Math.expm1(r2 * h);
        double b2 = sigmaOf(s2) * (r2 / r1) * (Math.expm1(r2 * h) / (r2 * h) - 1);
        float[] u2 = map(x.length, k -> x[k] - a2 * eps[k] - b2 * ((double) e1[k] - eps[k]));
        float[] epsR2 = eps(model, u2, s2);
        double a = sigmaOf(tNext) * Math.expm1(h);
        double b = sigmaOf(tNext) / r2 * (Math.expm1(h) / h - 1);
        return new Step(map(x.length, k -> x[k] - a * eps[k] - b * ((double) epsR2[k] - eps[k])), epsR1);
    }

    static float[] dpmFast(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise, StepCallback callback) {
        if (sigmas.length <= 1) {
            return x0.clone();
        }
        int nfe = sigmas.length - 1;
        double tStart = tOf(sigmas[0]);
        double tEnd = tOf(sigmaMin(sigmas));
        int m = nfe / 3 + 1;
        double[] ts = torchLinspace(tStart, tEnd, m + 1);
        int[] orders = new int[m];
        for (int i = 0; i < orders.length; i++) {
            orders[i] = 3;
        }
        if (nfe % 3 == 0) {
            orders[m - 2] = 2;
            orders[m - 1] = 1;
        } else {
            orders[m - 1] = nfe % 3;
        }
        float[] x = x0.clone();
        for (int i = 0; i < orders.length; i++) {
            double t = ts[i];
            double tNext = ts[i + 1];
            float[] eps = eps(model, x, t);
            float[] xi = x;
            double sigma = sigmaOf(t);
            callback.onStep(i, x, map(x.length, k -> xi[k] - sigma * eps[k]));
            x = switch (orders[i]) {
                case 1 -> solver1(x, t, tNext, eps);
                case 2 -> solver2(model, x, t, tNext, 0.5, eps, null).x();
                default -> solver3(model, x, t, tNext, eps, null).x();
            };
            // eta = 0: the noise is scaled by zero but still drawn
            noise.next(sigmaOf(t), sigmaOf(tNext));
        }
        return x;
    }

    private static final double RTOL = 0.05;
    private static final double ATOL = 0.0078;
    private static final double H_INIT = 0.05;
    private static final double ACCEPT_SAFETY = 0.81;
    private static final int ORDER = 3;

    static float[] dpmAdaptive(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise,
            StepCallback callback) {
        if (sigmas.length <= 1) {
            return x0.clone();
        }
        double tStart = tOf(sigmas[0]);
        double tEnd = tOf(sigmaMin(sigmas));
        boolean forward = tEnd > tStart;
        Pid pid = new Pid(forward ? H_INIT : -H_INIT, ORDER);
        double s = tStart;
        float[] x = x0.clone();
        float[] xPrev = x;
        int steps = 0;
        while (forward ? s < tEnd - 1e-5 : s > tEnd + 1e-5) {
            double t = forward ? Math.min(tEnd, s + pid.h) : Math.max(tEnd, s + pid.h);
            float[] eps = eps(model, x, s);
            float[] xi = x;
            double sigmaS = sigmaOf(s);
            float[] denoised = map(x.length, k -> xi[k] - sigmaS * eps[k]);
            Step low = solver2(model, x, s, t, 1.0 / 3, eps, null);
            Step high = solver3(model, x, s, t, eps, low.epsR1());
            double error = errorNorm(low.x(), high.x(), xPrev);
            if (pid.proposeStep(error)) {
                xPrev = low.x();
                x = high.x();
                noise.next(sigmaOf(s), sigmaOf(t));
                s = t;
            }
            steps++;
            callback.onStep(steps - 1, x, denoised);
        }
        return x;
    }

    /** RMS of (low - high) / max(atol, rtol * max(|low|, |prev|)). */
    private static double errorNorm(float[] low, float[] high, float[] prev) {
        double sum = 0;
        for (int k = 0; k < low.length; k++) {
            double delta = Math.max(ATOL, RTOL * Math.max(Math.abs(low[k]), Math.abs(prev[k])));
            double e = ((double) low[k] - high[k]) / delta;
            sum += e * e;
        }
        return Math.sqrt(sum) / Math.sqrt(low.length);
    }

    /** k-diffusion's PIDStepSizeController with pcoeff 0, icoeff 1, dcoeff 0 (a pure I controller). */
    private static final class Pid {
        double h;
        private final double b1;
        private final double b2;
        private final double b3;
        private double[] errs;

        Pid(double h, double order) {
            this.h = h;
            double p = 0;
            double i = 1;
            double d = 0;
            b1 = (p + i + d) / order;
            b2 = -(p + 2 * d) / order;
            b3 = d / order;
        }

        boolean proposeStep(double error) {
            double inv = 1 / (error + 1e-8);
            if (errs == null) {
                errs = new double[] {inv, inv, inv};
            }
            errs[0] = inv;
            double factor = Math.pow(errs[0], b1) * Math.pow(errs[1], b2) * Math.pow(errs[2], b3);
            factor = 1 + Math.atan(factor - 1);
            boolean accept = factor >= ACCEPT_SAFETY;
            if (accept) {
                errs[2] = errs[1];
                errs[1] = errs[0];
            }
            h *= factor;
            return accept;
        }
    }

    /** torch.linspace: the first half counts up from start, the second half down from end. */
    private static double[] torchLinspace(double start, double end, int n) {
        double[] out = new double[n];
        if (n == 1) {
            out[0] = start;
            return out;
        }
        double step = (end - start) / (n - 1);
        for (int i = 0; i < n; i++) {
            out[i] = i < n / 2 ? start + step * i : end - step * (n - 1 - i);
        }
        return out;
    }
}
