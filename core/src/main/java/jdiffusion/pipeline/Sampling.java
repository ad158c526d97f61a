package jdiffusion.pipeline;

import jdiffusion.io.PngImage;
import jdiffusion.pipeline.ResolvedSettings.Semantics;
import jdiffusion.sampling.Cfg;
import jdiffusion.sampling.ConditionalModel;
import jdiffusion.sampling.Denoiser;
import jdiffusion.sampling.DiffusersSchedule;
import jdiffusion.sampling.DiscreteModel;
import jdiffusion.sampling.FlowMatchEulerScheduler;
import jdiffusion.sampling.KSampler;
import jdiffusion.sampling.ModelSamplingDiscrete;
import jdiffusion.sampling.NoiseSource;
import jdiffusion.sampling.PredictionType;
import jdiffusion.sampling.SamplerInfo;
import jdiffusion.sampling.Samplers;
import jdiffusion.sampling.StepCallback;
import jdiffusion.sampling.TorchGenerator;

/**
 * The sampling stage of a generation under one of two references.
 *
 * <p><b>ComfyUI</b> (a ComfyUI scheduler name): KSampler semantics. Noise = torch.randn(seed) over the whole batch
 * latent; x = noise * sqrt(1 + sigma0^2) at full denoise (else noise * sigma0) plus the img2img latent (posterior
 * mean times the scale factor); the UNet sees x / sqrt(sigma^2 + 1) and the nearest integer training timestep;
 * CFG in x0 space with [uncond, cond] in one batch, skipped at cfg 1; the negative prompt is always encoded ("" when
 * none); ancestral noise from a generator seeded seed + 1.
 *
 * <p><b>diffusers</b> ({@code leading}, {@code linspace}, {@code trailing}): the plan of diffusers' EulerDiscrete
 * scheduler (timesteps, sigmas, init_noise_sigma; DDIMScheduler for {@code ddim}, DPMSolverMultistep for
 * {@code dpmpp_2m}, both run in sigma space and returned in their variance-preserving space); the UNet sees the schedule's (fractional) timestep; cfg <= 1 disables CFG;
 * SDXL without a negative prompt guides against zeros; img2img keeps the last int(steps * strength) steps, samples
 * the VAE posterior (mean + std * randn) and adds noise at the first kept sigma; every random draw comes from the one
 * generator seeded with the seed, in diffusers' order.
 */
final class Sampling {
    private static final int DIFFUSERS_TOKENS = 77;

    private Sampling() {
    }

    /**
     * @param latent       the final latent in UNet space, [B,4,h,w]
     * @param latentForVae the same divided by the VAE scaling factor (the decoder's input)
     */
    record Outcome(float[] latent, float[] latentForVae, int[] shape, int unetCalls) {
    }

    static Outcome run(PipelineModels m, ResolvedSettings s, PngImage init, ProgressListener progress,
            CancellationToken cancel, Timings timings) {
        return run(m, s, init, null, null, progress, cancel, timings);
    }

