package jdiffusion.cli;

import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import jdiffusion.bench.Flops;
import jdiffusion.bench.OpProfile;
import jdiffusion.bench.RandomWeights;
import jdiffusion.bench.ResidentMemory;
import jdiffusion.bench.Timing;
import jdiffusion.io.Checkpoint;
import jdiffusion.io.CheckpointKeys;
import jdiffusion.io.CheckpointLayouts;
import jdiffusion.io.CheckpointLayouts.TextEncoderSlot;
import jdiffusion.io.CheckpointLayouts.TextLayout;
import jdiffusion.io.DType;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.OpenClipWeights;
import jdiffusion.io.RandomCheckpoint;
import jdiffusion.io.Weights;
import jdiffusion.model.ModelConfig;
import jdiffusion.model.TextConditioner;
import jdiffusion.model.UNet;
import jdiffusion.model.Vae;
import jdiffusion.model.VaeTiling;
import jdiffusion.pipeline.CancellationToken;
import jdiffusion.pipeline.GenerateException;
import jdiffusion.pipeline.GenerateRequest;
import jdiffusion.pipeline.GenerateResult;
import jdiffusion.pipeline.Pipeline;
import jdiffusion.pipeline.ProgressListener;
import jdiffusion.tensor.FmaPeak;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code jdiffusion bench unet|vae|text|generate}: whole-model benchmarks on full-size random weights made in memory
 * (or a given checkpoint). Each prints the median seconds of the timed runs, the FLOPs of the work counted from the
 * architecture, the achieved GFLOP/s against the machine's FMA peak measured just before, where the time goes and
 * the process's peak resident memory.
 */
final class ModelBench {
    private ModelBench() {
    }

    /** Options every model benchmark takes. */
    static class Options {
        @Option(names = "--arch", paramLabel = "ARCH", description = "sd15, sd21, sdxl; for bench unet also sd35m, sd35l, sd3m"
                + " (default: ${DEFAULT-VALUE})")
        String arch = "sd15";

        @Option(names = {"-W", "--width"}, paramLabel = "PX", description = "image width (default: the family's)")
        Integer width;

        @Option(names = {"-H", "--height"}, paramLabel = "PX", description = "image height (default: the family's)")
        Integer height;

        @Option(names = {"-c", "--checkpoint"}, paramLabel = "FILE",
                description = "a real checkpoint instead of random weights (its family replaces --arch)")
        Path checkpoint;

        @Option(names = {"-t", "--threads"}, paramLabel = "N", description = "worker threads (default: all cores)")
        Integer threads;

        @Option(names = "--runs", paramLabel = "N", description = "timed runs (default: 3; generate: 1)")
        Integer runs;

        @Option(names = "--warmup", paramLabel = "N", description = "untimed runs first (default: 1; generate: 0)")
        Integer warmup;

        @Option(names = "--seed", paramLabel = "N", description = "seed of the random weights and inputs")
        long seed = 42;

        @picocli.CommandLine.Mixin
        PrecisionOption precision = new PrecisionOption();

        int runs(int fallback) {
            int r = runs == null ? fallback : runs;
            if (r < 1) {
                throw new CliException("--runs must be at least 1, got " + r);
            }
            return r;
        }

        int warmup(int fallback) {
            int w = warmup == null ? fallback : warmup;
            if (w < 0) {
                throw new CliException("--warmup must be 0 or more, got " + w);
            }
            return w;
        }

        /** Image size in pixels: the options, else the family's native size; multiples of 8. */
        int[] size(ModelConfig config) {
            int native_ = switch (config.family()) {
                case SD1 -> 512;
                case SD2 -> 768;
                case SDXL -> 1024;
                default -> 512;
            };
            int w = width == null ? native_ : width;
            int h = height == null ? native_ : height;
            if (w < 8 || h < 8 || w % 8 != 0 || h % 8 != 0) {
                throw new CliException("width and height must be positive multiples of 8, got " + w + "x" + h);
            }
            return new int[] {w, h};
        }
    }

