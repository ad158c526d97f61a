package jdiffusion.cli;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.ThreadLocalRandom;
import jdiffusion.pipeline.CancellationToken;
import jdiffusion.pipeline.GenerateException;
import jdiffusion.pipeline.GenerateRequest;
import jdiffusion.pipeline.GenerateResult;
import jdiffusion.pipeline.GenerationCancelledException;
import jdiffusion.pipeline.Pipeline;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code jdiffusion generate}: text-to-image and image-to-image, a thin layer over {@link Pipeline}. */
@Command(name = "generate", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Generate images from a prompt (txt2img) or from an init image (img2img).",
            "Schedulers by ComfyUI name run ComfyUI's KSampler semantics; leading, linspace and trailing run"
                    + " diffusers' Euler-family semantics."})
public final class GenerateCommand implements Callable<Integer> {
    @Option(names = {"-m", "--model"}, required = true, paramLabel = "FILE", description = "checkpoint (.safetensors, .ckpt)")
    Path model;

    @Option(names = "--unet", paramLabel = "FILE",
            description = "UNet-only file (diffusers or original layout) replacing the checkpoint's")
    Path unet;

    @Option(names = "--vae", paramLabel = "FILE", description = "VAE file replacing the checkpoint's")
    Path vae;

    @Option(names = {"-p", "--prompt"}, paramLabel = "TEXT", description = "prompt (default: empty)")
    String prompt = "";

    @Option(names = {"-n", "--negative-prompt"}, paramLabel = "TEXT",
            description = "negative prompt (omitted: none; SDXL with diffusers schedulers then guides against zeros)")
    String negativePrompt;

    @Option(names = {"-W", "--width"}, paramLabel = "PX", description = "width, multiple of 8 (default: per family)")
    Integer width;

    @Option(names = {"-H", "--height"}, paramLabel = "PX", description = "height, multiple of 8 (default: per family)")
    Integer height;

    @Option(names = "--steps", paramLabel = "N", description = "sampling steps (default: 20)")
    Integer steps;

    @Option(names = "--cfg", paramLabel = "SCALE", description = "guidance scale (default: 7 SD1/SD2, 5 SDXL)")
    Double cfg;

    @Option(names = "--sampler", paramLabel = "NAME", description = "ComfyUI sampler name (default: euler)")
    String sampler;

    @Option(names = "--scheduler", paramLabel = "NAME",
            description = "ComfyUI scheduler (normal, karras, exponential, sgm_uniform, simple, ddim_uniform, beta, ...)"
                    + " or diffusers spacing leading|linspace|trailing (default: normal)")
    String scheduler;

    @Option(names = {"-s", "--seed"}, paramLabel = "N", description = "seed (default: random, printed)")
    String seed;

    @Option(names = {"-b", "--batch"}, paramLabel = "N", description = "images per run (default: 1)")
    int batch = 1;

    @Option(names = {"-i", "--init-image"}, paramLabel = "PNG", description = "init image for img2img")
    Path initImage;

    @Option(names = "--denoise", paramLabel = "D", description = "img2img strength in (0, 1] (default: 1)")
    Double denoise;

    @Option(names = "--prediction", paramLabel = "KIND", description = "auto|eps|v|x0 (default: auto)")
    String prediction = "auto";

    @Option(names = "--preset", paramLabel = "NAME",
            description = "lightning|lcm|turbo|sd35-turbo: sampler, scheduler, steps, cfg (and turbo's 512x512) for few-step"
                    + " models; explicit flags win")
    String preset;

    @Option(names = "--clip-skip", paramLabel = "N", description = "text encoder layer from the end (1 = last)")
    Integer clipSkip;

    @Option(names = "--lora", paramLabel = "FILE[:STRENGTH[:CLIP]]",
            description = "LoRA to apply (repeatable; strength 1; CLIP: the text encoders' strength, default STRENGTH)")
    List<String> loras = new ArrayList<>();

    @Option(names = {"-o", "--output"}, paramLabel = "PNG",
            description = "output image (default: jdiffusion.png; never overwritten: a counter is added)")
    Path output = Path.of("jdiffusion.png");

    @Option(names = "--save-latent", paramLabel = "FILE",
            description = "also write the final latent (safetensors, tensor 'latent' [B,4,H/8,W/8])")
    Path saveLatent;

    @Option(names = {"-t", "--threads"}, paramLabel = "N", description = "compute threads (default: all cores)")
    Integer threads;

    @Option(names = "--vae-tiling", description = "decode the image in tiles with blended seams (less memory; done"
            + " automatically when the whole image would not fit the memory budget)")
    boolean vaeTiling;

    @Option(names = {"-q", "--quiet"}, description = "no progress output")
    boolean quiet;

    @picocli.CommandLine.Mixin
    EmbeddingsOption embeddings = new EmbeddingsOption();

    @picocli.CommandLine.Mixin
    Sd3Flags sd3 = new Sd3Flags();

    @picocli.CommandLine.Mixin
    HiresOptions hires = new HiresOptions();

