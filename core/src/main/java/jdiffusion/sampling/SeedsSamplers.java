package jdiffusion.sampling;

import static jdiffusion.sampling.SamplerMath.halfLogSnr;
import static jdiffusion.sampling.SamplerMath.map;
import static jdiffusion.sampling.SamplerMath.offsetFirstSigma;
import static jdiffusion.sampling.SamplerMath.sigmaOfHalfLogSnr;
import static jdiffusion.sampling.SamplerMath.steps;

import java.util.List;

/**
 * Stochastic exponential integrators in data prediction and half-log-SNR time that draw from the default (seed + 1)
 * generator: SEEDS-2 (seeds_2, r = 1/2, phi_1 update), its r = 1 / phi_2 form exp_heun_2_x0_sde, SEEDS-3 (seeds_3)
 * and the ER-SDE-Solver-3 (er_sde). eta = 1 and s_noise = 1 as in KSampler. On a rectified-flow model lambda is
 * log((1 - sigma) / sigma), alpha = 1 - sigma, and a first sigma of 1 is offset ({@link SamplerMath#offsetFirstSigma}).
 */
final class SeedsSamplers {
    private static final double ETA = 1.0;
    private static final double S_NOISE = 1.0;

    private SeedsSamplers() {
    }

    static List<SamplerInfo> all() {
        return List.of(
                SamplerInfo.withNoise("exp_heun_2_x0_sde", (m, x, s, n, cb) -> seeds2(m, x, s, n, cb, 1.0, true),
                        NoiseSources.DEFAULT),
                SamplerInfo.withNoise("er_sde", SeedsSamplers::erSde, NoiseSources.DEFAULT),
                SamplerInfo.withNoise("seeds_2", (m, x, s, n, cb) -> seeds2(m, x, s, n, cb, 0.5, false),
                        NoiseSources.DEFAULT),
                SamplerInfo.withNoise("seeds_3", SeedsSamplers::seeds3, NoiseSources.DEFAULT));
    }

    /** h * phi_2(h) of exponential integrators: (e^h - 1 - h) / h. */
    private static double hPhi2(double h) {
        return (Math.expm1(h) - h) / h;
    }