    /**
     * @param inpaint an inpaint / outpaint input (null: none), which replaces init as the image
     * @param start   a start latent in VAE space [B,4,h,w] given directly (hires fix's second pass: ComfyUI semantics
     *                only), in place of an encoded init image; null for txt2img / img2img
     */
    static Outcome run(PipelineModels m, ResolvedSettings s, PngImage init, InpaintImage inpaint, float[] start,
            ProgressListener progress, CancellationToken cancel, Timings timings) {
        SamplerInfo sampler = SamplerBinding.sampler(s.sampler());
        boolean comfy = s.semantics() == Semantics.COMFY;
        boolean guided = comfy ? s.cfg() != 1.0 || sampler.needsUncond() : s.cfg() > 1.0;
        progress.onStage("text");
        TextCond[] conds = timings.time("text", () -> encodePrompts(m, s, guided, comfy));
        m.textEncodingDone(); // a one-shot run frees the text encoders before the UNet's activations need the room
        cancel.check("text encoding");
        PipelineModels.Moments moments = null;
        if (init != null && inpaint == null) {
            progress.onStage("encode");
            moments = timings.time("encode", () -> encodeImage(m, init));
            cancel.check("image encoding");
        }
        UnetNetwork network = new UnetNetwork(m, conds[0], conds[1], s.batch(), s.height(), s.width());
        int[] shape = {s.batch(), m.latentChannels(), s.latentHeight(), s.latentWidth()};
        PipelineModels.Moments mom = moments;
        float[] latent;
        if (inpaint != null) {
            progress.onStage("encode");
            InpaintSampling.Start inpaintStart = timings.time("encode", () -> comfy
                    ? InpaintSampling.comfyStart(m, s, inpaint)
                    : InpaintSampling.diffusersStart(m, s, inpaint, sampler));
            cancel.check("image encoding");
            progress.onStage("sampling");
            latent = timings.time("sampling", () -> comfy
                    ? InpaintSampling.comfy(m, s, sampler, network, inpaintStart, shape, progress, cancel)
                    : InpaintSampling.diffusers(m, s, sampler, network, inpaintStart, shape, progress, cancel));
        } else {
            DiscreteModel.Network net = m.unetInChannels() > 4
                    ? new jdiffusion.sampling.ConcatNetwork(network, Inpainting.blankConcat(s.batch(),
                            s.latentHeight(), s.latentWidth()), s.batch(), 4 * s.latentHeight() * s.latentWidth())
                    : network;
            progress.onStage("sampling");
            latent = timings.time("sampling", () -> comfy
                    ? comfy(m, s, sampler, net, mom, start, shape, progress, cancel)
                    : diffusers(m, s, sampler, net, mom, shape, progress, cancel));
        }
        float[] forVae = KSampler.processLatentOut(latent, m.latentScale(), m.latentShift());
        return new Outcome(latent, forVae, shape, network.calls());
    }

    /** The UNet under a network (an inpainting UNet's concat wrapper included): what ControlNets attach to. */
    private static UnetNetwork unet(DiscreteModel.Network network) {
        if (network instanceof UnetNetwork u) {
            return u;
        }
        if (network instanceof jdiffusion.sampling.ConcatNetwork c && c.inner() instanceof UnetNetwork u) {
            return u;
        }
        throw new GenerateException("ControlNets cannot steer this model");
    }

    /** {cond, uncond}; uncond is null when no uncond pass will run. */
    private static TextCond[] encodePrompts(PipelineModels m, ResolvedSettings s, boolean guided, boolean comfy) {
        TextCond cond = encode(m, s.prompt(), s.clipSkip(), comfy);
        if (!guided) {
            return new TextCond[] {cond, null};
        }
        String negative = s.negativePrompt();
        TextCond uncond;
        if (negative == null && !comfy && m.isSdxl()) {
            uncond = cond.zeros(); // diffusers' force_zeros_for_empty_prompt
        } else {
            uncond = encode(m, negative == null ? "" : negative, s.clipSkip(), comfy);
        }
        return new TextCond[] {cond, uncond};
    }

    /** ComfyUI encodes a long prompt in 77-token chunks; diffusers truncates it to the first 77 tokens. */
    private static TextCond encode(PipelineModels m, String prompt, int clipSkip, boolean comfy) {
        TextCond c = m.encodeText(prompt, clipSkip, comfy);
        if (comfy || c.tokens() <= DIFFUSERS_TOKENS || m.flowShift() > 0) {
            return c;
        }
        return new TextCond(java.util.Arrays.copyOf(c.context(), DIFFUSERS_TOKENS * c.dim()), DIFFUSERS_TOKENS,
                c.dim(), c.pooled());
    }

    private static PipelineModels.Moments encodeImage(PipelineModels m, PngImage init) {
        return m.encode(init.toSignedFloats(), 1, init.height(), init.width());
    }

