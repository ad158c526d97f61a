package jdiffusion.sampling;

import static jdiffusion.sampling.SamplerMath.steps;
import static jdiffusion.sampling.SamplerMath.toD;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.function.DoubleUnaryOperator;

/**
 * Linear multistep (k-diffusion sample_lms, order 4): the update integrates the Lagrange interpolant of the last
 * derivatives over [sigma_i, sigma_i+1]. k-diffusion integrates with scipy quad; the integrand is a polynomial of
 * degree < 4, which an adaptive Simpson rule integrates to rounding error.
 */
final class LmsSampler {
    private static final int ORDER = 4;

    private LmsSampler() {
    }

    static List<SamplerInfo> all() {
        return List.of(SamplerInfo.plain("lms", LmsSampler::lms));
    }

    static float[] lms(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise, StepCallback callback) {
        float[] x = x0.clone();
        Deque<float[]> ds = new ArrayDeque<>();
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            ds.addLast(toD(x, sigmas[i], denoised));
            if (ds.size() > ORDER) {
                ds.removeFirst();
            }
            callback.onStep(i, x, denoised);
            if (sigmas[i + 1] == 0) {
                x = denoised;
                continue;
            }
            int order = Math.min(i + 1, ORDER);
            double[] coeffs = new double[order];
            for (int j = 0; j < order; j++) {
                coeffs[j] = coefficient(order, sigmas, i, j);
            }
            // coefficient j belongs to the derivative j steps back (the newest first).
            List<float[]> newestFirst = new ArrayList<>(ds);
            java.util.Collections.reverse(newestFirst);
            float[] xi = x;
            x = SamplerMath.map(x.length, k -> {
                double sum = 0;
                for (int j = 0; j < coeffs.length; j++) {
                    sum += coeffs[j] * newestFirst.get(j)[k];
                }
                return xi[k] + sum;
            });
        }
        return x;
    }

    /** Integral over [t_i, t_i+1] of the Lagrange basis polynomial of node i - j among nodes i, i-1, .., i-order+1. */
    static double coefficient(int order, double[] t, int i, int j) {
        if (order - 1 > i) {
            throw new IllegalArgumentException("order " + order + " too high for step " + i);
        }
        DoubleUnaryOperator basis = tau -> {
            double prod = 1;
            for (int k = 0; k < order; k++) {
                if (k != j) {
                    prod *= (tau - t[i - k]) / (t[i - j] - t[i - k]);
                }
            }
            return prod;
        };
        return Quadrature.adaptiveSimpson(basis, t[i], t[i + 1], 1e-13);
    }
}
