package jdiffusion.pipeline;

import java.util.Set;
import jdiffusion.sampling.Cfg;
import jdiffusion.sampling.ConcatNetwork;
import jdiffusion.sampling.ConditionalModel;
import jdiffusion.sampling.Denoiser;
import jdiffusion.sampling.DiffusersSchedule;
import jdiffusion.sampling.DiscreteModel;
import jdiffusion.sampling.KSampler;
import jdiffusion.sampling.ModelSamplingDiscrete;
import jdiffusion.sampling.NoiseMask;
import jdiffusion.sampling.NoiseSource;
import jdiffusion.sampling.SamplerInfo;
import jdiffusion.sampling.StepCallback;
import jdiffusion.sampling.TorchGenerator;

/**
 * The sampling stage of an inpaint / outpaint request, under the two references of {@link Sampling}.
 *
 * <p><b>ComfyUI</b>: an ordinary checkpoint runs VAEEncode + SetLatentNoiseMask (the mask grown with GrowMask,
 * blurred); an inpainting checkpoint (9 input channels) runs VAEEncodeForInpaint (grow_mask_by = the request's grow)
 * at denoise 1 with a grow, else InpaintModelConditioning (noise_mask on, the mask grown with GrowMask). The KSampler then blends the kept region back at
 * every model call (KSamplerX0Inpaint) and the UNet gets the mask and masked-image latent as extra channels.
 *
 * <p><b>diffusers</b> (StableDiffusion(XL)InpaintPipeline): the mask binarised at 0.5, the masked image
 * {@code init * (mask < 0.5)} VAE-sampled, the mask nearest-downsampled (top-left pixel of each 8x8 block); an
 * inpainting UNet gets {@code cat(mask, masked_image_latents)} every step, any other UNet's latents are blended with
 * the noised image latents after every step (legacy inpainting). Random draws in diffusers' order: [init image VAE
 * sample], initial noise, masked image VAE sample.
 */
final class InpaintSampling {
    /** Samplers whose steps are independent, so the legacy blend between steps can run them one step at a time. */
    private static final Set<String> SINGLE_STEP = Set.of("euler", "euler_ancestral", "heun", "ddim");

    private InpaintSampling() {
    }

    /**
     * What sampling starts from.
     *
     * @param latent       ComfyUI: the raw latent (posterior mean) of one image; diffusers: the scaled image latents
     *                     (posterior sample), null when the pipeline does not compute them
     * @param noiseMask    ComfyUI: the pixel mask [1][H][W] to prepare as denoise mask; diffusers: the latent mask
     *                     [1][h][w] (nearest)
     * @param concatMask   ComfyUI: InpaintModelConditioning's concat_mask (pixel size), else null
     * @param concatLatent ComfyUI: its concat_latent_image (raw); diffusers: the scaled masked-image latents
     * @param noise        diffusers: the initial noise (drawn between the two VAE samples)
     * @param plan         diffusers: the schedule (strength applied)
     * @param generator    diffusers: the seeded generator, after the draws above (ancestral noise continues it)
     */
    record Start(float[] latent, float[] noiseMask, float[] concatMask, float[] concatLatent, float[] noise,
            Sampling.Plan plan, TorchGenerator generator) {
    }

    // ---------------------------------------------------------------- ComfyUI

    static Start comfyStart(PipelineModels m, ResolvedSettings s, InpaintImage in) {
        int h = in.height();
        int w = in.width();
        GenerateRequest.Inpaint spec = in.spec();
        if (m.unetInChannels() <= 4) {
            return new Start(encodeMean(m, in.signedPixels(), h, w), in.mask(), null, null, null, null, null);
        }
        if (s.denoise() >= 1.0 && spec.grow() > 0) {
            // VAEEncodeForInpaint: grey masked pixels, mask rounded and grown by grow_mask_by
            Inpainting.EncodeForInpaint e = Inpainting.encodeForInpaintPixels(in.pixels(), 1, h, w,
                    in.mask(0, spec.blur()), 1, h, w, spec.grow(), 8);
            return new Start(encodeMean(m, signed(e.masked().pixels()), h, w), e.noiseMask(), null, null, null,
                    null, null);
        }
        // InpaintModelConditioning(noise_mask=True): the original's latent, the masked image's as concat
        MaskOps.MaskedPixels mp = MaskOps.greyMasked(in.pixels(), 1, h, w, in.mask(), 1, h, w, 8);
        return new Start(encodeMean(m, in.signedPixels(), h, w), mp.mask(), mp.mask(),
                encodeMean(m, signed(mp.pixels()), h, w), null, null, null);
    }

