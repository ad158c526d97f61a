package jdiffusion.sampling;

import static jdiffusion.sampling.SamplerMath.steps;

import java.util.ArrayList;
import java.util.List;

/**
 * SA-Solver (stochastic Adams, NeurIPS 2023) as ComfyUI runs it: predictor order 3, corrector order 4, data
 * prediction in half-log-SNR time, stochastic (tau = 1) only while sigma lies between percent_to_sigma(0.2) and
 * percent_to_sigma(0.8) of the model's schedule, lower orders towards a final sigma of 0. sa_solver_pece re-evaluates
 * the model on the corrected state (predict-evaluate-correct-evaluate).
 */
final class SaSolver {
    private static final int PREDICTOR_ORDER = 3;
    private static final int CORRECTOR_ORDER = 4;
    private static final double S_NOISE = 1.0;

    private SaSolver() {
    }

    static List<SamplerInfo> all() {
        return List.of(
                SamplerInfo.withNoise("sa_solver", (m, x, s, n, cb) -> sample(m, x, s, n, cb, false),
                        NoiseSources.DEFAULT),
                SamplerInfo.withNoise("sa_solver_pece", (m, x, s, n, cb) -> sample(m, x, s, n, cb, true),
                        NoiseSources.DEFAULT));
    }

    static float[] sample(Denoiser model, float[] x0, double[] sigmas, NoiseSource noise, StepCallback callback,
            boolean pece) {
        return sample(model, x0, sigmas, noise, callback, pece, ModelSamplingDiscrete.DEFAULT);
    }