    private static float[] comfy(PipelineModels m, ResolvedSettings s, SamplerInfo sampler,
            DiscreteModel.Network network, PipelineModels.Moments moments, float[] start, int[] shape,
            ProgressListener progress, CancellationToken cancel) {
        boolean flow = s.prediction() == PredictionType.FLOW;
        ModelSamplingDiscrete ms = flow ? ModelSamplingDiscrete.flow(flowShift(m)) : ModelSamplingDiscrete.DEFAULT;
        GenerateRequest.ExplicitSchedule explicit = s.schedule();
        double[] sigmas = explicit != null ? explicit.sigmas().clone()
                : KSampler.sigmas(ms, s.scheduler(), sampler, s.steps(), s.denoise());
        int n = numel(shape);
        float[] noise = new TorchGenerator(s.seed()).randn(n);
        // VAEEncode's posterior mean (ComfyUI no longer samples it), repeated over the batch; zeros for txt2img
        float[] latent = start != null ? start
                : moments == null ? new float[n] : UnetNetwork.repeatRows(moments.mean(), s.batch());
        float[] latentIn = KSampler.processLatentIn(latent, m.latentScale(), m.latentShift());
        float[] x;
        if (flow) {
            x = PredictionType.FLOW.noiseScaling(sigmas[0], noise, latentIn, true);
        } else if (explicit != null && explicit.variancePreserving()) {
            x = KSampler.noiseScaling(sigmas[0], noise, latentIn, true);
        } else {
            x = KSampler.noiseScaling(sigmas[0], noise, latentIn, KSampler.isMaxDenoise(ms, sigmas[0]));
        }
        if (!s.controls().isEmpty()) {
            ControlStack control = ControlSpecs.load(s.controls(), m.family(), s,
                    c -> ControlStack.Window.comfy(ms, c.start(), c.end()));
            unet(network).withControl(control, control); // one ControlNet object on positive and negative
        }
        ConditionalModel model = explicit != null && explicit.timesteps() != null
                ? new ScheduledModel(network, s.prediction(), sigmas, explicit.timesteps(),
                        DiffusersSchedule.trainingSigmas())
                : new DiscreteModel(network, ms, s.prediction());
        Denoiser guided = Cfg.guider(model, s.cfg(), sampler.needsUncond());
        if (flow) {
            guided = guided.asFlow(ms);
        }
        NoiseSource noiseSource = sampler.noise().create(s.seed(), n, sigmas);
        float[] out = sampler.sampler().sample(guided, x, sigmas, noiseSource, callback(stepsOf(sigmas), progress,
                cancel));
        if (flow) {
            return PredictionType.FLOW.inverseNoiseScaling(sigmas[sigmas.length - 1], out);
        }
        return explicit != null && explicit.variancePreserving() ? toVariancePreserving(out, sigmas) : out;
    }

    private static double flowShift(PipelineModels m) {
        double shift = m.flowShift();
        if (!(shift > 0)) {
            throw new GenerateException("flow prediction needs a rectified-flow model (SD3); this " + m.family()
                    + " model has no flow shift");
        }
        return shift;
    }

    /**
     * diffusers' StableDiffusion3Pipeline (and its img2img): FlowMatchEulerDiscreteScheduler's plan; Euler steps on
     * the velocity for {@code euler}, any other sampler on the same sigmas with denoised = x - sigma * v. img2img
     * keeps the last int(steps * strength) steps and starts from sigma0 * noise + (1 - sigma0) * the posterior
     * sample in model space; random draws from the one generator in diffusers' order.
     */
    private static float[] flowDiffusers(PipelineModels m, ResolvedSettings s, SamplerInfo sampler,
            DiscreteModel.Network network, PipelineModels.Moments moments, int[] shape, ProgressListener progress,
            CancellationToken cancel) {
        FlowMatchEulerScheduler.Schedule plan = FlowMatchEulerScheduler.schedule(s.steps(), flowShift(m));
        float[] timesteps = plan.timesteps();
        float[] sig = plan.sigmas();
        int n = numel(shape);
        TorchGenerator generator = new TorchGenerator(s.seed());
        float[] x;
        if (moments == null) {
            x = generator.randn(n);
        } else {
            int steps = s.steps();
            double initTimestep = Math.min(steps * s.denoise(), steps);
            int start = (int) Math.max(steps - initTimestep, 0);
            timesteps = java.util.Arrays.copyOfRange(timesteps, start, timesteps.length);
            sig = java.util.Arrays.copyOfRange(sig, start, sig.length);
            if (timesteps.length == 0) {
                throw new GenerateException("denoise " + s.denoise() + " leaves no step of " + steps);
            }
            float[] sample = posteriorSample(moments, generator);
            float[] init = UnetNetwork.repeatRows(new jdiffusion.model.LatentFormat(m.latentScale(),
                    m.latentShift()).toModel(sample), s.batch());
            float[] noise = generator.randn(n);
            x = FlowMatchEulerScheduler.scaleNoise(init, noise, sig[0]);
        }
        FlowMatchEulerScheduler.Schedule run = new FlowMatchEulerScheduler.Schedule(timesteps, sig);
        double[] sigmas = new double[sig.length];
        double[] ts = new double[timesteps.length];
        for (int i = 0; i < sig.length; i++) {
            sigmas[i] = sig[i];
        }
        for (int i = 0; i < ts.length; i++) {
            ts[i] = timesteps[i];
        }
        StepCallback cb = callback(stepsOf(sigmas), progress, cancel);
        if (s.sampler().equals("euler")) {
            return FlowMatchEulerScheduler.sample(network, x, run, s.cfg(), cb);
        }
        ConditionalModel model = new ScheduledModel(network, PredictionType.FLOW, sigmas, ts, new float[] {1f});
        // a flow model: the samplers take their rectified-flow forms (as on the ComfyUI path)
        Denoiser guided = Cfg.guider(model, cfgOrNone(s.cfg()), false)
                .asFlow(ModelSamplingDiscrete.flow(flowShift(m)));
        NoiseSource noise = (sigma, next) -> generator.randn(n);
        return sampler.sampler().sample(guided, x, sigmas, noise, cb);
    }