    static float[] comfy(PipelineModels m, ResolvedSettings s, SamplerInfo sampler, DiscreteModel.Network network,
            Start start, int[] shape, ProgressListener progress, CancellationToken cancel) {
        ModelSamplingDiscrete ms = ModelSamplingDiscrete.DEFAULT;
        int b = shape[0];
        int c = shape[1];
        int lh = shape[2];
        int lw = shape[3];
        double[] sigmas = s.schedule() != null ? s.schedule().sigmas().clone()
                : KSampler.sigmas(ms, s.scheduler(), sampler, s.steps(), s.denoise());
        int n = Sampling.numel(shape);
        float[] noise = new TorchGenerator(s.seed()).randn(n);
        float[] latent = UnetNetwork.repeatRows(start.latent(), b);
        float[] latentIn = KSampler.processLatentIn(latent, m.latentScale());
        float[] denoiseMask = MaskOps.prepareDenoiseMask(start.noiseMask(), 1, s.height(), s.width(), b, c, lh, lw);
        DiscreteModel.Network net = network;
        if (m.unetInChannels() > c) {
            float[] mask1;
            float[] maskedLatentIn;
            if (start.concatMask() != null) {
                mask1 = Inpainting.concatMask(start.concatMask(), 1, s.height(), s.width(), b, lh, lw);
                maskedLatentIn = KSampler.processLatentIn(UnetNetwork.repeatRows(start.concatLatent(), b),
                        m.latentScale());
            } else {
                mask1 = new float[b * lh * lw];
                for (int i = 0; i < b; i++) {
                    for (int p = 0; p < lh * lw; p++) {
                        mask1[i * lh * lw + p] = (float) Math.rint(denoiseMask[i * c * lh * lw + p]);
                    }
                }
                maskedLatentIn = latentIn;
            }
            net = new ConcatNetwork(network, Inpainting.concatConditioning(mask1, maskedLatentIn, b, c, lh, lw), b,
                    c * lh * lw);
        }
        ConditionalModel model = s.schedule() != null && s.schedule().timesteps() != null
                ? new ScheduledModel(net, s.prediction(), sigmas, s.schedule().timesteps(),
                        DiffusersSchedule.trainingSigmas())
                : new DiscreteModel(net, ms, s.prediction());
        boolean vp = s.schedule() != null && s.schedule().variancePreserving();
        float[] x = KSampler.noiseScaling(sigmas[0], noise, latentIn, vp || KSampler.isMaxDenoise(ms, sigmas[0]));
        Denoiser guided = NoiseMask.wrap(Cfg.guider(model, s.cfg(), sampler.needsUncond()), denoiseMask, latentIn,
                noise);
        NoiseSource noiseSource = sampler.noise().create(s.seed(), n, sigmas);
        float[] out = sampler.sampler().sample(guided, x, sigmas, noiseSource,
                Sampling.callback(Sampling.stepsOf(sigmas), progress, cancel));
        return vp ? Sampling.toVariancePreserving(out, sigmas) : out;
    }

    // ---------------------------------------------------------------- diffusers

    static Start diffusersStart(PipelineModels m, ResolvedSettings s, InpaintImage in, SamplerInfo sampler) {
        int h = in.height();
        int w = in.width();
        int lh = h / 8;
        int lw = w / 8;
        boolean nine = m.unetInChannels() > 4;
        if (!nine && !SINGLE_STEP.contains(s.sampler())) {
            throw new GenerateException("inpainting with a 4-channel model under diffusers semantics blends the"
                    + " latents between steps, which supports the samplers " + String.join(", ",
                    SINGLE_STEP.stream().sorted().toList()) + "; for '" + s.sampler() + "' use a ComfyUI scheduler");
        }
        Sampling.Plan plan = Sampling.plan(s);
        if (s.schedule() == null) {
            plan = plan.strength(s.denoise());
        }
        boolean strengthMax = s.denoise() >= 1.0;
        TorchGenerator generator = new TorchGenerator(s.seed());
        float[] signedInit = in.signedPixels();
        float[] imageLatents = null;
        if (!nine || !strengthMax) {
            PipelineModels.Moments mom = m.encode(signedInit, 1, h, w);
            imageLatents = Sampling.scaled(Sampling.posteriorSample(mom, generator), (float) m.latentScale());
        }
        float[] noise = generator.randn(s.batch() * 4 * lh * lw);
        float[] condition = MaskOps.binarize(in.mask());
        float[] masked = new float[signedInit.length];
        int plane = h * w;
        for (int c = 0; c < 3; c++) {
            for (int p = 0; p < plane; p++) {
                masked[c * plane + p] = signedInit[c * plane + p] * (condition[p] < 0.5f ? 1f : 0f);
            }
        }
        PipelineModels.Moments mm = m.encode(masked, 1, h, w);
        float[] maskedLatents = Sampling.scaled(Sampling.posteriorSample(mm, generator), (float) m.latentScale());
        float[] maskLatent = MaskOps.nearestDown(condition, 1, h, w, lh, lw);
        return new Start(imageLatents, maskLatent, null, maskedLatents, noise, plan, generator);
    }