    @picocli.CommandLine.Mixin
    ControlOptions control = new ControlOptions();

    @Mixin
    InpaintOptions inpaint = new InpaintOptions();
    @picocli.CommandLine.Mixin
    VaeDecoderOption vaeDecoder = new VaeDecoderOption();
    @picocli.CommandLine.Mixin
    PrecisionOption precision = new PrecisionOption();

    @Override
    public Integer call() {
        PrintStream err = System.err;
        precision.apply();
        GenerateRequest request = PresetOption.apply(request(), preset, err);
        jdiffusion.pipeline.HiresFix hiresFix = hires.toHiresFix();
        // the seed is printed once the request passed validation, before the long part starts
        ProgressBar bar = new ProgressBar(err, quiet, System.console() != null && System.console().isTerminal(),
                "seed: " + Long.toUnsignedString(request.seed()));
        CancellationToken cancel = new CancellationToken();
        Thread hook = new Thread(cancel::cancel, "cancel-on-exit");
        Runtime.getRuntime().addShutdownHook(hook);
        GenerateResult result;
        try {
            jdiffusion.model.Vae.setDefaultTiling(vaeTiling ? jdiffusion.model.VaeTiling.always() : null);
            jdiffusion.pipeline.TaesdDecoding.use(vaeDecoder.decoder, request.model());
            result = hiresFix == null ? Pipeline.generate(request, bar, cancel)
                    : jdiffusion.pipeline.HiresFix.generate(request, hiresFix, bar, cancel);
        } catch (GenerationCancelledException e) {
            throw new CliException(e.getMessage(), 130);
        } catch (GenerateException e) {
            throw new CliException(e.getMessage());
        } catch (OutOfMemoryError e) {
            throw new CliException("out of memory (" + e.getMessage() + "); give the JVM more with"
                    + " JDIFFUSION_JAVA_OPTS=-Xmx<size>", 1);
        } finally {
            bar.finish();
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // the JVM is exiting anyway
            }
        }
        PrintStream out = System.out;
        for (Path p : result.files()) {
            out.println("wrote " + p);
        }
        if (result.latentFile() != null) {
            out.println("wrote latent " + result.latentFile());
        }
        var st = result.settings();
        err.printf(Locale.ROOT, "%s %dx%d, %d steps, %s + %s, cfg %s, seed %s%n", st.family(), st.width(), st.height(),
                st.steps(), st.sampler(), st.scheduler(), st.cfg(), Long.toUnsignedString(result.seed()));
        err.println("timings: " + result.timings());
        return 0;
    }

    GenerateRequest request() {
        return GenerateRequest.builder(model).unet(unet).vae(vae).prompt(prompt).negativePrompt(negativePrompt)
                .width(width).height(height).steps(steps).cfg(cfg).sampler(sampler).scheduler(scheduler)
                .seed(seed == null ? ThreadLocalRandom.current().nextLong(1L << 32) : parseSeed(seed)).batch(batch)
                .initImage(initImage).denoise(denoise == null ? 1.0 : denoise).prediction(parsePrediction(prediction))
                .clipSkip(clipSkip).output(output).saveLatent(saveLatent).threads(threads).loras(parseLoras())
                .embeddings(embeddings.folder(model)).sd3(sd3.options())
                .controls(control.specs()).inpaint(inpaint.toInpaint()).build();
    }

    /** Seeds are 0 .. 2^64 - 1 as in ComfyUI; a negative seed is refused rather than silently wrapped. */
    static long parseSeed(String s) {
        try {
            if (s.startsWith("-")) {
                Long.parseLong(s); // a number: say what is wrong with it
                throw new CliException("seed must be between 0 and 18446744073709551615, got " + s
                        + " (omit -s for a random seed)");
            }
            return Long.parseUnsignedLong(s);
        } catch (NumberFormatException e) {
            throw new CliException("seed must be an integer between 0 and 18446744073709551615, got '" + s + "'");
        }
    }

    static GenerateRequest.Prediction parsePrediction(String s) {
        return switch (s.toLowerCase(Locale.ROOT)) {
            case "auto" -> GenerateRequest.Prediction.AUTO;
            case "eps", "epsilon" -> GenerateRequest.Prediction.EPS;
            case "v", "v_prediction" -> GenerateRequest.Prediction.V;
            case "x0", "sample" -> GenerateRequest.Prediction.X0;
            default -> throw new CliException("unknown --prediction '" + s + "'; valid: auto, eps, v, x0");
        };
    }

    private List<GenerateRequest.LoraSpec> parseLoras() {
        List<GenerateRequest.LoraSpec> out = new ArrayList<>();
        for (String arg : loras) {
            try {
                jdiffusion.lora.LoraSpec l = jdiffusion.lora.LoraSpec.parse(arg);
                out.add(new GenerateRequest.LoraSpec(l.file(), l.strength(), l.clipStrength()));
            } catch (IllegalArgumentException e) {
                throw new CliException(e.getMessage());
            }
        }
        return out;
    }

}
