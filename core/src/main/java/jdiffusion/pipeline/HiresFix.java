package jdiffusion.pipeline;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.PngImage;
import jdiffusion.model.upscale.UpscaleModel;
import jdiffusion.sampling.PredictionType;
import jdiffusion.tensor.Interpolate;
import jdiffusion.tensor.Parallel;

/**
 * Hires fix: a first pass at the requested size, the result enlarged by {@code scale}, and a second pass over it as
 * image-to-image at {@code denoise} (ComfyUI's two-KSampler hires workflow). The enlargement is either a latent
 * resize ({@code latent-<mode>}: ComfyUI's LatentUpscaleBy with that mode) or an upscale model (decode,
 * ImageUpscaleWithModel's 512-pixel tiles with 32 overlap, a Lanczos ImageScale to the target size when the model's
 * scale differs, encode). The target latent is round(size / 8 * scale) per side (Python rounding), the second pass
 * uses the same seed, sampler, scheduler and cfg, and {@code steps} steps (null: the first pass's).
 *
 * <pre>
 *   GenerateResult r = HiresFix.generate(GenerateRequest.builder(model).prompt("a cat").seed(1L).build(),
 *           new HiresFix(2.0, "latent-bicubic", null, 0.5), ProgressListener.NONE, CancellationToken.none());
 * </pre>
 *
 * @param scale    enlargement factor, in (0, 8]
 * @param upscaler {@code latent-<mode>} (nearest-exact, bilinear, area, bicubic, bislerp) or an upscale model file
 * @param steps    second-pass steps (null: the first pass's)
 * @param denoise  second-pass denoise in (0, 1]
 */
public record HiresFix(double scale, String upscaler, Integer steps, double denoise) {
    public static final String DEFAULT_UPSCALER = "latent-bicubic";
    public static final double DEFAULT_DENOISE = 0.5;
    /** The latent modes (ComfyUI's LatentUpscale methods). */
    public static final List<String> LATENT_MODES = List.of("nearest-exact", "bilinear", "area", "bicubic",
            "bislerp");
    /** ImageUpscaleWithModel's tile and overlap. */
    static final int TILE = 512;
    static final int OVERLAP = 32;
    private static final ObjectMapper JSON = new ObjectMapper();

    public HiresFix {
        upscaler = upscaler == null ? DEFAULT_UPSCALER : upscaler;
    }

    /** The latent mode, or null when the upscaler is a model file. */
    public String latentMode() {
        return upscaler.startsWith("latent-") ? upscaler.substring("latent-".length()) : null;
    }

    /**
     * What the A1111 parameters call the upscaler: A1111's latent names ("Latent" is its bilinear mode, the others
     * "Latent (mode)"), or the model file's name without extension.
     */
    String label() {
        String mode = latentMode();
        if (mode != null) {
            return mode.equals("bilinear") ? "Latent" : "Latent (" + mode + ")";
        }
        String name = Path.of(upscaler).getFileName().toString();
        int dot = name.lastIndexOf('.');
        return dot > 0 ? name.substring(0, dot) : name;
    }

    /** Checks the hires options with the request they extend; a one-line GenerateException otherwise. */
    void validate(GenerateRequest r) {
        if (!(scale > 0 && scale <= 8)) {
            throw new GenerateException("hires scale must be in (0, 8], got " + scale);
        }
        if (!(denoise > 0 && denoise <= 1)) {
            throw new GenerateException("hires denoise must be in (0, 1], got " + denoise);
        }
        if (steps != null && (steps < 1 || steps > RequestValidator.MAX_STEPS)) {
            throw new GenerateException("hires steps must be 1.." + RequestValidator.MAX_STEPS + ", got " + steps);
        }
        String mode = latentMode();
        if (mode != null && !LATENT_MODES.contains(mode)) {
            throw new GenerateException("unknown hires upscaler '" + upscaler + "'; valid: latent-"
                    + String.join(", latent-", LATENT_MODES) + " or an upscale model file");
        }
        if (mode == null) {
            RequestValidator.requireFile("hires upscaler model", Path.of(upscaler));
        }
        if (r.isImg2Img()) {
            throw new GenerateException("hires fix is for text-to-image; drop --init-image (or upscale the image)");
        }
        if (r.schedule() != null) {
            throw new GenerateException("hires fix does not take an explicit schedule");
        }
        String scheduler = r.scheduler() != null ? r.scheduler() : Defaults.SCHEDULER;
        if (Names.isDiffusersSpacing(scheduler)) {
            throw new GenerateException("hires fix runs ComfyUI's KSampler semantics; scheduler '" + scheduler
                    + "' is a diffusers spacing (use normal, karras, ...)");
        }
    }

