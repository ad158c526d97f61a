package jdiffusion.sampling;

import static jdiffusion.sampling.SamplerMath.map;
import static jdiffusion.sampling.SamplerMath.steps;
import static jdiffusion.sampling.SamplerMath.toD;

import java.util.ArrayList;
import java.util.List;

/**
 * Improved pseudo-numerical (Adams-Bashforth) samplers from zju-pi diff-sampler: ipndm (fixed coefficients) and
 * ipndm_v (variable step). Like ComfyUI, the callback reports the initial x at every step (its 'x' is never updated);
 * the denoised value is the real one.
 */
final class IpndmSamplers {
    private static final int MAX_ORDER = 4;

    private IpndmSamplers() {
    }

    static List<SamplerInfo> all() {
        return List.of(
                SamplerInfo.plain("ipndm", (m, x, s, n, cb) -> ipndm(m, x, s, cb, false)),
                SamplerInfo.plain("ipndm_v", (m, x, s, n, cb) -> ipndm(m, x, s, cb, true)));
    }

    static float[] ipndm(Denoiser model, float[] x0, double[] sigmas, StepCallback callback, boolean variable) {
        float[] xNext = x0.clone();
        List<float[]> history = new ArrayList<>(); // previous derivatives, oldest first
        for (int i = 0; i < steps(sigmas); i++) {
            double tCur = sigmas[i];
            double tNext = sigmas[i + 1];
            float[] xCur = xNext;
            float[] denoised = model.denoise(xCur, tCur);
            callback.onStep(i, x0, denoised);
            float[] d = toD(xCur, tCur, denoised);
            int order = Math.min(MAX_ORDER, i + 1);
            if (tNext == 0) {
                xNext = denoised;
            } else {
                double[] c = variable ? variableCoefficients(sigmas, i, order) : fixedCoefficients(order);
                int hs = history.size();
                float[] p1 = order >= 2 ? history.get(hs - 1) : null;
                float[] p2 = order >= 3 ? history.get(hs - 2) : null;
                float[] p3 = order >= 4 ? history.get(hs - 3) : null;
                double dt = tNext - tCur;
                xNext = map(xCur.length, k -> {
                    double slope = c[0] * d[k];
                    if (p1 != null) {
                        slope += c[1] * p1[k];
                    }
                    if (p2 != null) {
                        slope += c[2] * p2[k];
                    }
                    if (p3 != null) {
                        slope += c[3] * p3[k];
                    }
                    return xCur[k] + dt * slope;
                });
            }
            history.add(d);
            if (history.size() > MAX_ORDER - 1) {
                history.remove(0);
            }
        }
        return xNext;
    }

    /** Adams-Bashforth weights for equal steps, newest derivative first. */
    private static double[] fixedCoefficients(int order) {
        return switch (order) {
            case 1 -> new double[] {1};
            case 2 -> new double[] {3 / 2.0, -1 / 2.0};
            case 3 -> new double[] {23 / 12.0, -16 / 12.0, 5 / 12.0};
            default -> new double[] {55 / 24.0, -59 / 24.0, 37 / 24.0, -9 / 24.0};
        };
    }

    /** Variable-step Adams-Bashforth weights from the last step sizes (ipndm_v). */
    private static double[] variableCoefficients(double[] t, int i, int order) {
        if (order == 1) {
            return new double[] {1};
        }
        double hN = t[i + 1] - t[i];
        double hN1 = t[i] - t[i - 1];
        if (order == 2) {
            return new double[] {(2 + hN / hN1) / 2, -(hN / hN1) / 2};
        }
        double hN2 = t[i - 1] - t[i - 2];
        double temp1 = (1 - hN / (3 * (hN + hN1)) * (hN * (hN + hN1)) / (hN1 * (hN1 + hN2))) / 2;
        if (order == 3) {
            double c1 = (2 + hN / hN1) / 2 + temp1;
            double c2 = -(hN / hN1) / 2 - (1 + hN1 / hN2) * temp1;
            double c3 = temp1 * hN1 / hN2;
            return new double[] {c1, c2, c3};
        }
        double hN3 = t[i - 2] - t[i - 3];
        double temp2 = ((1 - hN / (3 * (hN + hN1))) / 2 + (1 - hN / (2 * (hN + hN1))) * hN / (6 * (hN + hN1 + hN2)))
                * (hN * (hN + hN1) * (hN + hN1 + hN2)) / (hN1 * (hN1 + hN2) * (hN1 + hN2 + hN3));
        double ratio = hN1 * (hN1 + hN2) / (hN2 * (hN2 + hN3));
        double c1 = (2 + hN / hN1) / 2 + temp1 + temp2;
        double c2 = -(hN / hN1) / 2 - (1 + hN1 / hN2) * temp1 - (1 + hN1 / hN2 + ratio) * temp2;
        double c3 = temp1 * hN1 / hN2 + (hN1 / hN2 + ratio * (1 + hN2 / hN3)) * temp2;
        double c4 = -temp2 * ratio * hN1 / hN2;
        return new double[] {c1, c2, c3, c4};
    }
}
