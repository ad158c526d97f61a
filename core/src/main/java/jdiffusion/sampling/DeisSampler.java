package jdiffusion.sampling;

import static jdiffusion.sampling.SamplerMath.map;
import static jdiffusion.sampling.SamplerMath.steps;
import static jdiffusion.sampling.SamplerMath.toD;

import java.util.ArrayList;
import java.util.List;

/**
 * DEIS (tAB mode, max order 3) as ComfyUI runs it from zju-pi's diff-sampler: the sigmas are mapped to the time of
 * an EDM-fitted VP SDE (sigma_min 0.002, sigma_max 80, eps 1e-3), and each multistep coefficient is the integral of
 * the exponential-integrator weight times a Lagrange basis polynomial, approximated by a 10000-point sum (both ends
 * included, times dtau = span / 10000) exactly as the reference does. Like ComfyUI the callback reports the initial
 * x at every step.
 */
final class DeisSampler {
    private static final int MAX_ORDER = 3;
    private static final int POINTS = 10000;
    private static final double EPS_S = 1e-3;
    private static final double EDM_SIGMA_MIN = 0.002;
    private static final double EDM_SIGMA_MAX = 80;

    private DeisSampler() {
    }

    static List<SamplerInfo> all() {
        return List.of(SamplerInfo.plain("deis", (m, x, s, n, cb) -> deis(m, x, s, cb)));
    }

    static float[] deis(Denoiser model, float[] x0, double[] sigmas, StepCallback callback) {
        double[][] coeffs = coefficients(sigmas);
        float[] xNext = x0.clone();
        List<float[]> history = new ArrayList<>(); // previous derivatives, oldest first
        for (int i = 0; i < steps(sigmas); i++) {
            double tCur = sigmas[i];
            double tNext = sigmas[i + 1];
            float[] xCur = xNext;
            float[] denoised = model.denoise(xCur, tCur);
            callback.onStep(i, x0, denoised);
            float[] d = toD(xCur, tCur, denoised);
            int order = tNext <= 0 ? 1 : Math.min(MAX_ORDER, i + 1);
            if (order == 1) {
                xNext = map(xCur.length, k -> xCur[k] + (tNext - tCur) * d[k]);
            } else {
                double[] c = coeffs[i];
                int hs = history.size();
                float[] p1 = history.get(hs - 1);
                float[] p2 = order >= 3 ? history.get(hs - 2) : null;
                xNext = map(xCur.length, k -> {
                    double v = xCur[k] + c[0] * d[k] + c[1] * p1[k];
                    return p2 == null ? v : v + c[2] * p2[k];
                });
            }
            if (history.size() == MAX_ORDER - 1) {
                history.remove(0);
            }
            history.add(d);
        }
        return xNext;
    }

    /** deis.get_deis_coeff_list in 'tab' mode: coefficient j of step i weighs the derivative of step i - j. */
    static double[][] coefficients(double[] sigmas) {
        int n = sigmas.length;
        // edm2t: fit a VP SDE (beta_min, beta_d) to the EDM range, then invert its sigma(t)
        double betaD = 2 * (Math.log(EDM_SIGMA_MIN * EDM_SIGMA_MIN + 1) / EPS_S
                - Math.log(EDM_SIGMA_MAX * EDM_SIGMA_MAX + 1)) / (EPS_S - 1);
        double betaMin = Math.log(EDM_SIGMA_MAX * EDM_SIGMA_MAX + 1) - 0.5 * betaD;
        double beta0 = betaMin;
        double beta1 = betaD + betaMin;
        double[] t = new double[n];
        for (int i = 0; i < n; i++) {
            double s = sigmas[i];
            t[i] = (Math.sqrt(betaMin * betaMin + 2 * betaD * Math.log(s * s + 1)) - betaMin) / betaD;
        }
        double[][] c = new double[n - 1][];
        for (int i = 0; i < n - 1; i++) {
            int order = Math.min(i + 1, MAX_ORDER);
            if (order == 1) {
                c[i] = new double[0];
                continue;
            }
            double[] prev = new double[order];
            for (int k = 0; k < order; k++) {
                prev[k] = t[i - k];
            }
            double tCur = t[i];
            double tNext = t[i + 1];
            double dtau = (tNext - tCur) / POINTS;
            double step = (tNext - tCur) / (POINTS - 1);
            double[] sums = new double[order];
            for (int p = 0; p < POINTS; p++) {
                // torch.linspace: the first half counts up from the start, the second half down from the end
                double tau = p < POINTS / 2 ? tCur + step * p : tNext - step * (POINTS - 1 - p);
                double w = integrand(beta0, beta1, tau);
                for (int j = 0; j < order; j++) {
                    sums[j] += w * lagrange(prev, j, tau);
                }
            }
            c[i] = new double[order];
            for (int j = 0; j < order; j++) {
                c[i][j] = sums[j] * dtau;
            }
        }
        return c;
    }

    /** -1/2 d(log alpha)/dtau / sqrt(alpha (1 - alpha)) for alpha(t) = exp(-t^2 (beta1 - beta0) / 2 - t beta0). */
    private static double integrand(double beta0, double beta1, double tau) {
        double alpha = Math.exp(-0.5 * tau * tau * (beta1 - beta0) - tau * beta0);
        double dLogAlpha = -tau * (beta1 - beta0) - beta0;
        return -0.5 * dLogAlpha / Math.sqrt(alpha * (1 - alpha));
    }

    private static double lagrange(double[] prev, int j, double tau) {
        double poly = 1;
        for (int k = 0; k < prev.length; k++) {
            if (k != j) {
                poly *= (tau - prev[k]) / (prev[j] - prev[k]);
            }
        }
        return poly;
    }
}