    private static float[] diffusers(PipelineModels m, ResolvedSettings s, SamplerInfo sampler,
            DiscreteModel.Network network,
            PipelineModels.Moments moments, int[] shape, ProgressListener progress, CancellationToken cancel) {
        if (s.prediction() == PredictionType.FLOW) {
            return flowDiffusers(m, s, sampler, network, moments, shape, progress, cancel);
        }
        Plan plan = plan(s);
        int n = numel(shape);
        TorchGenerator generator = new TorchGenerator(s.seed());
        float[] x;
        if (moments == null) {
            float[] noise = generator.randn(n);
            x = scaled(noise, (float) plan.initNoise());
        } else {
            if (s.schedule() == null) {
                plan = plan.strength(s.denoise());
            }
            float[] sample = posteriorSample(moments, generator);
            float[] init = UnetNetwork.repeatRows(scaled(sample, (float) m.latentScale()), s.batch());
            float[] noise = generator.randn(n);
            float sigma0 = (float) plan.sigmas()[0];
            x = new float[n];
            for (int i = 0; i < n; i++) {
                x[i] = init[i] + noise[i] * sigma0; // scheduler.add_noise (the same in VP space, seen in sigma space)
            }
        }
        if (!s.controls().isEmpty()) {
            double[] planSigmas = plan.sigmas();
            ControlStack control = ControlSpecs.load(s.controls(), m.family(), s,
                    c -> ControlStack.Window.diffusers(planSigmas, planSigmas.length - 1, c.start(), c.end()));
            unet(network).withControl(control, control); // the ControlNet runs on the CFG batch
        }
        ConditionalModel model = new ScheduledModel(network, s.prediction(), plan.sigmas(), plan.timesteps(),
                DiffusersSchedule.trainingSigmas());
        Denoiser guided = Cfg.guider(model, cfgOrNone(s.cfg()), false);
        // diffusers draws every random tensor from the one generator, in call order
        NoiseSource noise = (sigma, next) -> generator.randn(n);
        double[] sigmas = plan.sigmas();
        float[] out = sampler.sampler().sample(guided, x, sigmas, noise, callback(stepsOf(sigmas), progress, cancel));
        return plan.variancePreserving() ? toVariancePreserving(out, sigmas) : out;
    }

    /**
     * A diffusers scheduler's plan in sigma space.
     *
     * @param initNoise          the txt2img noise multiplier (Euler's init_noise_sigma; sqrt(1 + sigma0^2) for the
     *                           variance-preserving schedulers, whose start latent is the noise itself)
     * @param variancePreserving the result goes back to VP space (DDIM stops at a sigma above 0)
     */
    record Plan(double[] timesteps, double[] sigmas, double initNoise, boolean variancePreserving) {
        Plan strength(double strength) {
            DiffusersSchedule.Schedule cut = new DiffusersSchedule.Schedule(timesteps, sigmas, initNoise)
                    .strength(strength);
            return new Plan(cut.timesteps(), cut.sigmas(), initNoise, variancePreserving);
        }
    }

