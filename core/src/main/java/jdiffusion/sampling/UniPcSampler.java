package jdiffusion.sampling;

import static jdiffusion.sampling.SamplerMath.map;
import static jdiffusion.sampling.SamplerMath.toD;

import java.util.ArrayList;
import java.util.List;

/**
 * UniPC (unified predictor-corrector, multistep, data prediction, order 3 with lower orders at the end) as ComfyUI's
 * sample_unipc runs it on a k-diffusion model. It works in the variance-preserving space of the sigmas themselves:
 * alpha = 1 / sqrt(sigma^2 + 1), std = sigma * alpha, so x is first divided by sqrt(1 + sigma0^2). A final sigma of 0
 * becomes 0.001 (the sampler never evaluates there) and the result is divided by alpha(0.001). The callback gets x
 * in that VP space after each step, as ComfyUI reports it. Variants: bh1 (uni_pc, B(h) = h) and bh2 (uni_pc_bh2,
 * B(h) = e^h - 1). KSampler drops the penultimate sigma for both.
 */
final class UniPcSampler {
    private static final double FINAL_SIGMA = 0.001;

    private UniPcSampler() {
    }

    static List<SamplerInfo> all() {
        return List.of(
                SamplerInfo.plain("uni_pc", (m, x, s, n, cb) -> sample(m, x, s, cb, false)).dropPenultimate(),
                SamplerInfo.plain("uni_pc_bh2", (m, x, s, n, cb) -> sample(m, x, s, cb, true)).dropPenultimate());
    }

    // ComfyUI's SigmaConvert: the VP quantities of a sigma
    private static double logAlpha(double sigma) {
        return 0.5 * Math.log(1 / (sigma * sigma + 1));
    }

    private static double alpha(double sigma) {
        return Math.exp(logAlpha(sigma));
    }

    private static double std(double sigma) {
        return Math.sqrt(1 - Math.exp(2 * logAlpha(sigma)));
    }

    private static double lambda(double sigma) {
        double la = logAlpha(sigma);
        return la - 0.5 * Math.log(1 - Math.exp(2 * la));
    }

    /** Data prediction at VP state x: the k-diffusion model sees x * sqrt(sigma^2 + 1); x0 = (x - std * eps) / alpha. */
    private static float[] modelFn(Denoiser model, float[] x, double sigma) {
        double scale = Math.sqrt(sigma * sigma + 1.0);
        float[] input = map(x.length, k -> x[k] * scale);
        float[] denoised = model.denoise(input, sigma);
        float[] eps = toD(input, sigma, denoised);
        double std = std(sigma);
        double alpha = alpha(sigma);
        return map(x.length, k -> (x[k] - std * eps[k]) / alpha);
    }

    static float[] sample(Denoiser model, float[] x0, double[] sigmas, StepCallback callback, boolean bh2) {
        double[] ts = sigmas.clone();
        if (ts[ts.length - 1] == 0) {
            ts[ts.length - 1] = FINAL_SIGMA;
        }
        double first = Math.sqrt(1.0 + ts[0] * ts[0]);
        float[] x = map(x0.length, k -> x0[k] / first);
        int steps = ts.length - 1;
        int order = Math.min(3, ts.length - 2);
        List<float[]> modelPrev = new ArrayList<>();
        List<Double> tPrev = new ArrayList<>();
        for (int stepIndex = 0; stepIndex < steps; stepIndex++) {
            if (stepIndex == 0) {
                modelPrev.add(modelFn(model, x, ts[0]));
                tPrev.add(ts[0]);
            } else if (stepIndex < order) {
                double t = ts[stepIndex];
                Update u = update(model, x, modelPrev, tPrev, t, stepIndex, true, bh2);
                x = u.x;
                modelPrev.add(u.modelT != null ? u.modelT : modelFn(model, x, t));
                tPrev.add(t);
            } else {
                int last = stepIndex == steps - 1 ? stepIndex + 1 : stepIndex;
                for (int step = stepIndex; step <= last; step++) {
                    double t = ts[step];
                    int stepOrder = Math.min(order, steps + 1 - step);
                    Update u = update(model, x, modelPrev, tPrev, t, stepOrder, step != steps, bh2);
                    x = u.x;
                    for (int i = 0; i < order - 1; i++) {
                        tPrev.set(i, tPrev.get(i + 1));
                        modelPrev.set(i, modelPrev.get(i + 1));
                    }
                    tPrev.set(tPrev.size() - 1, t);
                    if (step < steps) {
                        modelPrev.set(modelPrev.size() - 1, u.modelT != null ? u.modelT : modelFn(model, x, t));
                    }
                }
            }
            callback.onStep(stepIndex, x, modelPrev.get(modelPrev.size() - 1));
        }
        double end = alpha(ts[ts.length - 1]);
        float[] xf = x;
        return map(x.length, k -> xf[k] / end);
    }

