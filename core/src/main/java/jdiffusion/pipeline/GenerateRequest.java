package jdiffusion.pipeline;

import java.nio.file.Path;
import java.util.List;

/**
 * Everything one generation takes: what the {@code generate} command line accepts, as a value. Fields left null
 * take the model family's defaults (size, cfg) or the documented ones (20 steps, euler, normal, a random seed).
 * Build with {@link #builder(Path)}; {@link RequestValidator} checks every field before anything is loaded.
 *
 * @param model          single-file checkpoint (.safetensors)
 * @param unet           optional UNet-only file (diffusers or original layout) replacing the checkpoint's
 * @param vae            optional VAE file replacing the checkpoint's
 * @param prompt         positive prompt (may be empty)
 * @param negativePrompt negative prompt; null = none given (diffusers SDXL then uses a zero uncond; ComfyUI
 *                       semantics encode "")
 * @param width          image width in pixels, multiple of 8, 64..4096 (null: family default)
 * @param height         image height in pixels (null: family default, or the init image's height)
 * @param steps          sampling steps 1..1000 (null: 20)
 * @param cfg            classifier-free guidance scale >= 0 (null: 7 for SD1/SD2, 5 for SDXL)
 * @param sampler        ComfyUI sampler name (null: euler)
 * @param scheduler      ComfyUI scheduler name, or diffusers spacing leading / linspace / trailing (null: normal)
 * @param seed           noise seed (null: random; the result reports the one used)
 * @param batch          images per run (1..64)
 * @param initImage      image-to-image source (null: text-to-image)
 * @param denoise        img2img strength in (0, 1]; 1 for txt2img
 * @param prediction     what the UNet predicts; AUTO reads the checkpoint
 * @param clipSkip       1 = last text-encoder layer (null: family default)
 * @param output         PNG path (null: do not write images); batch item i > 0 goes to name_i, and an existing
 *                       file is never replaced (a counter is added)
 * @param saveLatent     optional safetensors file for the final latent (tensor "latent", [B,4,H/8,W/8])
 * @param threads        compute threads (null: all cores)
 * @param loras          LoRA files with their strengths, applied in order
 * @param schedule       optional explicit schedule replacing steps and scheduler (the library's explicit-sigmas path)
 * @param embeddings     folder of textual-inversion embeddings for {@code embedding:name} in prompts (null: none)
 * @param a1111Embeddings also match embeddings by their bare file name in prompts, as AUTOMATIC1111 does
 * @param sd3            SD3 / SD3.5 settings (text encoder files, flow shift); ignored for other families
 * @param controls       ControlNets with their hint images, applied together (their residuals add)
 * @param inpaint        optional mask / outpaint margins for the init image (null: plain img2img or txt2img)
 */
