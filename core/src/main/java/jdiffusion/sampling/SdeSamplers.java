package jdiffusion.sampling;

import static jdiffusion.sampling.SamplerMath.addScaled;
import static jdiffusion.sampling.SamplerMath.ancestralStep;
import static jdiffusion.sampling.SamplerMath.halfLogSnr;
import static jdiffusion.sampling.SamplerMath.map;
import static jdiffusion.sampling.SamplerMath.offsetFirstSigma;
import static jdiffusion.sampling.SamplerMath.sigmaOfHalfLogSnr;
import static jdiffusion.sampling.SamplerMath.steps;

import java.util.List;

/**
 * The DPM-Solver++ SDE samplers, ComfyUI's Brownian-tree family: dpmpp_sde (singlestep, midpoint r = 1/2),
 * dpmpp_2m_sde (multistep, midpoint), dpmpp_2m_sde_heun (multistep, Heun correction) and dpmpp_3m_sde. eta = 1 and
 * s_noise = 1 as in KSampler. Time is the half log-SNR lambda: -log(sigma) for the discrete (eps / v) models,
 * log((1 - sigma) / sigma) for rectified flow (ComfyUI's CONST), whose first sigma 1 is then offset to
 * percent_to_sigma(1e-4) ({@link SamplerMath#offsetFirstSigma}). The Brownian tree is the same for both: ComfyUI
 * builds it on the schedule's sigmas before the offset, with the identity time transform.
 */
final class SdeSamplers {
    private static final double ETA = 1.0;
    private static final double S_NOISE = 1.0;

    private SdeSamplers() {
    }

    static List<SamplerInfo> all() {
        return List.of(
                SamplerInfo.withNoise("dpmpp_sde", SdeSamplers::dpmppSde, BrownianTreeNoise.FACTORY),
                SamplerInfo.withNoise("dpmpp_2m_sde", (m, x, s, n, cb) -> dpmpp2mSde(m, x, s, n, cb, false),
                        BrownianTreeNoise.FACTORY),
                SamplerInfo.withNoise("dpmpp_2m_sde_heun", (m, x, s, n, cb) -> dpmpp2mSde(m, x, s, n, cb, true),
                        BrownianTreeNoise.FACTORY),
                SamplerInfo.withNoise("dpmpp_3m_sde", SdeSamplers::dpmpp3mSde, BrownianTreeNoise.FACTORY));
    }