    /**
     * diffusers' plan for the spacing: DDIMScheduler for {@code ddim} (eta 0 is Euler in sigma space; without
     * set_alpha_to_one it ends at the first training sigma, not 0), DPMSolverMultistepScheduler for
     * {@code dpmpp_2m}, EulerDiscreteScheduler's for every other sampler (Heun's doubled diffusers timesteps are the
     * same values: the sampler makes its second evaluation itself). Or the caller's explicit schedule.
     */
    static Plan plan(ResolvedSettings s) {
        GenerateRequest.ExplicitSchedule explicit = s.schedule();
        if (explicit != null) {
            double[] sigmas = explicit.sigmas();
            boolean full = explicit.variancePreserving()
                    || KSampler.isMaxDenoise(ModelSamplingDiscrete.DEFAULT, sigmas[0]);
            return new Plan(explicit.timesteps() == null ? new double[0] : explicit.timesteps(), sigmas,
                    full ? vpInit(sigmas[0]) : sigmas[0], explicit.variancePreserving());
        }
        DiffusersSchedule.Spacing spacing = DiffusersSchedule.Spacing.byName(s.scheduler());
        switch (s.sampler()) {
            case "ddim" -> {
                double[] t = DiffusersSchedule.ddim(s.steps(), spacing).timesteps();
                float[] train = DiffusersSchedule.trainingSigmas();
                double[] sigmas = new double[t.length + 1];
                for (int i = 0; i < t.length; i++) {
                    sigmas[i] = train[(int) t[i]];
                }
                sigmas[t.length] = train[0];
                return new Plan(t, sigmas, vpInit(sigmas[0]), true);
            }
            case "dpmpp_2m" -> {
                DiffusersSchedule.Schedule d = DiffusersSchedule.dpmSolverMultistep(s.steps(), spacing, false);
                return new Plan(d.timesteps(), d.sigmas(), vpInit(d.sigmas()[0]), true);
            }
            default -> {
                DiffusersSchedule.Schedule e = DiffusersSchedule.euler(s.steps(), spacing, false);
                return new Plan(e.timesteps(), e.sigmas(), e.initNoiseSigma(), false);
            }
        }
    }

    private static double vpInit(double sigma0) {
        float s0 = (float) sigma0;
        return (float) Math.sqrt(1.0f + s0 * s0);
    }

    /** diffusers disables guidance at guidance_scale <= 1; the guider then runs cond only (its cfg-1 rule). */
    static double cfgOrNone(double cfg) {
        return cfg > 1.0 ? cfg : 1.0;
    }

    /** x / sqrt(1 + sigma_last^2): the sigma-space state as a VP scheduler holds it. */
    static float[] toVariancePreserving(float[] x, double[] sigmas) {
        float last = (float) sigmas[sigmas.length - 1];
        if (last == 0f) {
            return x;
        }
        float denom = (float) Math.sqrt(1f + last * last);
        float[] out = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = x[i] / denom;
        }
        return out;
    }

    /** latent_dist.sample(generator): mean + std * randn, one image's worth. */
    static float[] posteriorSample(PipelineModels.Moments moments, TorchGenerator generator) {
        float[] eps = generator.randn(moments.mean().length);
        float[] out = new float[eps.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = moments.mean()[i] + moments.std()[i] * eps[i];
        }
        return out;
    }

    static int stepsOf(double[] sigmas) {
        return Math.max(1, sigmas.length - 1);
    }

    /** Reports each step with the sampler's denoised estimate (what previews show) and checks for cancellation. */
    static StepCallback callback(int total, ProgressListener progress, CancellationToken cancel) {
        return (i, x, denoised) -> {
            cancel.check("sampling step " + (i + 1) + " of " + total);
            jdiffusion.tensor.Finite.check(denoised, "UNet at sampling step " + (i + 1) + " of " + total);
            progress.onSamplerState(i, x, denoised);
            progress.onStep(Math.min(i + 1, total), total, denoised);
        };
    }

    static float[] scaled(float[] v, float f) {
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = v[i] * f;
        }
        return out;
    }

    static int numel(int[] shape) {
        int n = 1;
        for (int d : shape) {
            n *= d;
        }
        return n;
    }
}