    private UpscaleModel loadModel() {
        UpscaleModel um;
        try {
            um = UpscaleModel.open(Path.of(upscaler));
        } catch (ModelFormatException e) {
            throw new GenerateException(e.getMessage());
        }
        if (um.inChannels() != 3 || um.outChannels() != 3) {
            throw new GenerateException("hires upscaler " + upscaler + " maps " + um.inChannels() + " to "
                    + um.outChannels() + " channels, not RGB to RGB");
        }
        return um;
    }

    /** round(latent side * scale), Python's rounding (half to even), as LatentUpscaleBy. */
    int targetLatent(int side) {
        return (int) Math.rint(side * scale);
    }

    /** Validates, loads the checkpoint, runs both passes, writes the requested files. */
    public static GenerateResult generate(GenerateRequest request, HiresFix hires, ProgressListener progress,
            CancellationToken cancel) {
        RequestValidator.validate(request);
        hires.validate(request);
        if (request.threads() != null) {
            Parallel.setThreads(request.threads());
        }
        Timings timings = new Timings();
        progress.onStage("load");
        CompletableFuture<String> hash = request.output() != null || request.saveLatent() != null
                ? ModelHash.background(request.model()) : null;
        try (PipelineModels models = timings.time("load", () -> CheckpointModels.load(request).oneShot())) {
            return generate(models, request, hires, hash, progress, cancel, timings);
        }
    }

    /** Both passes with models already loaded (kept by the caller), the request not yet validated. */
    public static GenerateResult generate(PipelineModels models, GenerateRequest request, HiresFix hires,
            ProgressListener progress, CancellationToken cancel) {
        RequestValidator.validate(request);
        hires.validate(request);
        if (request.threads() != null) {
            Parallel.setThreads(request.threads());
        }
        CompletableFuture<String> hash = request.output() != null || request.saveLatent() != null
                ? ModelHash.background(request.model()) : null;
        return generate(models, request, hires, hash, progress, cancel, new Timings());
    }