public record GenerateRequest(Path model, Path unet, Path vae, String prompt, String negativePrompt, Integer width,
        Integer height, Integer steps, Double cfg, String sampler, String scheduler, Long seed, int batch,
        Path initImage, double denoise, Prediction prediction, Integer clipSkip, Path output, Path saveLatent,
        Integer threads, List<LoraSpec> loras, ExplicitSchedule schedule, Path embeddings,
        boolean a1111Embeddings, Sd3Options sd3, List<ControlSpec> controls,
        Inpaint inpaint) {

    /**
     * What SD3 / SD3.5 needs beyond the checkpoint.
     *
     * @param t5                a T5-XXL file ({@code t5xxl_fp16.safetensors}, fp8 too) when the checkpoint has none
     * @param noT5              run without T5 even when one is available (zeros in its place)
     * @param clipL             a CLIP-L file when the checkpoint has no text encoders ({@code clip_l.safetensors})
     * @param clipG             a CLIP-G file likewise ({@code clip_g.safetensors})
     * @param shift             the flow shift (ModelSamplingSD3; null: 3.0)
     * @param maxSequenceLength T5 tokens under diffusers semantics (null: 256)
     * @param clipLHeads        CLIP-L attention heads, 0 = width / 64 (every real CLIP-L; tiny test models differ)
     * @param clipGHeads        CLIP-G attention heads, likewise
     */
    public record Sd3Options(Path t5, boolean noT5, Path clipL, Path clipG, Double shift, Integer maxSequenceLength,
            int clipLHeads, int clipGHeads) {
        public static final Sd3Options DEFAULT = new Sd3Options(null, false, null, null, null, null, 0, 0);

        public Sd3Options {
            if (shift != null && !(shift > 0 && shift < 1e6)) {
                throw new IllegalArgumentException("the flow shift must be positive, got " + shift);
            }
            if (maxSequenceLength != null && (maxSequenceLength < 1 || maxSequenceLength > 4096)) {
                throw new IllegalArgumentException("the T5 sequence length must be in 1..4096, got "
                        + maxSequenceLength);
            }
            if (clipLHeads < 0 || clipGHeads < 0) {
                throw new IllegalArgumentException("CLIP head counts must be 0 (width / 64) or positive");
            }
        }

        public double shiftOrDefault() {
            return shift == null ? 3.0 : shift;
        }

        public int maxSequenceLengthOrDefault() {
            return maxSequenceLength == null ? 256 : maxSequenceLength;
        }
    }


    /** How the UNet output is read: as stored in the checkpoint, or forced. */
    public enum Prediction { AUTO, EPS, V, X0 }

    /** One LoRA file with its UNet strength and its text-encoder strength. */
    public record LoraSpec(Path file, double strength, double clipStrength) {
        /** The same strength for the UNet and the text encoders. */
        public LoraSpec(Path file, double strength) {
            this(file, strength, strength);
        }
    }

    /**
     * One ControlNet: its file, the hint image, how strongly and when it steers.
     *
     * @param model    ControlNet file (original control_model.* or diffusers layout)
     * @param image    hint image (PNG); resized to the generation size as the reference does
     * @param strength multiplies the residuals (ComfyUI strength, diffusers controlnet_conditioning_scale)
     * @param start    start of the window in [0, 1]: ComfyUI start_percent (through the model's sigmas) or
     *                 diffusers control_guidance_start (by step index), as the run's semantics say
     * @param end      end of the window in [start, 1]
     * @param module   preprocessor applied to the image first: "none", "canny", "invert"
     * @param low      canny low threshold in [0, 1] (ComfyUI's Canny node)
     * @param high     canny high threshold in [0, 1]
     */
    public record ControlSpec(Path model, Path image, double strength, double start, double end, String module,
            double low, double high) {
        public ControlSpec {
            module = module == null ? "none" : module;
        }

        /** No preprocessing, the whole schedule. */
        public ControlSpec(Path model, Path image, double strength) {
            this(model, image, strength, 0.0, 1.0, "none", 0.4, 0.8);
        }
    }

    /**
     * A schedule given as numbers: the sampler runs exactly these sigmas (descending, usually ending in 0).
     *
     * @param sigmas              the noise levels, sigmas[0] the level of the start latent
     * @param timesteps           the UNet timestep for each sigma (same order; fractional allowed), or null for
     *                            ComfyUI's nearest integer training timestep
     * @param variancePreserving  false: KSampler's rules (txt2img noise times sqrt(1 + sigma0^2) at full noise, else
     *                            sigma0; the sampler's output is the result). true: a variance-preserving scheduler
     *                            (diffusers' DDIM, DPMSolverMultistep) driven in sigma space: the start latent is the
     *                            noise itself in VP space (times sqrt(1 + sigma0^2) here) and the result is brought
     *                            back to VP space (divided by sqrt(1 + sigma_last^2): DDIM may stop above 0)
     */
    public record ExplicitSchedule(double[] sigmas, double[] timesteps, boolean variancePreserving) {
        public ExplicitSchedule {
            if (sigmas == null || sigmas.length < 2) {
                throw new IllegalArgumentException("an explicit schedule needs at least two sigmas");
            }
            if (timesteps != null && timesteps.length < sigmas.length - 1) {
                throw new IllegalArgumentException("an explicit schedule needs a timestep for every sigma but the last");
            }
        }
    }

    /**
     * Inpainting and outpainting of the init image: what to repaint and how. An inpainting checkpoint (UNet with 9
     * input channels) gets the mask and the masked image as extra channels; any other checkpoint samples with the
     * mask (ComfyUI's SetLatentNoiseMask under a ComfyUI scheduler, diffusers' latent blend under a diffusers
     * spacing).
     *
     * @param mask          mask image, white (1) = repaint, grey = partly (ComfyUI) / binarised at 0.5 (diffusers);
     *                      null with maskFromAlpha false: only the outpaint border is repainted
     * @param maskFromAlpha take the mask from the init image's transparency (1 - alpha / 255, as ComfyUI's LoadImage)
     * @param grow          pixels to grow the mask by (ComfyUI GrowMask with tapered corners; for an inpainting
     *                      model under ComfyUI semantics VAEEncodeForInpaint's grow_mask_by)
     * @param blur          Gaussian blur of the mask in pixels (A1111's "Mask blur"; 0 = none)
     * @param outpaint      border to add around the init image before inpainting (null: none)
     * @param pasteBack     A1111 semantics: paste the result over the original through the (blurred) mask, so
     *                      unmasked pixels stay the original's
     * @param invert        repaint the unmasked area instead (A1111's inpainting_mask_invert)
     */
    public record Inpaint(Path mask, boolean maskFromAlpha, int grow, double blur, Outpaint outpaint,
            boolean pasteBack, boolean invert) {
        /** A mask file, nothing else. */
        public static Inpaint mask(Path mask) {
            return new Inpaint(mask, false, 0, 0, null, false, false);
        }

        /** The init image's transparency as the mask. */
        public static Inpaint alpha() {
            return new Inpaint(null, true, 0, 0, null, false, false);
        }

        public Inpaint withGrow(int pixels) {
            return new Inpaint(mask, maskFromAlpha, pixels, blur, outpaint, pasteBack, invert);
        }

        public Inpaint withBlur(double pixels) {
            return new Inpaint(mask, maskFromAlpha, grow, pixels, outpaint, pasteBack, invert);
        }

        public Inpaint withOutpaint(Outpaint o) {
            return new Inpaint(mask, maskFromAlpha, grow, blur, o, pasteBack, invert);
        }

        public Inpaint withPasteBack(boolean on) {
            return new Inpaint(mask, maskFromAlpha, grow, blur, outpaint, on, invert);
        }

        public Inpaint withInvert(boolean on) {
            return new Inpaint(mask, maskFromAlpha, grow, blur, outpaint, pasteBack, on);
        }
    }

    /**
     * Outpaint margins in pixels and the feathering of the mask into the original (ComfyUI's ImagePadForOutpaint:
     * new pixels grey, mask 1 there and ((f - d) / f)^2 inside within f pixels of a padded side).
     */
    public record Outpaint(int left, int top, int right, int bottom, int feather) {
    }

    public GenerateRequest {
        prompt = prompt == null ? "" : prompt;
        prediction = prediction == null ? Prediction.AUTO : prediction;
        loras = loras == null ? List.of() : List.copyOf(loras);
        sd3 = sd3 == null ? Sd3Options.DEFAULT : sd3;
        controls = controls == null ? List.of() : List.copyOf(controls);
    }

    public boolean isImg2Img() {
        return initImage != null;
    }

    public static Builder builder(Path model) {
        return new Builder(model);
    }

    public Builder toBuilder() {
        Builder b = new Builder(model);
        b.unet = unet;
        b.vae = vae;
        b.prompt = prompt;
        b.negativePrompt = negativePrompt;
        b.width = width;
        b.height = height;
        b.steps = steps;
        b.cfg = cfg;
        b.sampler = sampler;
        b.scheduler = scheduler;
        b.seed = seed;
        b.batch = batch;
        b.initImage = initImage;
        b.denoise = denoise;
        b.prediction = prediction;
        b.clipSkip = clipSkip;
        b.output = output;
        b.saveLatent = saveLatent;
        b.threads = threads;
        b.loras = loras;
        b.schedule = schedule;
        b.embeddings = embeddings;
        b.a1111Embeddings = a1111Embeddings;
        b.sd3 = sd3;
        b.controls = controls;
        b.inpaint = inpaint;
        return b;
    }

    /** Fluent construction; unset fields keep their defaults. */
    public static final class Builder {
        private final Path model;
        private Path unet;
        private Path vae;
        private String prompt = "";
        private String negativePrompt;
        private Integer width;
        private Integer height;
        private Integer steps;
        private Double cfg;
        private String sampler;
        private String scheduler;
        private Long seed;
        private int batch = 1;
        private Path initImage;
        private double denoise = 1.0;
        private Prediction prediction = Prediction.AUTO;
        private Integer clipSkip;
        private Path output;
        private Path saveLatent;
        private Integer threads;
        private List<LoraSpec> loras = List.of();
        private ExplicitSchedule schedule;
        private Path embeddings;
        private boolean a1111Embeddings;
        private Sd3Options sd3 = Sd3Options.DEFAULT;
        private List<ControlSpec> controls = List.of();
        private Inpaint inpaint;

        private Builder(Path model) {
            this.model = model;
        }

        public Builder unet(Path v) { unet = v; return this; }
        public Builder vae(Path v) { vae = v; return this; }
        public Builder prompt(String v) { prompt = v; return this; }
        public Builder negativePrompt(String v) { negativePrompt = v; return this; }
        public Builder width(Integer v) { width = v; return this; }
        public Builder height(Integer v) { height = v; return this; }
        public Builder size(int w, int h) { width = w; height = h; return this; }
        public Builder steps(Integer v) { steps = v; return this; }
        public Builder cfg(Double v) { cfg = v; return this; }
        public Builder sampler(String v) { sampler = v; return this; }
        public Builder scheduler(String v) { scheduler = v; return this; }
        public Builder seed(Long v) { seed = v; return this; }
        public Builder batch(int v) { batch = v; return this; }
        public Builder initImage(Path v) { initImage = v; return this; }
        public Builder denoise(double v) { denoise = v; return this; }
        public Builder prediction(Prediction v) { prediction = v; return this; }
        public Builder clipSkip(Integer v) { clipSkip = v; return this; }
        public Builder output(Path v) { output = v; return this; }
        public Builder saveLatent(Path v) { saveLatent = v; return this; }
        public Builder threads(Integer v) { threads = v; return this; }
        public Builder loras(List<LoraSpec> v) { loras = v; return this; }
        public Builder schedule(ExplicitSchedule v) { schedule = v; return this; }
        public Builder embeddings(Path v) { embeddings = v; return this; }
        public Builder a1111Embeddings(boolean v) { a1111Embeddings = v; return this; }
        public Builder sd3(Sd3Options v) { sd3 = v; return this; }
        public Builder controls(List<ControlSpec> v) { controls = v; return this; }
        public Builder inpaint(Inpaint v) { inpaint = v; return this; }

        public GenerateRequest build() {
            return new GenerateRequest(model, unet, vae, prompt, negativePrompt, width, height, steps, cfg, sampler,
                    scheduler, seed, batch, initImage, denoise, prediction, clipSkip, output, saveLatent, threads,
                    loras, schedule, embeddings, a1111Embeddings, sd3,
                    controls, inpaint);
        }
    }
}
