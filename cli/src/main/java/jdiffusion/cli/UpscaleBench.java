package jdiffusion.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import jdiffusion.bench.Flops;
import jdiffusion.bench.OpProfile;
import jdiffusion.bench.RandomWeights;
import jdiffusion.bench.Timing;
import jdiffusion.io.CheckpointKeys.Init;
import jdiffusion.io.CheckpointKeys.TensorSpec;
import jdiffusion.io.ModelFormatException;
import jdiffusion.model.upscale.UpscaleModel;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code jdiffusion bench upscale}: one upscale-model call on a random image, by default a full-size Real-ESRGAN
 * x4 RRDBNet (23 blocks, 64 features, growth 32) made from random fp16 weights in memory, 512 -> 2048.
 */
@Command(name = "upscale", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Time an upscale model (default: random full-size RRDBNet x4, 512x512 -> 2048x2048).")
final class UpscaleBench implements Runnable {
    @Option(names = {"-m", "--model"}, paramLabel = "FILE", description = "a real upscale model instead")
    Path model;

    @Option(names = {"-W", "--width"}, paramLabel = "PX", description = "input width (default: ${DEFAULT-VALUE})")
    int width = 512;

    @Option(names = {"-H", "--height"}, paramLabel = "PX", description = "input height (default: ${DEFAULT-VALUE})")
    int height = 512;

    @Option(names = "--blocks", paramLabel = "N", description = "random RRDBNet blocks (default: ${DEFAULT-VALUE})")
    int blocks = 23;

    @Option(names = "--features", paramLabel = "N", description = "random RRDBNet features (default: ${DEFAULT-VALUE})")
    int features = 64;

    @Option(names = "--growth", paramLabel = "N", description = "random RRDBNet growth (default: ${DEFAULT-VALUE})")
    int growth = 32;

    @Option(names = "--tile", paramLabel = "PX",
            description = "tile size as ImageUpscaleWithModel (0: the whole image in one call; default: ${DEFAULT-VALUE})")
    int tile = 512;

    @Option(names = "--overlap", paramLabel = "PX", description = "tile overlap (default: ${DEFAULT-VALUE})")
    int overlap = 32;

    @Option(names = {"-t", "--threads"}, paramLabel = "N", description = "worker threads (default: all cores)")
    Integer threads;

    @Option(names = "--runs", paramLabel = "N", description = "timed runs (default: ${DEFAULT-VALUE})")
    int runs = 1;

    @Option(names = "--seed", paramLabel = "N", description = "seed of the random weights and image")
    long seed = 42;

    @Mixin
    PrecisionOption precision = new PrecisionOption();

    @Override
    public void run() {
        if (width < 1 || height < 1 || runs < 1 || blocks < 1 || features < 1 || growth < 1 || tile < 0) {
            throw new CliException("sizes, --runs, --blocks, --features and --growth must be positive, --tile >= 0");
        }
        double peak = ModelBench.setUp(threadsOnly(), "upscale");
        UpscaleModel m = ModelBench.timed("load + pack model", this::load);
        System.out.printf(Locale.ROOT, "model: %s %s x%d; input %dx%d -> %dx%d, tile %s%n", m.architecture(),
                m.tags(), m.scale(), width, height, width * m.scale(), height * m.scale(),
                tile == 0 ? "none" : tile + " overlap " + overlap);
        float[] image = new float[3 * width * height];
        SplittableRandom rnd = new SplittableRandom(seed);
        for (int i = 0; i < image.length; i++) {
            image[i] = (float) rnd.nextDouble();
        }
        int t = tile == 0 ? Math.max(width, height) : tile;
        int ov = tile == 0 ? 0 : overlap;
        // warm the JIT on a small image first: the Vector API runs boxed until C2 has compiled the kernels
        ModelBench.timed("warm-up (64x64)", () -> m.upscale(java.util.Arrays.copyOf(image, 3 * 64 * 64), 64, 64,
                true));
        OpProfile profile = OpProfile.start(20);
        Timing.Runs r = Timing.run(0, runs, () -> m.upscaleTiled(image, 1, height, width, t, t, ov));
        double macs = 0;
        for (int[] p : tiles(t, ov)) {
            macs += m.macs(p[0], p[1]);
        }
        System.out.println("FLOPs: nominal (the 3x3 convolutions after each nearest x2 counted at the upsampled size,"
                + " as PyTorch runs them; jdiffusion folds them into 2x2 phase convolutions, 4/9 of that work)");
        ModelBench.report(r, Flops.convolutions(macs, 0), peak, profile.stop());
    }

    /** The tile sizes tiled_scale runs (h, w), or the whole image. */
    private List<int[]> tiles(int t, int ov) {
        List<int[]> out = new ArrayList<>();
        if (height <= t && width <= t) {
            out.add(new int[] {height, width});
            return out;
        }
        for (int y : positions(height, t, ov)) {
            for (int x : positions(width, t, ov)) {
                int py = Math.max(0, Math.min(height - ov, y));
                int px = Math.max(0, Math.min(width - ov, x));
                out.add(new int[] {Math.min(t, height - py), Math.min(t, width - px)});
            }
        }
        return out;
    }

    private static List<Integer> positions(int size, int tile, int overlap) {
        List<Integer> p = new ArrayList<>();
        if (size <= tile) {
            p.add(0);
            return p;
        }
        for (int i = 0; i < size - overlap; i += tile - overlap) {
            p.add(i);
        }
        return p;
    }

    private ModelBench.Options threadsOnly() {
        ModelBench.Options o = new ModelBench.Options();
        o.threads = threads;
        o.precision = precision;
        o.width = 512;
        o.height = 512;
        return o;
    }

    private UpscaleModel load() {
        try {
            if (model != null) {
                return UpscaleModel.open(model);
            }
            return UpscaleModel.load(RandomWeights.of(rrdbNet(blocks, features, growth), "", seed));
        } catch (ModelFormatException e) {
            throw new CliException(e.getMessage());
        }
    }

    /** The tensors of a Real-ESRGAN x4 RRDBNet (BasicSR names). */
    static List<TensorSpec> rrdbNet(int nb, int nf, int gc) {
        List<TensorSpec> t = new ArrayList<>();
        conv(t, "conv_first", 3, nf);
        for (int b = 0; b < nb; b++) {
            for (int k = 1; k <= 3; k++) {
                for (int j = 1; j <= 5; j++) {
                    conv(t, "body." + b + ".rdb" + k + ".conv" + j, nf + (j - 1) * gc, j < 5 ? gc : nf);
                }
            }
        }
        conv(t, "conv_body", nf, nf);
        conv(t, "conv_up1", nf, nf);
        conv(t, "conv_up2", nf, nf);
        conv(t, "conv_hr", nf, nf);
        conv(t, "conv_last", nf, 3);
        return t;
    }

    private static void conv(List<TensorSpec> t, String name, int in, int out) {
        t.add(new TensorSpec(name + ".weight", new long[] {out, in, 3, 3}, Init.NORMAL));
        t.add(new TensorSpec(name + ".bias", new long[] {out}, Init.ZERO));
    }
}
