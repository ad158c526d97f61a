package jdiffusion.cli;

import jdiffusion.pipeline.HiresFix;
import picocli.CommandLine.Option;

/** {@code generate}'s hires-fix flags (a picocli mixin): set --hires-scale to run the second pass. */
final class HiresOptions {
    @Option(names = "--hires-scale", paramLabel = "S",
            description = "hires fix: generate at the size given, enlarge by S, refine as img2img (e.g. 2)")
    Double scale;

    @Option(names = "--hires-upscaler", paramLabel = "NAME|FILE",
            description = "latent-bicubic (default), latent-nearest-exact, latent-bilinear, latent-area,"
                    + " latent-bislerp, or an upscale model file (decode, upscale, encode)")
    String upscaler;

    @Option(names = "--hires-steps", paramLabel = "N", description = "second-pass steps (default: --steps)")
    Integer steps;

    @Option(names = "--hires-denoise", paramLabel = "D",
            description = "second-pass denoise in (0, 1] (default: " + HiresFix.DEFAULT_DENOISE + ")")
    Double denoise;

    /** The hires fix asked for, or null when --hires-scale is absent (other hires flags then make no sense). */
    HiresFix toHiresFix() {
        if (scale == null) {
            if (upscaler != null || steps != null || denoise != null) {
                throw new CliException("--hires-upscaler, --hires-steps and --hires-denoise need --hires-scale");
            }
            return null;
        }
        return new HiresFix(scale, upscaler, steps, denoise == null ? HiresFix.DEFAULT_DENOISE : denoise);
    }
}
