package jdiffusion.sampling;

import java.util.Arrays;

/**
 * ComfyUI's KSampler node semantics (nodes.common_ksampler -> comfy.sample.sample -> KSampler -> CFGGuider ->
 * KSAMPLER): the schedule with denoise and the penultimate-sigma rule, latent scaling in and out, initial noise
 * scaling, the CFG guider and the sampler's own noise source.
 */
public final class KSampler {
    private KSampler() {
    }

    /**
     * What the KSampler node takes.
     *
     * @param latent      the input latent in VAE-raw space ([B*C*H*W]); all zeros for txt2img (EmptyLatentImage)
     * @param latentScale the latent format's scale factor (SD1/SD2 0.18215, SDXL 0.13025)
     */
    public record Request(ConditionalModel model, ModelSamplingDiscrete modelSampling, float[] latent,
            double latentScale, long seed, int steps, double cfg, String sampler, String scheduler, double denoise) {
    }

    /**
     * The KSampler node: initial noise torch.randn(latent shape, generator = manual_seed(seed)) over the whole
     * batch, the schedule of (scheduler, steps, denoise), then {@link #sample(ConditionalModel,
     * ModelSamplingDiscrete, SamplerInfo, double, float[], double, float[], double[], NoiseSource, StepCallback)}.
     * Returns the KSampler output (VAE-raw space: samples / scale factor).
     */
    public static float[] sample(Request r, StepCallback callback) {
        SamplerInfo sampler = Samplers.get(r.sampler());
        double[] sigmas = sigmas(r.modelSampling(), r.scheduler(), sampler, r.steps(), r.denoise());
        float[] noise = initialNoise(r.seed(), r.latent().length);
        NoiseSource noiseSource = sampler.noise().create(r.seed(), r.latent().length, sigmas);
        return sample(r.model(), r.modelSampling(), sampler, r.cfg(), r.latent(), r.latentScale(), noise, sigmas,
                noiseSource, callback);
    }

    /** torch.randn(n, generator=torch.manual_seed(seed)) on the CPU. */
    public static float[] initialNoise(long seed, int n) {
        return NoiseSources.randn(seed, n);
    }

    /**
     * KSampler.set_steps: the scheduler's sigmas for steps (denoise > 0.9999), else for int(steps / denoise) steps
     * keeping the last steps + 1. Samplers that drop the penultimate sigma get steps + 1 sigmas without it.
     */
    public static double[] sigmas(ModelSamplingDiscrete ms, String scheduler, SamplerInfo sampler, int steps,
            double denoise) {
        return sigmas(ms, scheduler, sampler.dropsPenultimateSigma(), steps, denoise);
    }

    /** {@link #sigmas(ModelSamplingDiscrete, String, SamplerInfo, int, double)} by sampler name. */
    public static double[] sigmas(ModelSamplingDiscrete ms, String scheduler, String samplerName, int steps,
            double denoise) {
        return sigmas(ms, scheduler, Samplers.DISCARD_PENULTIMATE_SIGMA.contains(samplerName), steps, denoise);
    }

    private static double[] sigmas(ModelSamplingDiscrete ms, String scheduler, boolean dropPenultimate, int steps,
            double denoise) {
        if (steps < 1) {
            throw new IllegalArgumentException("steps must be at least 1, got " + steps);
        }
        if (!(denoise > 0 && denoise <= 1)) {
            throw new IllegalArgumentException("denoise must be in (0, 1], got " + denoise);
        }
        Schedulers.Scheduler s = Schedulers.get(scheduler);
        if (denoise > 0.9999) {
            return scheduleFor(ms, s, dropPenultimate, steps);
        }
        int newSteps = (int) (steps / denoise);
        double[] all = scheduleFor(ms, s, dropPenultimate, newSteps);
        return Arrays.copyOfRange(all, Math.max(0, all.length - (steps + 1)), all.length);
    }

    private static double[] scheduleFor(ModelSamplingDiscrete ms, Schedulers.Scheduler s, boolean dropPenultimate,
            int steps) {
        if (!dropPenultimate) {
            return s.sigmas(ms, steps);
        }
        double[] sig = s.sigmas(ms, steps + 1);
        double[] out = Arrays.copyOf(sig, sig.length - 1);
        out[out.length - 1] = sig[sig.length - 1];
        return out;
    }

    /** Whether sigmas[0] counts as full noise (ComfyUI's max_denoise: within rel 1e-5 of sigma_max, or above). */
    public static boolean isMaxDenoise(ModelSamplingDiscrete ms, double sigma0) {
        double max = ms.sigmaMax();
        boolean close = Math.abs(max - sigma0) <= 1e-5 * Math.max(Math.abs(max), Math.abs(sigma0));
        return close || sigma0 > max;
    }

    /** process_latent_in: latent * scale, except that an all-zero (empty) latent is left as is. */
    public static float[] processLatentIn(float[] latent, double scale) {
        boolean empty = true;
        for (float v : latent) {
            if (v != 0) {
                empty = false;
                break;
            }
        }
        if (empty) {
            return latent.clone();
        }
        float s = (float) scale;
        float[] out = new float[latent.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = latent[i] * s;
        }
        return out;
    }

