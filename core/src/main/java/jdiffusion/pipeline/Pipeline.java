package jdiffusion.pipeline;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ThreadLocalRandom;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngWriter;
import jdiffusion.pipeline.ResolvedSettings.Semantics;
import jdiffusion.sampling.PredictionType;
import jdiffusion.tensor.Parallel;

/**
 * Text-to-image and image-to-image: the library entry point the CLI (and later the server) call.
 *
 * <pre>
 *   GenerateResult r = Pipeline.generate(GenerateRequest.builder(model).prompt("a cat").seed(1L).build(),
 *           ProgressListener.NONE, CancellationToken.none());
 * </pre>
 *
 * A ComfyUI scheduler name runs ComfyUI's KSampler semantics, a diffusers spacing (leading / linspace / trailing)
 * runs diffusers' (see {@link Sampling}). The request is validated before anything is loaded, and files are only
 * written once everything has been computed.
 */
public final class Pipeline {
    private Pipeline() {
    }

    /** Validates, loads the checkpoint, generates, writes the requested files. */
    public static GenerateResult generate(GenerateRequest request, ProgressListener progress, CancellationToken cancel) {
        PngImage init = RequestValidator.validate(request);
        if (request.threads() != null) {
            Parallel.setThreads(request.threads());
        }
        Timings timings = new Timings();
        progress.onStage("load");
        // the hash only goes into saved files, and reading a 7 GB checkpoint is not free
        CompletableFuture<String> hash = request.output() != null || request.saveLatent() != null
                ? ModelHash.background(request.model()) : null;
        try (PipelineModels models = timings.time("load", () -> Sd3Models.isSd3File(request.model())
                ? Sd3Models.load(request).oneShot() : CheckpointModels.load(request).oneShot())) {
            return generate(models, request, init, hash, progress, cancel, timings);
        }
    }

    /**
     * Loads the models a request names (checkpoint, --unet, --vae, LoRAs) to reuse across generations with
     * {@link #generate(PipelineModels, GenerateRequest, ProgressListener, CancellationToken)}; close them when done.
     */
    public static PipelineModels load(GenerateRequest request) {
        RequestValidator.validate(request);
        return Sd3Models.isSd3File(request.model()) ? Sd3Models.load(request) : CheckpointModels.load(request);
    }

    /**
     * Generation with models already loaded (a server keeps them between requests): the request's model files are
     * ignored, everything else is validated and used.
     */
    public static GenerateResult generate(PipelineModels models, GenerateRequest request, ProgressListener progress,
            CancellationToken cancel) {
        PngImage init = RequestValidator.validate(request);
        if (request.threads() != null) {
            Parallel.setThreads(request.threads());
        }
        CompletableFuture<String> hash = request.output() != null || request.saveLatent() != null
                ? ModelHash.background(request.model()) : null;
        return generate(models, request, init, hash, progress, cancel, new Timings());
    }

    /** Generation with models already loaded and the request validated (init: its decoded init image or null). */
    public static GenerateResult generate(PipelineModels models, GenerateRequest request, PngImage init,
            CompletableFuture<String> modelHash, ProgressListener progress, CancellationToken cancel,
            Timings timings) {
        // the cancellation is checked inside the kernels as well (each attention block, convolution tile)
        return jdiffusion.tensor.Parallel.cancellable(() -> cancel.check("a model layer"),
                () -> generateChecked(models, request, init, modelHash, progress, cancel, timings));
    }

    private static GenerateResult generateChecked(PipelineModels models, GenerateRequest request, PngImage init,
            CompletableFuture<String> modelHash, ProgressListener progress, CancellationToken cancel,
            Timings timings) {
        InpaintImage inpaint = request.inpaint() == null ? null : InpaintImage.prepare(request, init);
        ResolvedSettings s = resolve(request, models, init, inpaint);
        cancel.check("loading");
        Sampling.Outcome out = Sampling.run(models, s, init, inpaint, null, progress, cancel, timings);
        models.samplingDone(); // a one-shot run frees the UNet before the VAE's large activations
        cancel.check("decoding");
        progress.onStage("decode");
        float[] decoded = timings.time("decode", () -> decodeToUnit(models, s, out.latentForVae()));
        // A1111 semantics: the unmasked pixels are the original's, the result pasted through the blurred mask
        float[] image01 = inpaint != null && request.inpaint().pasteBack() ? inpaint.pasteOver(decoded, s.batch())
                : decoded;
        List<PngImage> images = new ArrayList<>();
        for (int b = 0; b < s.batch(); b++) {
            // diffusers rounds to 8 bits, ComfyUI's SaveImage truncates
            PngImage png = PngImage.fromUnitFloats(decoded, b, s.height(), s.width(),
                    s.semantics() == Semantics.DIFFUSERS);
            images.add(inpaint != null && request.inpaint().pasteBack() ? inpaint.pasteOver(png) : png);
        }
        cancel.check("saving");
        progress.onStage("save");
        long t0 = System.nanoTime();
        String hash = modelHash == null ? null : join(modelHash);
        Saved saved = save(request, images, out.latent(), out.shape(), PngMetadata.chunks(s, hash),
                PngMetadata.parameters(s, hash));
        timings.add("save", (System.nanoTime() - t0) / 1e9);
        return new GenerateResult(images, image01, out.latent(), out.shape(), s.seed(), s, saved.images(),
                saved.latent(), timings);
    }