    /** The weights of each component, random or from a checkpoint. */
    record Source(ModelConfig config, Weights unet, Weights vae, List<Weights> textEncoders, String description,
                  AutoCloseable file) implements AutoCloseable {
        static Source open(Options o) {
            if (o.checkpoint != null) {
                try {
                    Checkpoint c = Checkpoint.open(o.checkpoint);
                    return new Source(c.config(), c.unet(), c.vae(), c.textEncoders(),
                            c.family() + " checkpoint " + o.checkpoint, c);
                } catch (ModelFormatException e) {
                    throw new CliException(e.getMessage());
                }
            }
            ModelConfig config;
            try {
                config = ModelConfig.preset(o.arch);
            } catch (IllegalArgumentException e) {
                throw new CliException(e.getMessage());
            }
            List<CheckpointKeys.TensorSpec> specs = CheckpointKeys.of(config);
            CheckpointLayouts.Layout layout = CheckpointLayouts.layout(config.family());
            List<Weights> te = new ArrayList<>();
            for (TextEncoderSlot slot : layout.textEncoders()) {
                Weights raw = RandomWeights.of(specs, slot.prefix(), o.seed);
                te.add(slot.layout() == TextLayout.OPEN_CLIP ? OpenClipWeights.of(raw) : raw);
            }
            return new Source(config, RandomWeights.of(specs, layout.unetPrefix(), o.seed),
                    RandomWeights.of(specs, layout.vaePrefix(), o.seed), te,
                    o.arch + " (" + config.family() + ") full-size random fp16 weights, made in memory", null);
        }

        @Override
        public void close() throws Exception {
            if (file != null) {
                file.close();
            }
        }
    }

    /** Sets the threads and measures the FMA peak the benchmark is compared with. */
    static double setUp(Options o, String what) {
        // bad arguments fail at once, before seconds of peak measurement and loading
        if (o.checkpoint != null && !Files.isRegularFile(o.checkpoint)) {
            throw new CliException("no checkpoint file " + o.checkpoint);
        }
        if (o.checkpoint == null && !jdiffusion.model.mmdit.Sd3Keys.isPreset(o.arch)) {
            try {
                o.size(ModelConfig.preset(o.arch));
            } catch (IllegalArgumentException e) {
                throw new CliException(e.getMessage());
            }
        }
        o.runs(1);
        o.warmup(0);
        jdiffusion.tensor.Precision p = o.precision.apply();
        int t = BenchCommand.applyThreads(o.threads);
        System.out.println("precision: " + jdiffusion.tensor.Precision.describe(p));
        System.out.printf(Locale.ROOT, "bench %s: %d threads; load average %.2f on %d processors%n", what, t,
                loadAverage(), Runtime.getRuntime().availableProcessors());
        double peak = FmaPeak.measure(t, 300);
        System.out.printf(Locale.ROOT, "measured fp32 FMA peak now: %.1f GFLOP/s%n", peak);
        return peak;
    }

    static double loadAverage() {
        return ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
    }

    static <T> T timed(String what, java.util.function.Supplier<T> body) {
        long t0 = System.nanoTime();
        T r = body.get();
        System.out.printf(Locale.ROOT, "%s: %.1f s; resident now %s%n", what, (System.nanoTime() - t0) * 1e-9,
                ResidentMemory.format(ResidentMemory.currentBytes()));
        return r;
    }

    /** The summary every benchmark ends with. */
    static void report(Timing.Runs runs, Flops flops, double peakBefore, Map<OpProfile.Category, Double> profile) {
        // the peak again after the runs: on a shared machine the load changes, so compare with the mean of both
        double peak = (peakBefore + FmaPeak.measure(jdiffusion.tensor.Parallel.threads(), 300)) / 2;
        double median = runs.median();
        double gflops = flops.total() / median * 1e-9;
        StringBuilder each = new StringBuilder();
        for (double s : runs.seconds()) {
            each.append(String.format(Locale.ROOT, " %.2f", s));
        }
        System.out.printf(Locale.ROOT, "runs (s):%s%n", each);
        System.out.printf(Locale.ROOT, "median %.2f s; %.3f TFLOP (GEMM/conv %.3f, attention %.3f, norm %.4f,"
                        + " elementwise %.4f); %.1f GFLOP/s = %.1f%% of the %.1f GFLOP/s peak"
                        + " (measured before and after)%n", median,
                flops.total() / 1e12, flops.of(Flops.Kind.GEMM) / 1e12, flops.of(Flops.Kind.ATTENTION) / 1e12,
                flops.of(Flops.Kind.NORM) / 1e12, flops.of(Flops.Kind.ELEMENTWISE) / 1e12, gflops,
                100 * gflops / peak, peak);
        if (!profile.isEmpty()) {
            StringBuilder sb = new StringBuilder("time by operation (sampled):");
            profile.forEach((c, share) -> sb.append(String.format(Locale.ROOT, " %s %.1f%% (%.2f s)", c.label,
                    100 * share, share * median)));
            System.out.println(sb);
        }
        System.out.printf(Locale.ROOT, "peak resident memory %s; load average now %.2f%n",
                ResidentMemory.format(ResidentMemory.peakBytes()), loadAverage());
    }