    static float[] diffusers(PipelineModels m, ResolvedSettings s, SamplerInfo sampler, DiscreteModel.Network network,
            Start start, int[] shape, ProgressListener progress, CancellationToken cancel) {
        int b = shape[0];
        int c = shape[1];
        int plane = shape[2] * shape[3];
        int n = Sampling.numel(shape);
        Sampling.Plan plan = start.plan();
        double[] sigmas = plan.sigmas();
        float[] noise = start.noise();
        float[] image = start.latent() == null ? null : UnetNetwork.repeatRows(start.latent(), b);
        float[] x;
        if (s.denoise() >= 1.0) {
            x = Sampling.scaled(noise, (float) plan.initNoise());
        } else {
            float sigma0 = (float) sigmas[0];
            x = new float[n];
            for (int i = 0; i < n; i++) {
                x[i] = image[i] + noise[i] * sigma0;
            }
        }
        boolean nine = m.unetInChannels() > 4;
        DiscreteModel.Network net = network;
        float[] maskRows = UnetNetwork.repeatRows(start.noiseMask(), b);
        if (nine) {
            net = new ConcatNetwork(network, Inpainting.concatConditioning(maskRows,
                    UnetNetwork.repeatRows(start.concatLatent(), b), b, c, shape[2], shape[3]), b, c * plane);
        }
        ConditionalModel model = new ScheduledModel(net, s.prediction(), sigmas, plan.timesteps(),
                DiffusersSchedule.trainingSigmas());
        Denoiser guided = Cfg.guider(model, Sampling.cfgOrNone(s.cfg()), false);
        // diffusers draws every random tensor from the one generator, in call order
        TorchGenerator generator = start.generator();
        NoiseSource noiseSource = (sigma, next) -> generator.randn(n);
        StepCallback cb = Sampling.callback(Sampling.stepsOf(sigmas), progress, cancel);
        float[] out;
        if (nine) {
            out = sampler.sampler().sample(guided, x, sigmas, noiseSource, cb);
        } else {
            out = legacyBlend(sampler, guided, x, sigmas, noiseSource, cb, image, noise, maskRows, c, plane);
        }
        return plan.variancePreserving() ? Sampling.toVariancePreserving(out, sigmas) : out;
    }

    /**
     * diffusers' legacy (4-channel) inpainting: one step at a time, after each
     * {@code latents = (1 - m) * proper + m * latents} with proper the image latents noised to the next sigma with
     * the initial noise (clean after the last step).
     */
    private static float[] legacyBlend(SamplerInfo sampler, Denoiser guided, float[] x0,
            double[] sigmas, NoiseSource noise, StepCallback cb, float[] image, float[] initialNoise,
            float[] maskRows, int channels, int plane) {
        float[] x = x0;
        int steps = Sampling.stepsOf(sigmas);
        for (int i = 0; i < steps; i++) {
            int step = i;
            float[] stepped = sampler.sampler().sample(guided, x, new double[] {sigmas[i], sigmas[i + 1]}, noise,
                    (k, xs, d) -> cb.onStep(step, xs, d));
            boolean last = i == steps - 1;
            float sigmaNext = (float) sigmas[i + 1];
            float cleanScale = last ? (float) Math.sqrt(1f + sigmaNext * sigmaNext) : 1f;
            float[] blended = new float[stepped.length];
            for (int k = 0; k < blended.length; k++) {
                float m = maskRows[(k / (channels * plane)) * plane + k % plane];
                float proper = last ? image[k] * cleanScale : image[k] + sigmaNext * initialNoise[k];
                blended[k] = (1f - m) * proper + m * stepped[k];
            }
            x = blended;
        }
        return x;
    }

    private static float[] encodeMean(PipelineModels m, float[] signed, int h, int w) {
        return m.encode(signed, 1, h, w).mean();
    }

    private static float[] signed(float[] unit) {
        float[] out = new float[unit.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = unit[i] * 2f - 1f;
        }
        return out;
    }
}