    static String join(CompletableFuture<String> f) {
        try {
            return f.get(120, java.util.concurrent.TimeUnit.SECONDS);
        } catch (Exception e) {
            return null;
        }
    }

    /** Fills every default from the family: size, cfg, clip skip, prediction; draws a seed when none was given. */
    static ResolvedSettings resolve(GenerateRequest r, PipelineModels m, PngImage init) {
        return resolve(r, m, init, null);
    }

    /** {@link #resolve(GenerateRequest, PipelineModels, PngImage)}; an outpainted image sets the default size. */
    static ResolvedSettings resolve(GenerateRequest r, PipelineModels m, PngImage init, InpaintImage inpaint) {
        PredictionType prediction = switch (r.prediction()) {
            case AUTO -> m.detectedPrediction();
            case EPS -> PredictionType.EPS;
            case V -> PredictionType.V;
            case X0 -> PredictionType.X0;
        };
        if (m.detectedPrediction() == PredictionType.FLOW && prediction != PredictionType.FLOW) {
            throw new GenerateException("a " + m.family() + " model predicts flow velocity; --prediction "
                    + prediction.name().toLowerCase(java.util.Locale.ROOT) + " does not apply");
        }
        int defaultSize = switch (m.family()) {
            case "SDXL", "SD3" -> 1024;
            case "SD2" -> prediction == PredictionType.V ? 768 : 512;
            default -> 512;
        };
        int width = r.width() != null ? r.width() : inpaint != null ? inpaint.width()
                : init != null ? init.width() : defaultSize;
        int height = r.height() != null ? r.height() : inpaint != null ? inpaint.height()
                : init != null ? init.height() : defaultSize;
        double cfg = r.cfg() != null ? r.cfg() : m.isSdxl() ? 5.0 : m.family().equals("SD3") ? 4.5 : 7.0;
        String scheduler = r.scheduler() != null ? r.scheduler() : Defaults.SCHEDULER;
        long seed = r.seed() != null ? r.seed() : ThreadLocalRandom.current().nextLong(1L << 32);
        Semantics semantics = Names.isDiffusersSpacing(scheduler) ? Semantics.DIFFUSERS : Semantics.COMFY;
        return new ResolvedSettings(m.family(), semantics, r.prompt(), r.negativePrompt(), width, height,
                r.schedule() != null ? r.schedule().sigmas().length - 1 : r.steps() != null ? r.steps() : Defaults.STEPS,
                cfg,
                r.sampler() != null ? r.sampler() : Defaults.SAMPLER, scheduler, seed, r.batch(), r.initImage(),
                r.denoise(), prediction, r.clipSkip() != null ? r.clipSkip() : 1,
                r.model().getFileName().toString(), r.unet() == null ? null : r.unet().getFileName().toString(),
                r.vae() == null ? null : r.vae().getFileName().toString(), r.loras(), r.schedule(), r.controls(),
                r.inpaint());
    }

    /** VAE decode of the UNet-space latent, then (x + 1) / 2 clamped to [0, 1] as the reference computes it. */
    static float[] decodeToUnit(PipelineModels m, ResolvedSettings s, float[] rawLatent) {
        float[] fast = TaesdDecoding.decodeToUnit(s, rawLatent);
        if (fast != null) {
            return fast;
        }
        float[] image = m.decode(rawLatent, s.batch(), s.latentHeight(), s.latentWidth());
        float[] out = new float[image.length];
        boolean comfy = s.semantics() == Semantics.COMFY;
        for (int i = 0; i < image.length; i++) {
            float v = comfy ? (image[i] + 1f) / 2f : image[i] / 2f + 0.5f;
            out[i] = Math.min(1f, Math.max(0f, v));
        }
        return out;
    }

    record Saved(List<Path> images, Path latent) {
    }

    /**
     * Writes images (with the text chunks) then the latent (with the parameters line); everything was computed
     * before, so a failure here cannot leave half a file.
     */
    static Saved save(GenerateRequest r, List<PngImage> images, float[] latent, int[] shape,
            Map<String, String> text, String parameters) {
        List<Path> written = new ArrayList<>();
        Path latentFile = null;
        try {
            if (r.output() != null) {
                List<Path> targets = new ArrayList<>();
                for (int b = 0; b < images.size(); b++) {
                    targets.add(b == 0 ? r.output() : PngWriter.withCounter(r.output(), b));
                }
                written.addAll(PngWriter.writeAllNew(targets, images, text));
            }
            if (r.saveLatent() != null) {
                Map<String, String> meta = new LinkedHashMap<>();
                meta.put("format", "jdiffusion latent");
                meta.put("space", "unet (after the sampler, before division by the VAE scaling factor)");
                meta.put("parameters", parameters);
                latentFile = LatentFile.write(r.saveLatent(), latent, shape, meta);
            }
        } catch (IOException e) {
            // all or nothing: images already written by this call go again
            for (Path p : written) {
                try {
                    java.nio.file.Files.deleteIfExists(p);
                } catch (IOException ignored) {
                    // the message below already says the output failed
                }
            }
            throw new GenerateException("cannot write output: " + e.getMessage());
        }
        return new Saved(written, latentFile);
    }
}