    private record Update(float[] x, float[] modelT) {
    }

    /** One multistep UniPC B(h) update from the last history point to t: predictor, then optionally the corrector. */
    private static Update update(Denoiser model, float[] x, List<float[]> modelPrev, List<Double> tPrev, double t,
            int order, boolean useCorrector, boolean bh2) {
        int last = modelPrev.size() - 1;
        double tPrev0 = tPrev.get(last);
        float[] modelPrev0 = modelPrev.get(last);
        double lambdaPrev0 = lambda(tPrev0);
        double h = lambda(t) - lambdaPrev0;
        double sigmaPrev0 = std(tPrev0);
        double sigmaT = std(t);
        double alphaT = Math.exp(logAlpha(t));

        double[] rks = new double[order];
        List<float[]> d1s = new ArrayList<>();
        for (int i = 1; i < order; i++) {
            double rk = (lambda(tPrev.get(last - i)) - lambdaPrev0) / h;
            rks[i - 1] = rk;
            float[] prevI = modelPrev.get(last - i);
            d1s.add(map(x.length, k -> (prevI[k] - (double) modelPrev0[k]) / rk));
        }
        rks[order - 1] = 1.0;

        double hh = -h;
        double hPhi1 = Math.expm1(hh);
        double hPhiK = hPhi1 / hh - 1;
        double factorial = 1;
        double bH = bh2 ? Math.expm1(hh) : hh;
        double[][] r = new double[order][order];
        double[] b = new double[order];
        for (int i = 1; i <= order; i++) {
            for (int k = 0; k < order; k++) {
                r[i - 1][k] = Math.pow(rks[k], i - 1);
            }
            b[i - 1] = hPhiK * factorial / bH;
            factorial *= i + 1;
            hPhiK = hPhiK / hh - 1 / factorial;
        }

        double[] rhosP = null;
        if (!d1s.isEmpty()) {
            rhosP = order == 2 ? new double[] {0.5} : SaSolver.solve(topLeft(r, order - 1), prefix(b, order - 1));
        }
        double[] rhosC = null;
        if (useCorrector) {
            rhosC = order == 1 ? new double[] {0.5} : SaSolver.solve(r, b);
        }

        double keep = sigmaT / sigmaPrev0;
        double mix = alphaT * hPhi1;
        float[] xBase = map(x.length, k -> keep * x[k] - mix * modelPrev0[k]);
        double[] rp = rhosP;
        float[] xT = map(x.length, k -> {
            double pred = 0;
            if (rp != null) {
                for (int j = 0; j < rp.length; j++) {
                    pred += rp[j] * d1s.get(j)[k];
                }
            }
            return xBase[k] - alphaT * bH * pred;
        });
        if (!useCorrector) {
            return new Update(xT, null);
        }
        float[] modelT = modelFn(model, xT, t);
        double[] rc = rhosC;
        float[] corrected = map(x.length, k -> {
            double corr = 0;
            for (int j = 0; j < d1s.size(); j++) {
                corr += rc[j] * d1s.get(j)[k];
            }
            double d1t = (double) modelT[k] - modelPrev0[k];
            return xBase[k] - alphaT * bH * (corr + rc[rc.length - 1] * d1t);
        });
        return new Update(corrected, modelT);
    }

    private static double[][] topLeft(double[][] m, int n) {
        double[][] out = new double[n][n];
        for (int i = 0; i < n; i++) {
            System.arraycopy(m[i], 0, out[i], 0, n);
        }
        return out;
    }

    private static double[] prefix(double[] v, int n) {
        double[] out = new double[n];
        System.arraycopy(v, 0, out, 0, n);
        return out;
    }
}