    /**
     * SEEDS-2: a noisy exponential step to lambda_s + r h, then the full step with the two predictions (phi_1:
     * their lerp by 1 / (2 r); phi_2: the second-order weights). The stage noise is carried into the final noise.
     */
    static float[] seeds2(Denoiser model, float[] x0, double[] sigmas0, NoiseSource noise, StepCallback callback,
            double r, boolean phi2Solver) {
        boolean flow = model.flow();
        double[] sigmas = offsetFirstSigma(sigmas0, model);
        boolean injectNoise = ETA > 0 && S_NOISE > 0;
        double fac = 1 / (2 * r);
        float[] x = x0.clone();
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            callback.onStep(i, x, denoised);
            if (sigmas[i + 1] == 0) {
                x = denoised;
                continue;
            }
            double lambdaS = halfLogSnr(sigmas[i], flow);
            double lambdaT = halfLogSnr(sigmas[i + 1], flow);
            double h = lambdaT - lambdaS;
            double hEta = h * (ETA + 1);
            double lambdaS1 = lambdaS + r * (lambdaT - lambdaS);
            double sigmaS1 = sigmaOfHalfLogSnr(lambdaS1, flow);
            double alphaS1 = sigmaS1 * Math.exp(lambdaS1);
            double alphaT = sigmas[i + 1] * Math.exp(lambdaT);

            float[] xi = x;
            Stage s1 = firstStage(x, denoised, noise, sigmas[i], sigmaS1, alphaS1, r, h, injectNoise);
            float[] sdeNoise = s1.sdeNoise();
            float[] denoised2 = model.denoise(s1.x(), sigmaS1);

            double keep = sigmas[i + 1] / sigmas[i] * Math.exp(-h * ETA);
            if (phi2Solver) {
                double b2 = hPhi2(-hEta) / r;
                double b1 = Math.expm1(-hEta) - b2;
                x = map(x.length, k -> keep * xi[k] - alphaT * (b1 * denoised[k] + b2 * denoised2[k]));
            } else {
                double e = Math.expm1(-hEta);
                x = map(x.length, k -> keep * xi[k]
                        - alphaT * e * (denoised[k] + fac * ((double) denoised2[k] - denoised[k])));
            }
            if (injectNoise) {
                x = addSegmentNoise(x, sdeNoise, noise, sigmaS1, sigmas[i + 1], (r - 1) * h * ETA);
            }
        }
        return x;
    }

    /** SEEDS-3: stages at r1 = 1/3 and r2 = 2/3 of the log-SNR step, the noise carried across the segments. */
    static float[] seeds3(Denoiser model, float[] x0, double[] sigmas0, NoiseSource noise, StepCallback callback) {
        boolean flow = model.flow();
        double[] sigmas = offsetFirstSigma(sigmas0, model);
        final double r1 = 1.0 / 3;
        final double r2 = 2.0 / 3;
        boolean injectNoise = ETA > 0 && S_NOISE > 0;
        float[] x = x0.clone();
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            callback.onStep(i, x, denoised);
            if (sigmas[i + 1] == 0) {
                x = denoised;
                continue;
            }
            double lambdaS = halfLogSnr(sigmas[i], flow);
            double lambdaT = halfLogSnr(sigmas[i + 1], flow);
            double h = lambdaT - lambdaS;
            double hEta = h * (ETA + 1);
            double lambdaS1 = lambdaS + r1 * (lambdaT - lambdaS);
            double lambdaS2 = lambdaS + r2 * (lambdaT - lambdaS);
            double sigmaS1 = sigmaOfHalfLogSnr(lambdaS1, flow);
            double sigmaS2 = sigmaOfHalfLogSnr(lambdaS2, flow);
            double alphaS1 = sigmaS1 * Math.exp(lambdaS1);
            double alphaS2 = sigmaS2 * Math.exp(lambdaS2);
            double alphaT = sigmas[i + 1] * Math.exp(lambdaT);
            float[] xi = x;

            Stage s1 = firstStage(x, denoised, noise, sigmas[i], sigmaS1, alphaS1, r1, h, injectNoise);
            float[] sdeNoise = s1.sdeNoise();
            float[] denoised2 = model.denoise(s1.x(), sigmaS1);

            double a32 = r2 / r1 * hPhi2(-r2 * hEta);
            double a31 = Math.expm1(-r2 * hEta) - a32;
            double keep2 = sigmaS2 / sigmas[i] * Math.exp(-r2 * h * ETA);
            float[] x3 = map(x.length, k -> keep2 * xi[k] - alphaS2 * (a31 * denoised[k] + a32 * denoised2[k]));
            if (injectNoise) {
                sdeNoise = segmentNoise(sdeNoise, noise, sigmaS1, sigmaS2, (r1 - r2) * h * ETA);
                float[] sn = sdeNoise;
                float[] x3n = x3;
                x3 = map(x.length, k -> x3n[k] + sn[k] * sigmaS2 * S_NOISE);
            }
            float[] denoised3 = model.denoise(x3, sigmaS2);

            double b3 = hPhi2(-hEta) / r2;
            double b1 = Math.expm1(-hEta) - b3;
            double keep = sigmas[i + 1] / sigmas[i] * Math.exp(-h * ETA);
            x = map(x.length, k -> keep * xi[k] - alphaT * (b1 * denoised[k] + b3 * denoised3[k]));
            if (injectNoise) {
                x = addSegmentNoise(x, sdeNoise, noise, sigmaS2, sigmas[i + 1], (r2 - 1) * h * ETA);
            }
        }
        return x;
    }

    /** The first stage's latent and the SDE noise it drew (null without noise), carried into later segments. */
    private record Stage(float[] x, float[] sdeNoise) {
    }

    /**
     * The noisy exponential step from sigma to the stage at lambda_s + r h (sigmaS1, alphaS1), with the
     * step's prediction; its noise sqrt(1 - exp(-2 r h eta)) z is kept for the later segments.
     */
    private static Stage firstStage(float[] x, float[] denoised, NoiseSource noise, double sigma, double sigmaS1,
            double alphaS1, double r, double h, boolean injectNoise) {
        double hEta = h * (ETA + 1);
        double keep1 = sigmaS1 / sigma * Math.exp(-r * h * ETA);
        double mix1 = alphaS1 * Math.expm1(-r * hEta);
        float[] x2 = map(x.length, k -> keep1 * x[k] - mix1 * denoised[k]);
        if (!injectNoise) {
            return new Stage(x2, null);
        }
        float[] z = noise.next(sigma, sigmaS1);
        double amp = Math.sqrt(-Math.expm1(-2 * r * h * ETA));
        float[] sdeNoise = map(x.length, k -> amp * z[k]);
        return new Stage(map(x.length, k -> x2[k] + sdeNoise[k] * sigmaS1 * S_NOISE), sdeNoise);
    }

    /**
     * A later segment's noise: the carried stage noise decays by exp(seg) and a fresh draw fills the variance
     * (drawn even when that fill is zero, as for r = 1, because the draw advances the generator).
     */
    private static float[] segmentNoise(float[] carried, NoiseSource noise, double from, double to, double seg) {
        float[] z = noise.next(from, to);
        double amp = Math.sqrt(-Math.expm1(2 * seg));
        double decay = Math.exp(seg);
        return map(carried.length, k -> carried[k] * decay + amp * z[k]);
    }

    /** The last segment's noise, added to x at sigma_next. */
    private static float[] addSegmentNoise(float[] x, float[] carried, NoiseSource noise, double from, double to,
            double seg) {
        float[] sde = segmentNoise(carried, noise, from, to, seg);
        return map(x.length, k -> x[k] + sde[k] * to * S_NOISE);
    }

    private static final int ER_POINTS = 200;

    /** ER-SDE-Solver's default noise scaler: x * (exp(x^0.3) + 10). */
    private static double erScaler(double v) {
        return v * (Math.exp(Math.pow(v, 0.3)) + 10.0);
    }

    /**
     * ER-SDE-Solver-3 (VP): an Euler stage in er_lambda = sigma / alpha, plus second and third stages from divided
     * differences of the predictions whose weights are 200-point Riemann sums of the noise scaler.
     */
    static float[] erSde(Denoiser model, float[] x0, double[] sigmas0, NoiseSource noise, StepCallback callback) {
        final int maxStage = 3;
        double[] sigmas = offsetFirstSigma(sigmas0, model);
        double[] erLambdas = new double[sigmas.length];
        for (int i = 0; i < sigmas.length; i++) {
            // sigma / alpha: sigma for discrete models (alpha = 1), sigma / (1 - sigma) for flow
            erLambdas[i] = Math.exp(-halfLogSnr(sigmas[i], model.flow()));
        }
        float[] x = x0.clone();
        float[] oldDenoised = null;
        float[] oldDenoisedD = null;
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            callback.onStep(i, x, denoised);
            int stage = Math.min(maxStage, i + 1);
            if (sigmas[i + 1] == 0) {
                x = denoised;
            } else {
                double ls = erLambdas[i];
                double lt = erLambdas[i + 1];
                double alphaS = sigmas[i] / ls;
                double alphaT = sigmas[i + 1] / lt;
                double rAlpha = alphaT / alphaS;
                double r = erScaler(lt) / erScaler(ls);
                float[] xi = x;
                x = map(x.length, k -> rAlpha * r * xi[k] + alphaT * (1 - r) * denoised[k]);
                if (stage >= 2) {
                    double dt = lt - ls;
                    double step = -dt / ER_POINTS;
                    double s = 0;
                    double su = 0;
                    for (int p = 0; p < ER_POINTS; p++) {
                        double pos = lt + p * step;
                        double scaled = erScaler(pos);
                        s += 1 / scaled;
                        su += (pos - ls) / scaled;
                    }
                    s *= step;
                    su *= step;
                    double scaleT = erScaler(lt);
                    double prevGap = ls - erLambdas[i - 1];
                    float[] old = oldDenoised;
                    float[] dd = map(x.length, k -> (denoised[k] - (double) old[k]) / prevGap);
                    double c2 = alphaT * (dt + s * scaleT);
                    float[] xs = x;
                    x = map(x.length, k -> xs[k] + c2 * dd[k]);
                    if (stage >= 3) {
                        double gap2 = (ls - erLambdas[i - 2]) / 2;
                        float[] oldD = oldDenoisedD;
                        double c3 = alphaT * (dt * dt / 2 + su * scaleT);
                        float[] x3 = x;
                        x = map(x.length, k -> x3[k] + c3 * ((dd[k] - (double) oldD[k]) / gap2));
                    }
                    oldDenoisedD = dd;
                }
                if (S_NOISE > 0) {
                    float[] z = noise.next(sigmas[i], sigmas[i + 1]);
                    double amp = Math.sqrt(lt * lt - ls * ls * r * r);
                    double a = Double.isNaN(amp) ? 0.0 : alphaT * S_NOISE * amp;
                    float[] xs = x;
                    x = map(x.length, k -> xs[k] + a * z[k]);
                }
            }
            oldDenoised = denoised;
        }
        return x;
    }
}
