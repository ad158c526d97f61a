package jdiffusion.cli;

import java.nio.file.Path;
import java.util.concurrent.Callable;
import jdiffusion.pipeline.GenerateException;
import jdiffusion.pipeline.ImageUpscale;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code jdiffusion upscale -m MODEL -i in.png -o out.png}: an upscale model over an image, in tiles. */
@Command(name = "upscale", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Upscale an image with an ESRGAN / Real-ESRGAN / SRVGGNetCompact model (as ComfyUI's"
                + " ImageUpscaleWithModel: overlapping tiles blended, output truncated to 8 bits)."})
public final class UpscaleCommand implements Callable<Integer> {
    @Option(names = {"-m", "--model"}, required = true, paramLabel = "FILE", description = "upscale model")
    Path model;

    @Option(names = {"-i", "--input"}, required = true, paramLabel = "PNG", description = "image to upscale")
    Path input;

    @Option(names = {"-o", "--output"}, paramLabel = "PNG",
            description = "output image (default: upscaled.png; never overwritten: a counter is added)")
    Path output = Path.of("upscaled.png");

    @Option(names = "--tile", paramLabel = "PX", description = "tile size in input pixels, 0 = whole image"
            + " (default: " + ImageUpscale.DEFAULT_TILE + ")")
    int tile = ImageUpscale.DEFAULT_TILE;

    @Option(names = "--overlap", paramLabel = "PX",
            description = "tile overlap in input pixels (default: " + ImageUpscale.DEFAULT_OVERLAP + ")")
    int overlap = ImageUpscale.DEFAULT_OVERLAP;

    @Option(names = {"-t", "--threads"}, paramLabel = "N", description = "compute threads (default: all cores)")
    Integer threads;

    @Override
    public Integer call() {
        if (threads != null && threads < 1) {
            throw new CliException("--threads must be at least 1, got " + threads);
        }
        long t0 = System.nanoTime();
        Path written;
        try {
            written = ImageUpscale.file(model, input, output, tile, overlap, threads);
        } catch (GenerateException e) {
            throw new CliException(e.getMessage());
        } catch (OutOfMemoryError e) {
            throw new CliException("out of memory (" + e.getMessage() + "); use smaller --tile or give the JVM more"
                    + " with JDIFFUSION_JAVA_OPTS=-Xmx<size>", 1);
        }
        System.out.println("wrote " + written);
        System.err.printf(java.util.Locale.ROOT, "upscaled in %.2f s%n", (System.nanoTime() - t0) / 1e9);
        return 0;
    }
}