    /** process_latent_in with a shift: (latent - shift) * scale, an all-zero (empty) latent left as is. */
    public static float[] processLatentIn(float[] latent, double scale, double shift) {
        if (shift == 0.0) {
            return processLatentIn(latent, scale);
        }
        boolean empty = true;
        for (float v : latent) {
            if (v != 0) {
                empty = false;
                break;
            }
        }
        if (empty) {
            return latent.clone();
        }
        float s = (float) scale;
        float sh = (float) shift;
        float[] out = new float[latent.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = (latent[i] - sh) * s;
        }
        return out;
    }

    /** process_latent_out with a shift: samples / scale + shift. */
    public static float[] processLatentOut(float[] samples, double scale, double shift) {
        float s = (float) scale;
        float sh = (float) shift;
        float[] out = new float[samples.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = samples[i] / s + sh;
        }
        return out;
    }

    /** process_latent_out: samples / scale. */
    public static float[] processLatentOut(float[] samples, double scale) {
        float s = (float) scale;
        float[] out = new float[samples.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = samples[i] / s;
        }
        return out;
    }

    /** EPS noise_scaling: noise * sqrt(1 + sigma0^2) + latent at max denoise, else noise * sigma0 + latent. */
    public static float[] noiseScaling(double sigma0, float[] noise, float[] latentIn, boolean maxDenoise) {
        float s = (float) sigma0;
        float scale = maxDenoise ? (float) Math.sqrt(1.0f + s * s) : s;
        float[] out = new float[noise.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = noise[i] * scale + latentIn[i];
        }
        return out;
    }

    /**
     * The sampling part of the KSampler with everything explicit (the library's explicit-sigmas path): latent in
     * VAE-raw space, initial noise, the sigma schedule and the sampler's noise source. Returns samples / scale.
     */
    public static float[] sample(ConditionalModel model, ModelSamplingDiscrete ms, SamplerInfo sampler, double cfg,
            float[] latent, double latentScale, float[] noise, double[] sigmas, NoiseSource noiseSource,
            StepCallback callback) {
        return sample(model, ms, sampler, cfg, latent, latentScale, 0.0, noise, sigmas, noiseSource, callback, null);
    }

    /**
     * The same for a latent format with a shift (SD3: model latent = (latent - shift) * scale); on a flow schedule
     * ({@link ModelSamplingDiscrete#isFlow()}) the noise is mixed in as sigma0 * noise + (1 - sigma0) * latent and
     * the result divided by (1 - last sigma).
     */
    public static float[] sample(ConditionalModel model, ModelSamplingDiscrete ms, SamplerInfo sampler, double cfg,
            float[] latent, double latentScale, double latentShift, float[] noise, double[] sigmas,
            NoiseSource noiseSource, StepCallback callback) {
        return sample(model, ms, sampler, cfg, latent, latentScale, latentShift, noise, sigmas, noiseSource, callback,
                null);
    }

    /**
     * {@link #sample(ConditionalModel, ModelSamplingDiscrete, SamplerInfo, double, float[], double, float[], double[],
     * NoiseSource, StepCallback)} with a prepared denoise mask ([B,C,h,w], 1 = repaint; null = none): the guided
     * denoiser is wrapped in KSamplerX0Inpaint's blend ({@link NoiseMask}).
     */
    public static float[] sample(ConditionalModel model, ModelSamplingDiscrete ms, SamplerInfo sampler, double cfg,
            float[] latent, double latentScale, float[] noise, double[] sigmas, NoiseSource noiseSource,
            StepCallback callback, float[] denoiseMask) {
        return sample(model, ms, sampler, cfg, latent, latentScale, 0.0, noise, sigmas, noiseSource, callback,
                denoiseMask);
    }

    /** The general form: a latent shift (SD3) and a denoise mask (inpainting), either may be absent (0, null). */
    public static float[] sample(ConditionalModel model, ModelSamplingDiscrete ms, SamplerInfo sampler, double cfg,
            float[] latent, double latentScale, double latentShift, float[] noise, double[] sigmas,
            NoiseSource noiseSource, StepCallback callback, float[] denoiseMask) {
        if (noise.length != latent.length) {
            throw new IllegalArgumentException("noise has " + noise.length + " values, latent " + latent.length);
        }
        if (sigmas.length == 0) {
            return latent.clone();
        }
        float[] latentIn = processLatentIn(latent, latentScale, latentShift);
        PredictionType type = ms.isFlow() ? PredictionType.FLOW : PredictionType.EPS;
        float[] x = type.noiseScaling(sigmas[0], noise, latentIn, isMaxDenoise(ms, sigmas[0]));
        Denoiser guided = Cfg.guider(model, cfg, sampler.needsUncond());
        if (denoiseMask != null) {
            guided = NoiseMask.wrap(guided, denoiseMask, latentIn, noise);
        }
        if (type == PredictionType.FLOW) {
            guided = guided.asFlow(ms);
        }
        float[] samples = sampler.sampler().sample(guided, x, sigmas.clone(), noiseSource, callback);
        samples = type.inverseNoiseScaling(sigmas[sigmas.length - 1], samples);
        return processLatentOut(samples, latentScale, latentShift);
    }
}