    private static GenerateResult generate(PipelineModels loaded, GenerateRequest request, HiresFix hires,
            CompletableFuture<String> modelHash, ProgressListener progress, CancellationToken cancel,
            Timings timings) {
        TwoPass m = new TwoPass(loaded);
        ResolvedSettings first = Pipeline.resolve(request, m, null);
        int lw = hires.targetLatent(first.latentWidth());
        int lh = hires.targetLatent(first.latentHeight());
        if (lw * 8 < RequestValidator.MIN_SIZE || lh * 8 < RequestValidator.MIN_SIZE
                || lw * 8 > RequestValidator.MAX_SIZE || lh * 8 > RequestValidator.MAX_SIZE) {
            throw new GenerateException("hires size " + lw * 8 + "x" + lh * 8 + " is outside "
                    + RequestValidator.MIN_SIZE + ".." + RequestValidator.MAX_SIZE);
        }
        UpscaleModel model = hires.latentMode() == null ? timings.time("load upscaler", hires::loadModel) : null;
        cancel.check("loading");
        Sampling.Outcome pass1 = Sampling.run(m, first, null, progress, cancel, timings);
        cancel.check("upscaling");
        progress.onStage("upscale");
        int b = first.batch();
        float[] start = timings.time("upscale", () -> model == null
                ? Interpolate.upscale(pass1.latentForVae(), b, 4, first.latentHeight(), first.latentWidth(), lw, lh,
                        hires.latentMode(), "disabled")
                : throughModel(m, first, pass1, model, lw * 8, lh * 8));
        ResolvedSettings second = new ResolvedSettings(first.family(), first.semantics(), first.prompt(),
                first.negativePrompt(), lw * 8, lh * 8, hires.steps() != null ? hires.steps() : first.steps(),
                first.cfg(), first.sampler(), first.scheduler(), first.seed(), b, null, hires.denoise(),
                first.prediction(), first.clipSkip(), first.modelName(), first.unetName(), first.vaeName(),
                first.loras(), null, first.controls());
        m.lastPass = true;
        Sampling.Outcome out = Sampling.run(m, second, null, null, start, progress, cancel, timings);
        m.samplingDone();
        cancel.check("decoding");
        progress.onStage("decode");
        float[] image01 = timings.time("decode", () -> Pipeline.decodeToUnit(m, second, out.latentForVae()));
        List<PngImage> images = new ArrayList<>();
        for (int i = 0; i < b; i++) {
            images.add(PngImage.fromUnitFloats(image01, i, second.height(), second.width(), false));
        }
        cancel.check("saving");
        progress.onStage("save");
        long t0 = System.nanoTime();
        String hash = modelHash == null ? null : Pipeline.join(modelHash);
        String parameters = hires.parameters(first, second, hash);
        Map<String, String> text = new LinkedHashMap<>();
        text.put("parameters", parameters);
        text.put("prompt", hires.comfyWorkflow(first, second, model != null
                && (first.width() * model.scale() != second.width() || first.height() * model.scale() != second.height())));
        Pipeline.Saved saved = Pipeline.save(request, images, out.latent(), out.shape(), text, parameters);
        timings.add("save", (System.nanoTime() - t0) / 1e9);
        return new GenerateResult(images, image01, out.latent(), out.shape(), second.seed(), second, saved.images(),
                saved.latent(), timings);
    }

    /**
     * Decode, upscale with the model (ComfyUI's tiling), resize to the target with Lanczos when the model's scale
     * does not land on it, encode: the posterior mean in VAE space, as VAEEncode gives it.
     */
    private static float[] throughModel(PipelineModels m, ResolvedSettings s, Sampling.Outcome pass1,
            UpscaleModel model, int width, int height) {
        float[] image = Pipeline.decodeToUnit(m, s, pass1.latentForVae());
        int b = s.batch();
        int k = model.scale();
        float[] up = model.upscaleTiled(image, b, s.height(), s.width(), TILE, TILE, OVERLAP);
        int uh = s.height() * k;
        int uw = s.width() * k;
        if (uh != height || uw != width) {
            up = Interpolate.upscale(up, b, 3, uh, uw, width, height, "lanczos", "disabled");
        }
        float[] signed = new float[up.length];
        for (int i = 0; i < up.length; i++) {
            signed[i] = up[i] * 2f - 1f;
        }
        return m.encode(signed, b, height, width).mean();
    }

    /** A1111's parameters of the first pass with the hires fields before the version. */
    String parameters(ResolvedSettings first, ResolvedSettings second, String hash) {
        String base = PngMetadata.parameters(first, hash);
        String fields = ", Denoising strength: " + number(denoise) + ", Hires upscale: " + number(scale)
                + ", Hires steps: " + second.steps() + ", Hires upscaler: " + label();
        int v = base.lastIndexOf(", Version: ");
        return v < 0 ? base + fields : base.substring(0, v) + fields + base.substring(v);
    }

    private static String number(double v) {
        if (v == Math.rint(v) && Math.abs(v) < 1e15) {
            return Long.toString((long) v);
        }
        return String.format(Locale.ROOT, "%s", (float) v);
    }