    static float[] gaussian(SplittableRandom rnd, int n, double std) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (rnd.nextGaussian() * std);
        }
        return x;
    }

    @Command(name = "unet", mixinStandardHelpOptions = true,
            description = "Time UNet evaluations (default batch 2: one cfg step) at the family's native size.")
    static final class UnetBench implements Runnable {
        @Mixin
        Options o;

        @Option(names = {"-b", "--batch"}, paramLabel = "N", description = "batch (default: ${DEFAULT-VALUE})")
        int batch = 2;

        @Mixin
        ConvOption conv = new ConvOption();

        @Override
        public void run() {
            if (batch < 1) {
                throw new CliException("--batch must be at least 1, got " + batch);
            }
            if (Sd3Bench.wanted(o)) {
                Sd3Bench.run(o, batch);
                return;
            }
            double peak = setUp(o, "unet");
            try (Source src = Source.open(o)) {
                System.out.println("weights: " + src.description());
                UNet unet = timed("load + pack UNet", () -> load(src));
                int[] size = o.size(src.config());
                int h = size[1] / 8;
                int w = size[0] / 8;
                ModelConfig.UNetSpec spec = src.config().unet();
                int tokens = 77;
                SplittableRandom rnd = new SplittableRandom(o.seed);
                float[] x = gaussian(rnd, batch * spec.inChannels() * h * w, 1);
                float[] t = new float[batch];
                java.util.Arrays.fill(t, 500f);
                float[] context = gaussian(rnd, batch * tokens * spec.contextDim(), 1);
                float[] y = spec.admInChannels() > 0 ? gaussian(rnd, batch * spec.admInChannels(), 1) : null;
                System.out.printf(Locale.ROOT, "UNet %dx%d latent (%dx%d image), batch %d, %d context tokens%n", w, h,
                        size[0], size[1], batch, tokens);
                conv.apply();
                conv.warmup(o.warmup(1), () -> timed("warm-up run", () -> unet.forward(x, batch, h, w, t, context,
                        tokens, y)));
                Map<String, Long> byKind = new TreeMap<>();
                UNet.LayerTimer timer = (block, kind, nanos) -> byKind.merge(kind, nanos, Long::sum);
                OpProfile profile = OpProfile.start(5);
                Timing.Runs runs = conv.run(o.runs(3),
                        () -> unet.forward(x, batch, h, w, t, context, tokens, y, timer));
                Map<OpProfile.Category, Double> shares = profile.stop();
                double total = byKind.values().stream().mapToLong(Long::longValue).sum();
                StringBuilder sb = new StringBuilder("time by layer kind:");
                byKind.forEach((k, n) -> sb.append(String.format(Locale.ROOT, " %s %.1f%%", k, 100 * n / total)));
                System.out.println(sb);
                report(runs, Flops.unet(spec, batch, h, w, tokens), peak, shares);
            } catch (CliException e) {
                throw e;
            } catch (Exception e) {
                throw new CliException("bench unet: " + e.getMessage());
            }
        }

        private static UNet load(Source src) {
            try {
                return UNet.load(src.unet());
            } catch (ModelFormatException e) {
                throw new CliException(e.getMessage());
            }
        }
    }

    @Command(name = "vae", mixinStandardHelpOptions = true,
            description = "Time VAE decodes at the family's native size (or --width/--height).")
    static final class VaeBench implements Runnable {
        @Mixin
        Options o;

        @Option(names = {"-b", "--batch"}, paramLabel = "N", description = "batch (default: ${DEFAULT-VALUE})")
        int batch = 1;

        @Option(names = "--vae-tiling", description = "decode in tiles even when the whole image fits the budget")
        boolean tiling;

        @Mixin
        VaeDecoderOption decoder = new VaeDecoderOption();

        @Mixin
        ConvOption conv = new ConvOption();

        @Override
        public void run() {
            if (batch < 1) {
                throw new CliException("--batch must be at least 1, got " + batch);
            }
            if (decoder.decoder != null && !decoder.decoder.equalsIgnoreCase("vae")) {
                TaesdBench.run(o, batch, decoder.decoder);
                return;
            }
            double peak = setUp(o, "vae");
            try (Source src = Source.open(o)) {
                System.out.println("weights: " + src.description());
                Vae vae = timed("load VAE", () -> load(src));
                int[] size = o.size(src.config());
                int h = size[1] / 8;
                int w = size[0] / 8;
                float[] latent = gaussian(new SplittableRandom(o.seed), batch * vae.latentChannels() * h * w, 1);
                VaeTiling mode = tiling ? VaeTiling.always() : VaeTiling.auto();
                System.out.printf(Locale.ROOT, "VAE decode %dx%d, batch %d, tiling %s%n", size[0], size[1], batch,
                        mode.mode());
                conv.apply();
                conv.warmup(o.warmup(1), () -> timed("warm-up run", () -> vae.decode(latent, batch, h, w, mode)));
                OpProfile profile = OpProfile.start(5);
                Timing.Runs runs = conv.run(o.runs(3), () -> vae.decode(latent, batch, h, w, mode));
                report(runs, Flops.vaeDecoder(src.config().vae(), batch, h, w), peak, profile.stop());
            } catch (CliException e) {
                throw e;
            } catch (Exception e) {
                throw new CliException("bench vae: " + e.getMessage());
            }
        }

        private static Vae load(Source src) {
            try {
                return Vae.load(src.vae());
            } catch (ModelFormatException e) {
                throw new CliException(e.getMessage());
            }
        }
    }

    @Command(name = "text", mixinStandardHelpOptions = true,
            description = "Time the family's text encoders on one 77-token prompt.")
    static final class TextBench implements Runnable {
        @Mixin
        Options o;

        @Option(names = {"-p", "--prompt"}, paramLabel = "TEXT", description = "prompt (default: ${DEFAULT-VALUE})")
        String prompt = "a photograph of an astronaut riding a horse on the moon, detailed, 8k";

        @Override
        public void run() {
            double peak = setUp(o, "text");
            try (Source src = Source.open(o)) {
                System.out.println("weights: " + src.description());
                jdiffusion.model.Family family = src.config().family();
                TextConditioner text = timed("load text encoders", () -> TextConditioner.of(family,
                        src.textEncoders()));
                Timing.Runs runs;
                OpProfile profile;
                int warmup = o.warmup(1);
                for (int i = 0; i < warmup; i++) {
                    text.encode(prompt);
                }
                profile = OpProfile.start(2);
                runs = Timing.run(0, o.runs(5), () -> text.encode(prompt));
                List<Flops> parts = src.config().textEncoders().stream().map(t -> Flops.textEncoder(t, 1, 77))
                        .toList();
                report(runs, Flops.sum(parts), peak, profile.stop());
            } catch (CliException e) {
                throw e;
            } catch (Exception e) {
                throw new CliException("bench text: " + e.getMessage());
            }
        }
    }

    @Command(name = "generate", mixinStandardHelpOptions = true,
            description = {"Time whole generations and their peak resident memory.",
                "Without --checkpoint a full-size random fp16 checkpoint is written to a temporary file first"
                        + " (the pipeline maps files) and deleted afterwards."})
    static final class GenerateBench implements Runnable {
        @Mixin
        Options o;

        @Option(names = "--steps", paramLabel = "N", description = "sampling steps (default: ${DEFAULT-VALUE})")
        int steps = 4;

        @Option(names = "--cfg", paramLabel = "SCALE", description = "guidance scale (default: the family's)")
        Double cfg;

        @Option(names = "--sampler", paramLabel = "NAME", description = "sampler (default: ${DEFAULT-VALUE})")
        String sampler = "euler";

        @Option(names = "--vae-tiling", description = "decode in tiles even when the whole image fits the budget")
        boolean tiling;

        @Option(names = "--tmp", paramLabel = "DIR", description = "where the random checkpoint goes (default: "
                + "the system's temporary directory)")
        Path tmp;

        @Mixin
        VaeDecoderOption decoder = new VaeDecoderOption();

        @Override
        public void run() {
            double peak = setUp(o, "generate");
            Path model = o.checkpoint;
            Path written = null;
            try {
                if (model == null) {
                    ModelConfig config = ModelConfig.preset(o.arch);
                    Path dir = tmp != null ? tmp : Path.of(System.getProperty("java.io.tmpdir"));
                    written = Files.createTempFile(dir, "jdiffusion-bench-" + o.arch + "-", ".safetensors");
                    Files.delete(written);
                    Path target = written;
                    timed("write random " + o.arch + " checkpoint (fp16) " + target, () -> {
                        write(config, target, o.seed);
                        return null;
                    });
                    model = written;
                }
                Vae.setDefaultTiling(tiling ? VaeTiling.always() : null);
                jdiffusion.pipeline.TaesdDecoding.use(decoder.decoder, model);
                ModelConfig config = configOf(model);
                int[] size = o.size(config);
                GenerateRequest request = GenerateRequest.builder(model).prompt("a photograph of an astronaut")
                        .size(size[0], size[1]).steps(steps).cfg(cfg).sampler(sampler).seed(o.seed)
                        .threads(o.threads).build();
                int warmup = o.warmup(0);
                for (int i = 0; i < warmup; i++) {
                    generate(request);
                }
                List<GenerateResult> results = new ArrayList<>();
                Timing.Runs runs = Timing.run(0, o.runs(1), () -> results.add(generate(request)));
                for (GenerateResult r : results) {
                    System.out.println("stages: " + r.timings());
                }
                var s = results.getLast().settings();
                System.out.printf(Locale.ROOT, "%s %dx%d, %d steps, %s, cfg %s%n", s.family(), s.width(),
                        s.height(), s.steps(), s.sampler(), s.cfg());
                System.out.printf(Locale.ROOT, "median %.1f s per generation; peak resident memory %s;"
                                + " load average now %.2f (peak FMA rate before: %.1f GFLOP/s)%n", runs.median(),
                        ResidentMemory.format(ResidentMemory.peakBytes()), loadAverage(), peak);
            } catch (CliException e) {
                throw e;
            } catch (GenerateException e) {
                throw new CliException(e.getMessage());
            } catch (OutOfMemoryError e) {
                throw new CliException("bench generate: out of memory (" + e.getMessage() + ") with a heap of "
                        + ResidentMemory.format(Runtime.getRuntime().maxMemory()) + "; peak resident "
                        + ResidentMemory.format(ResidentMemory.peakBytes()));
            } catch (Exception e) {
                throw new CliException("bench generate: " + e);
            } finally {
                Vae.setDefaultTiling(null);
                jdiffusion.pipeline.TaesdDecoding.use(null, null);
                if (written != null) {
                    try {
                        Files.deleteIfExists(written);
                    } catch (java.io.IOException e) {
                        System.err.println("could not delete " + written + ": " + e.getMessage());
                    }
                }
            }
        }

        private static void write(ModelConfig config, Path target, long seed) {
            try {
                RandomCheckpoint.write(config, target, DType.F16, seed);
            } catch (ModelFormatException e) {
                throw new CliException(e.getMessage());
            }
        }

        private static ModelConfig configOf(Path model) {
            try (Checkpoint c = Checkpoint.open(model)) {
                return c.config();
            } catch (ModelFormatException e) {
                throw new CliException(e.getMessage());
            }
        }

        private static GenerateResult generate(GenerateRequest request) {
            return Pipeline.generate(request, ProgressListener.NONE, CancellationToken.none());
        }
    }
}