    /** DPM-Solver++ (stochastic): an ancestral half step to the log-SNR midpoint, then a full step. */
    static float[] dpmppSde(Denoiser model, float[] x0, double[] sigmas0, NoiseSource noise,
            StepCallback callback) {
        final double r = 0.5;
        boolean flow = model.flow();
        double[] sigmas = offsetFirstSigma(sigmas0, model);
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
            double lambdaS1 = lambdaS + r * h;
            double fac = 1 / (2 * r);
            double sigmaS1 = sigmaOfHalfLogSnr(lambdaS1, flow);
            double alphaS = sigmas[i] * Math.exp(lambdaS);
            double alphaS1 = sigmaS1 * Math.exp(lambdaS1);
            double alphaT = sigmas[i + 1] * Math.exp(lambdaT);

            // step 1: ancestral step to the midpoint
            double[] du = ancestralStep(Math.exp(-lambdaS), Math.exp(-lambdaS1), ETA);
            double h1 = -Math.log(du[0]) - lambdaS;
            double keep1 = alphaS1 / alphaS * Math.exp(-h1);
            double mix1 = alphaS1 * Math.expm1(-h1);
            float[] xi = x;
            float[] x2 = map(x.length, k -> keep1 * xi[k] - mix1 * denoised[k]);
            if (ETA > 0 && S_NOISE > 0) {
                x2 = addScaled(x2, noise.next(sigmas[i], sigmaS1), alphaS1 * S_NOISE * du[1]);
            }
            float[] denoised2 = model.denoise(x2, sigmaS1);

            // step 2: full ancestral step with the averaged prediction
            double[] du2 = ancestralStep(Math.exp(-lambdaS), Math.exp(-lambdaT), ETA);
            double h2 = -Math.log(du2[0]) - lambdaS;
            double keep2 = alphaT / alphaS * Math.exp(-h2);
            double mix2 = alphaT * Math.expm1(-h2);
            x = map(x.length, k -> keep2 * xi[k] - mix2 * ((1 - fac) * denoised[k] + fac * denoised2[k]));
            if (ETA > 0 && S_NOISE > 0) {
                x = addScaled(x, noise.next(sigmas[i], sigmas[i + 1]), alphaT * S_NOISE * du2[1]);
            }
        }
        return x;
    }

    /** DPM-Solver++(2M) SDE: exponential integrator with noise, midpoint or Heun second-order correction. */
    static float[] dpmpp2mSde(Denoiser model, float[] x0, double[] sigmas0, NoiseSource noise,
            StepCallback callback, boolean heun) {
        boolean flow = model.flow();
        double[] sigmas = offsetFirstSigma(sigmas0, model);
        float[] x = x0.clone();
        float[] oldDenoised = null;
        double h = Double.NaN;
        double hLast = Double.NaN;
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            callback.onStep(i, x, denoised);
            if (sigmas[i + 1] == 0) {
                x = denoised;
            } else {
                MultistepCoefficients c = MultistepCoefficients.of(sigmas[i], sigmas[i + 1], flow);
                h = c.h();
                double corr;
                if (oldDenoised == null) {
                    corr = 0;
                } else {
                    double r = hLast / h;
                    corr = heun ? c.alphaT() * (-Math.expm1(-c.hEta()) / -c.hEta() + 1) * (1 / r)
                            : 0.5 * c.alphaT() * -Math.expm1(-c.hEta()) * (1 / r);
                }
                float[] xi = x;
                float[] old = oldDenoised;
                x = map(x.length, k -> {
                    double v = c.keep() * xi[k] + c.mix() * denoised[k];
                    return old == null ? v : v + corr * ((double) denoised[k] - old[k]);
                });
                x = addNoise(x, noise, sigmas[i], sigmas[i + 1], h);
            }
            oldDenoised = denoised;
            hLast = h;
        }
        return x;
    }

    /** DPM-Solver++(3M) SDE: third-order multistep once two previous predictions exist. */
    static float[] dpmpp3mSde(Denoiser model, float[] x0, double[] sigmas0, NoiseSource noise,
            StepCallback callback) {
        boolean flow = model.flow();
        double[] sigmas = offsetFirstSigma(sigmas0, model);
        float[] x = x0.clone();
        float[] denoised1 = null;
        float[] denoised2 = null;
        double h = Double.NaN;
        double h1 = Double.NaN;
        double h2 = Double.NaN;
        for (int i = 0; i < steps(sigmas); i++) {
            float[] denoised = model.denoise(x, sigmas[i]);
            callback.onStep(i, x, denoised);
            if (sigmas[i + 1] == 0) {
                x = denoised;
            } else {
                MultistepCoefficients c = MultistepCoefficients.of(sigmas[i], sigmas[i + 1], flow);
                h = c.h();
                double phi2 = Math.expm1(-c.hEta()) / c.hEta() + 1;
                double phi3 = phi2 / c.hEta() - 0.5;
                float[] xi = x;
                float[] d1p = denoised1;
                float[] d2p = denoised2;
                if (!Double.isNaN(h2)) {
                    double r0 = h1 / h;
                    double r1 = h2 / h;
                    x = map(x.length, k -> {
                        double d10 = (denoised[k] - (double) d1p[k]) / r0;
                        double d11 = (d1p[k] - (double) d2p[k]) / r1;
                        double d1 = d10 + (d10 - d11) * r0 / (r0 + r1);
                        double d2 = (d10 - d11) / (r0 + r1);
                        return c.keep() * xi[k] + c.mix() * denoised[k] + c.alphaT() * phi2 * d1
                                - c.alphaT() * phi3 * d2;
                    });
                } else if (!Double.isNaN(h1)) {
                    double r = h1 / h;
                    x = map(x.length, k -> c.keep() * xi[k] + c.mix() * denoised[k]
                            + c.alphaT() * phi2 * ((denoised[k] - (double) d1p[k]) / r));
                } else {
                    x = map(x.length, k -> c.keep() * xi[k] + c.mix() * denoised[k]);
                }
                x = addNoise(x, noise, sigmas[i], sigmas[i + 1], h);
            }
            denoised2 = denoised1;
            denoised1 = denoised;
            h2 = h1;
            h1 = h;
        }
        return x;
    }

    /**
     * What a multistep SDE step from sigma to sigmaNext starts from: h in lambda, h (eta + 1), alpha_t, the decay of
     * x (sigma_next / sigma e^(-h eta)) and the weight of the newest prediction (alpha_t (1 - e^(-h (eta + 1)))),
     * lambda the half log-SNR of the discrete or the flow model.
     */
    private record MultistepCoefficients(double h, double hEta, double alphaT, double keep, double mix) {
        static MultistepCoefficients of(double sigma, double sigmaNext, boolean flow) {
            double lambdaT = halfLogSnr(sigmaNext, flow);
            double h = lambdaT - halfLogSnr(sigma, flow);
            double hEta = h * (ETA + 1);
            double alphaT = sigmaNext * Math.exp(lambdaT);
            double keep = sigmaNext / sigma * Math.exp(-h * ETA);
            return new MultistepCoefficients(h, hEta, alphaT, keep, alphaT * -Math.expm1(-hEta));
        }
    }

    /** The SDE noise of the multistep samplers: sigma_next * sqrt(1 - exp(-2 h eta)) * s_noise * z. */
    private static float[] addNoise(float[] x, NoiseSource noise, double sigma, double sigmaNext, double h) {
        if (!(ETA > 0 && S_NOISE > 0)) {
            return x;
        }
        float[] eps = noise.next(sigma, sigmaNext);
        return addScaled(x, eps, sigmaNext * Math.sqrt(-Math.expm1(-2 * h * ETA)) * S_NOISE);
    }
}