    /**
     * The ComfyUI workflow of both passes: the first pass's graph, then LatentUpscaleBy (or VAEDecode,
     * UpscaleModelLoader, ImageUpscaleWithModel, ImageScale lanczos when needed, VAEEncode), a second KSampler and
     * the decode that SaveImage saves.
     */
    String comfyWorkflow(ResolvedSettings first, ResolvedSettings second, boolean resize) {
        try {
            ObjectNode wf = (ObjectNode) JSON.readTree(PngMetadata.comfyWorkflow(first));
            ObjectNode ks1 = (ObjectNode) wf.get("3");
            ObjectNode dec1 = (ObjectNode) wf.get("8");
            JsonLink vae = new JsonLink((ArrayNode) dec1.get("inputs").get("vae"));
            String latent;
            if (latentMode() != null) {
                ObjectNode up = node(wf, "30", "LatentUpscaleBy");
                up.set("samples", link("3", 0));
                up.put("upscale_method", latentMode());
                up.put("scale_by", scale);
                latent = "30";
            } else {
                node(wf, "31", "UpscaleModelLoader").put("model_name", Path.of(upscaler).getFileName().toString());
                ObjectNode up = node(wf, "32", "ImageUpscaleWithModel");
                up.set("upscale_model", link("31", 0));
                up.set("image", link("8", 0));
                String pixels = "32";
                if (resize) {
                    ObjectNode sc = node(wf, "33", "ImageScale");
                    sc.set("image", link("32", 0));
                    sc.put("upscale_method", "lanczos");
                    sc.put("width", second.width());
                    sc.put("height", second.height());
                    sc.put("crop", "disabled");
                    pixels = "33";
                }
                ObjectNode enc = node(wf, "34", "VAEEncode");
                enc.set("pixels", link(pixels, 0));
                enc.set("vae", vae.copy());
                latent = "34";
            }
            ObjectNode ks2 = wf.putObject("35");
            ks2.setAll(ks1.deepCopy());
            ObjectNode in2 = (ObjectNode) ks2.get("inputs");
            in2.put("steps", second.steps());
            in2.put("denoise", denoise);
            in2.set("latent_image", link(latent, 0));
            ObjectNode dec2 = node(wf, "36", "VAEDecode");
            dec2.set("samples", link("35", 0));
            dec2.set("vae", vae.copy());
            ((ObjectNode) wf.get("9").get("inputs")).set("images", link("36", 0));
            return JSON.writeValueAsString(wf);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private record JsonLink(ArrayNode a) {
        ArrayNode copy() {
            return a.deepCopy();
        }
    }

    private static ObjectNode node(ObjectNode wf, String id, String classType) {
        ObjectNode n = wf.putObject(id);
        n.put("class_type", classType);
        return n.putObject("inputs");
    }

    private static ArrayNode link(String node, int output) {
        ArrayNode a = JSON.createArrayNode();
        a.add(node);
        a.add(output);
        return a;
    }

    /**
     * The loaded models as both passes see them: text conditioning encoded once (the first pass may free the text
     * encoders, the second reuses its conditioning), and the UNet kept until the last pass is done.
     */
    private static final class TwoPass implements PipelineModels {
        private final PipelineModels m;
        private final Map<String, TextCond> texts = new HashMap<>();
        boolean lastPass;

        TwoPass(PipelineModels m) {
            this.m = m;
        }

        @Override
        public String family() {
            return m.family();
        }

        @Override
        public PredictionType detectedPrediction() {
            return m.detectedPrediction();
        }

        @Override
        public double latentScale() {
            return m.latentScale();
        }

        @Override
        public TextCond encodeText(String prompt, int clipSkip) {
            String key = clipSkip + "\u0000" + prompt;
            TextCond c = texts.get(key);
            if (c == null) {
                c = m.encodeText(prompt, clipSkip);
                texts.put(key, c);
            }
            return c;
        }

        @Override
        public void textEncodingDone() {
            m.textEncodingDone();
        }

        @Override
        public void samplingDone() {
            if (lastPass) {
                m.samplingDone();
            }
        }

        @Override
        public float[] unet(float[] x, int batch, int h, int w, float[] timesteps, float[] context, int tokens,
                float[] y) {
            return m.unet(x, batch, h, w, timesteps, context, tokens, y);
        }

        @Override
        public float[] sdxlAdm(float[] pooled, int batch, int height, int width) {
            return m.sdxlAdm(pooled, batch, height, width);
        }

        @Override
        public float[] decode(float[] latent, int batch, int h, int w) {
            return m.decode(latent, batch, h, w);
        }

        @Override
        public Moments encode(float[] image, int batch, int height, int width) {
            return m.encode(image, batch, height, width);
        }
    }
}
