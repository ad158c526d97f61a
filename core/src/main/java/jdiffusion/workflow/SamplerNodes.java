package jdiffusion.workflow;

import java.util.Arrays;
import java.util.Map;
import jdiffusion.pipeline.TextCond;
import jdiffusion.pipeline.UnetNetworks;
import jdiffusion.sampling.DiscreteModel;
import jdiffusion.sampling.KSampler;
import jdiffusion.sampling.ModelSamplingDiscrete;
import jdiffusion.sampling.NoiseSource;
import jdiffusion.sampling.SamplerInfo;
import jdiffusion.sampling.Samplers;
import jdiffusion.sampling.StepCallback;
import jdiffusion.workflow.Values.Cond;
import jdiffusion.workflow.Values.Latent;
import jdiffusion.workflow.Values.ModelRef;

/**
 * KSampler and KSamplerAdvanced: ComfyUI's common_ksampler over the sampling package's KSampler semantics, with the
 * pipeline's conditioned UNet ({@link UnetNetworks}) as the network.
 */
final class SamplerNodes {
    private SamplerNodes() {
    }

    /** Everything common_ksampler takes; start/last null = the whole schedule. */
    record Job(ModelRef model, long seed, int steps, double cfg, String sampler, String scheduler, Cond positive,
            Cond negative, Latent latent, double denoise, boolean disableNoise, Integer startStep, Integer lastStep,
            boolean forceFullDenoise) {
    }

    static NodeResult ksampler(Map<String, Object> in, NodeContext ctx) {
        Job job = new Job(in.get("model") instanceof ModelRef r ? r : null, (Long) in.get("seed"), intOf(in, "steps"),
                (Double) in.get("cfg"), (String) in.get("sampler_name"), (String) in.get("scheduler"),
                (Cond) in.get("positive"), (Cond) in.get("negative"), (Latent) in.get("latent_image"),
                (Double) in.get("denoise"), false, null, null, false);
        return NodeResult.of(sample(job, in.get("model"), ctx));
    }

    static NodeResult ksamplerAdvanced(Map<String, Object> in, NodeContext ctx) {
        Job job = new Job(in.get("model") instanceof ModelRef r ? r : null, (Long) in.get("noise_seed"),
                intOf(in, "steps"),
                (Double) in.get("cfg"), (String) in.get("sampler_name"), (String) in.get("scheduler"),
                (Cond) in.get("positive"), (Cond) in.get("negative"), (Latent) in.get("latent_image"), 1.0,
                "disable".equals(in.get("add_noise")), intOf(in, "start_at_step"), intOf(in, "end_at_step"),
                !"enable".equals(in.get("return_with_leftover_noise")));
        return NodeResult.of(sample(job, in.get("model"), ctx));
    }

    /** The job on its MODEL: an SD3 MMDiT ({@link Sd3Nodes}) or a UNet. */
    static Latent sample(Job job, Object model, NodeContext ctx) {
        if (model instanceof Sd3Nodes.Sd3Model sd3) {
            return Sd3Nodes.sample(sd3, job, ctx);
        }
        return sample(job, ctx);
    }