    /**
     * The sampler with the discrete model sampling used for the stochastic interval of a discrete model; a
     * rectified-flow model ({@link Denoiser#flow()}) brings its own ({@link Denoiser#modelSampling()}): its lambda is
     * log((1 - sigma) / sigma), its first sigma of 1 is offset, its interval is percent_to_sigma(0.2 / 0.8).
     */
    static float[] sample(Denoiser model, float[] x0, double[] sigmas0, NoiseSource noiseSource,
            StepCallback callback, boolean pece, ModelSamplingDiscrete modelSampling) {
        if (sigmas0.length <= 1) {
            return x0.clone();
        }
        boolean flow = model.flow();
        double[] sigmas = SamplerMath.offsetFirstSigma(sigmas0, model);
        int n = x0.length;
        double[] lambdas = new double[sigmas.length];
        for (int i = 0; i < sigmas.length; i++) {
            lambdas[i] = SamplerMath.halfLogSnr(sigmas[i], flow);
        }
        double startSigma;
        double endSigma;
        if (flow) {
            // ComfyUI compares sigma.item() with the Python floats of percent_to_sigma
            ModelSamplingDiscrete ms = SamplerMath.flowSampling(model);
            startSigma = ms.percentToSigma(0.2);
            endSigma = ms.percentToSigma(0.8);
        } else {
            startSigma = tauBoundary(modelSampling, 0.2);
            endSigma = tauBoundary(modelSampling, 0.8);
        }
        int maxUsedOrder = Math.max(PREDICTOR_ORDER, CORRECTOR_ORDER);
        boolean lowerOrderToEnd = sigmas[sigmas.length - 1] == 0;

        float[] x = x0.clone();
        float[] xPred = x0.clone();
        double h = 0;
        double tau = 0;
        double[] noise = null; // the predictor's noise, added again by the corrector
        List<float[]> preds = new ArrayList<>();
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(xPred, sigmas[i]);
            callback.onStep(i, xPred, denoised);
            preds.add(denoised);
            if (preds.size() > maxUsedOrder) {
                preds.remove(0);
            }
            int predictorOrder = Math.min(PREDICTOR_ORDER, preds.size());
            int correctorOrder = i == 0 || (sigmas[i + 1] == 0 && !pece) ? 0 : Math.min(CORRECTOR_ORDER, preds.size());
            if (lowerOrderToEnd) {
                predictorOrder = Math.min(predictorOrder, sigmas.length - 2 - i);
                correctorOrder = Math.min(correctorOrder, sigmas.length - 1 - i);
            }

            if (correctorOrder == 0) {
                x = xPred;
            } else {
                double[] b = adamsCoefficients(sigmas[i], slice(lambdas, i - correctorOrder + 1, i + 1),
                        lambdas[i - 1], lambdas[i], tau);
                double keep = sigmas[i] / sigmas[i - 1] * Math.exp(-(tau * tau) * h);
                float[] xs = x;
                double[] nz = tau > 0 && S_NOISE > 0 ? noise : null;
                List<float[]> used = preds.subList(preds.size() - correctorOrder, preds.size());
                x = combine(n, keep, xs, used, b, nz);
                if (pece) {
                    denoised = model.denoise(x, sigmas[i]);
                    preds.set(preds.size() - 1, denoised);
                }
            }

            if (sigmas[i + 1] == 0) {
                xPred = denoised;
            } else {
                tau = startSigma >= sigmas[i + 1] && sigmas[i + 1] >= endSigma ? 1.0 : 0.0;
                double[] b = adamsCoefficients(sigmas[i + 1], slice(lambdas, i - predictorOrder + 1, i + 1),
                        lambdas[i], lambdas[i + 1], tau);
                h = lambdas[i + 1] - lambdas[i];
                double keep = sigmas[i + 1] / sigmas[i] * Math.exp(-(tau * tau) * h);
                List<float[]> used = preds.subList(preds.size() - predictorOrder, preds.size());
                if (tau > 0 && S_NOISE > 0) {
                    float[] z = noiseSource.next(sigmas[i], sigmas[i + 1]);
                    double amp = sigmas[i + 1] * Math.sqrt(-Math.expm1(-2 * tau * tau * h)) * S_NOISE;
                    noise = new double[n];
                    for (int k = 0; k < n; k++) {
                        noise[k] = (float) (z[k] * amp);
                    }
                    xPred = combine(n, keep, x, used, b, noise);
                } else {
                    xPred = combine(n, keep, x, used, b, null);
                }
            }
        }
        return xPred;
    }

    /**
     * percent_to_sigma for the stochastic interval, with the final exp left in double precision. The reference run
     * excludes a schedule sigma computed at the very same timestep as the interval's end (sgm_uniform, 10 steps:
     * sigma(199.8) is not noised) while including the one at its start (sigma(799.2)); the float32 value of
     * percent_to_sigma would include both, the unrounded exp of the float32-interpolated log sigma reproduces both.
     */
    static double tauBoundary(ModelSamplingDiscrete ms, double percent) {
        float t = (float) ((1.0 - percent) * 999.0);
        t = Math.min(Math.max(t, 0f), ModelSamplingDiscrete.TIMESTEPS - 1);
        int lo = (int) Math.floor(t);
        int hi = (int) Math.ceil(t);
        float w = t - lo;
        float logSigma = (1f - w) * ms.logSigmaAt(lo) + w * ms.logSigmaAt(hi);
        return Math.exp(logSigma);
    }

    /** keep * x + sum_k b[k] * preds[k] (+ noise). */
    private static float[] combine(int n, double keep, float[] x, List<float[]> preds, double[] b, double[] noise) {
        float[] out = new float[n];
        for (int k = 0; k < n; k++) {
            double res = 0;
            for (int j = 0; j < b.length; j++) {
                res += preds.get(j)[k] * b[j];
            }
            double v = keep * x[k] + res;
            out[k] = (float) (noise == null ? v : v + noise[k]);
        }
        return out;
    }

    private static double[] slice(double[] v, int from, int to) {
        double[] out = new double[to - from];
        System.arraycopy(v, from, out, 0, out.length);
        return out;
    }

    /**
     * The b_i of eqs. 15 / 18: integrals of the Lagrange basis over the curr lambdas against the exponential
     * weight, from a Vandermonde solve, times alpha_t = sigma_next * exp(lambda_t).
     */
    static double[] adamsCoefficients(double sigmaNext, double[] currLambdas, double lambdaS, double lambdaT,
            double tau) {
        int order = currLambdas.length;
        double[] rhs = exponentialCoefficients(lambdaS, lambdaT, order, tau);
        double[][] vt = new double[order][order];
        for (int row = 0; row < order; row++) {
            for (int col = 0; col < order; col++) {
                vt[row][col] = Math.pow(currLambdas[col], row);
            }
        }
        double[] lagrange = solve(vt, rhs);
        double alphaT = sigmaNext * Math.exp(lambdaT);
        for (int k = 0; k < order; k++) {
            lagrange[k] *= alphaT;
        }
        return lagrange;
    }

    /**
     * (1 + tau^2) * integral_s^t exp((1 + tau^2) x) x^p dx with exp((1 + tau^2) t) factored out, p = 0..order-1,
     * by integration by parts: e_p = sum_{j<=p} (-1)^(p-j) p!/j! (1 + tau^2)^-(p-j) (t^j - s^j exp(-(1+tau^2) h)).
     */
    static double[] exponentialCoefficients(double s, double t, int order, double tau) {
        double tauMul = 1 + tau * tau;
        double h = t - s;
        double decay = Math.exp(-tauMul * h);
        double[] terms = new double[order];
        for (int p = 0; p < order; p++) {
            terms[p] = Math.pow(t, p) - Math.pow(s, p) * decay;
        }
        double[] out = new double[order];
        for (int p = 0; p < order; p++) {
            double sum = 0;
            for (int j = 0; j <= p; j++) {
                double logCoeff = logFactorial(p) - logFactorial(j);
                if (tau > 0) {
                    logCoeff -= (p - j) * Math.log(tauMul);
                }
                double sign = (p - j) % 2 == 0 ? 1.0 : -1.0;
                sum += Math.exp(logCoeff) * sign * terms[j];
            }
            out[p] = sum;
        }
        return out;
    }

    private static double logFactorial(int p) {
        double f = 0;
        for (int k = 2; k <= p; k++) {
            f += Math.log(k);
        }
        return f;
    }

    /** Gaussian elimination with partial pivoting (the systems are at most 4 x 4). */
    static double[] solve(double[][] a0, double[] b0) {
        int n = b0.length;
        double[][] a = new double[n][];
        for (int i = 0; i < n; i++) {
            a[i] = a0[i].clone();
        }
        double[] b = b0.clone();
        for (int col = 0; col < n; col++) {
            int pivot = col;
            for (int r = col + 1; r < n; r++) {
                if (Math.abs(a[r][col]) > Math.abs(a[pivot][col])) {
                    pivot = r;
                }
            }
            double[] tr = a[col];
            a[col] = a[pivot];
            a[pivot] = tr;
            double tb = b[col];
            b[col] = b[pivot];
            b[pivot] = tb;
            for (int r = col + 1; r < n; r++) {
                double f = a[r][col] / a[col][col];
                for (int c = col; c < n; c++) {
                    a[r][c] -= f * a[col][c];
                }
                b[r] -= f * b[col];
            }
        }
        double[] x = new double[n];
        for (int r = n - 1; r >= 0; r--) {
            double v = b[r];
            for (int c = r + 1; c < n; c++) {
                v -= a[r][c] * x[c];
            }
            x[r] = v / a[r][r];
        }
        return x;
    }
}