    static Latent sample(Job job, NodeContext ctx) {
        ctx.interrupt().check();
        LoadedUnet unet = ModelLoading.unet(ctx.models(), job.model());
        Latent latent = job.latent().withChannelsIfEmpty(4);
        checkConditioning(unet, job.positive(), "positive");
        checkConditioning(unet, job.negative(), "negative");
        if (latent.channels() != 4) {
            throw new WorkflowException("latent_image has " + latent.channels() + " channels; this model takes 4");
        }
        if (job.denoise() <= 0) {
            return latent; // ComfyUI: no sigmas at denoise 0, the latent passes through
        }
        ModelSamplingDiscrete ms = job.model().zsnr() ? ModelSamplingDiscrete.zeroTerminalSnr()
                : ModelSamplingDiscrete.DEFAULT;
        SamplerInfo info = samplerInfo(job.sampler());
        double[] sigmas = slice(KSampler.sigmas(ms, job.scheduler(), info, job.steps(), job.denoise()), job);
        if (sigmas == null) {
            return latent; // start_at_step past the schedule: ComfyUI returns the input latent
        }
        int n = latent.samples().length;
        float[] noise = job.disableNoise() ? new float[n] : KSampler.initialNoise(job.seed(), n);
        boolean uncondNeeded = job.cfg() != 1.0 || info.needsUncond();
        var positiveControl = ControlNetNodes.stack(job.positive(), unet, ms, latent.height(), latent.width(),
                ctx.models());
        // conds that share their ControlNets run them once on the [uncond, cond] batch, as ComfyUI batches them
        var negativeControl = !uncondNeeded ? null : job.negative().controls().equals(job.positive().controls())
                ? positiveControl : ControlNetNodes.stack(job.negative(), unet, ms, latent.height(), latent.width(),
                        ctx.models());
        DiscreteModel.Network network = UnetNetworks.of(unet, job.positive().text(),
                uncondNeeded ? job.negative().text() : null, latent.batch(), latent.height() * 8, latent.width() * 8,
                positiveControl, negativeControl);
        float[] denoiseMask = InpaintNodes.denoiseMask(latent);
        if (unet.inChannels() > latent.channels()) {
            network = InpaintNodes.withConcat(network, unet, job.positive(), latent, denoiseMask);
        }
        DiscreteModel model = new DiscreteModel(network, ms, unet.detectedPrediction());
        NoiseSource noiseSource = info.noise().create(job.seed(), n, sigmas);
        int total = Math.max(1, sigmas.length - 1);
        int[] shape = {latent.batch(), latent.channels(), latent.height(), latent.width()};
        StepCallback callback = (i, x, denoised) -> {
            ctx.interrupt().check();
            jdiffusion.tensor.Finite.check(denoised, "UNet at sampling step " + (i + 1) + " of " + total);
            ctx.progress(Math.min(i + 1, total), total, denoised, shape);
        };
        float[] out = KSampler.sample(model, ms, info, job.cfg(), latent.samples(), unet.latentScale(), noise, sigmas,
                noiseSource, callback, denoiseMask);
        // ComfyUI copies the input latent dict: the noise mask stays with the samples
        return new Latent(out, latent.batch(), latent.channels(), latent.height(), latent.width(), latent.noiseMask());
    }

    /**
     * KSampler.sample's step window: cut after last_step (the final sigma set to 0 when force_full_denoise), then
     * start at start_step; null when start_step leaves nothing to do.
     */
    static double[] slice(double[] sigmas, Job job) {
        double[] s = sigmas;
        if (job.lastStep() != null && job.lastStep() < s.length - 1) {
            s = Arrays.copyOf(s, job.lastStep() + 1);
            if (job.forceFullDenoise()) {
                s[s.length - 1] = 0;
            }
        }
        if (job.startStep() != null) {
            if (job.startStep() < s.length - 1) {
                s = Arrays.copyOfRange(s, job.startStep(), s.length);
            } else {
                return null;
            }
        }
        return s;
    }

    private static SamplerInfo samplerInfo(String name) {
        try {
            return Samplers.get(name);
        } catch (IllegalArgumentException e) {
            throw new WorkflowException(e.getMessage());
        }
    }

    private static void checkConditioning(LoadedUnet unet, Cond c, String which) {
        TextCond t = c.text();
        if (t.dim() != unet.contextDim()) {
            throw new WorkflowException(which + " conditioning has width " + t.dim() + " but the model's"
                    + " cross-attention takes " + unet.contextDim() + " (CLIP and MODEL from different families?)");
        }
        if (unet.isSdxl() && t.pooled() == null) {
            throw new WorkflowException(which + " conditioning has no pooled embedding, which an SDXL model needs");
        }
    }

    static int intOf(Map<String, Object> in, String name) {
        long v = (Long) in.get(name);
        return (int) Math.max(Integer.MIN_VALUE, Math.min(Integer.MAX_VALUE, v));
    }
}
