package jdiffusion.pipeline;

import java.nio.file.Path;
import java.util.List;
import jdiffusion.io.PngImage;

/**
 * What a generation produced.
 *
 * @param images       one 8-bit RGB image per batch item
 * @param image01      the decoded images in [0, 1], NCHW [B,3,H,W] (before 8-bit conversion)
 * @param latent       the final latent in the space the UNet works in (what {@code --save-latent} writes), NCHW
 *                     [B,4,h,w]
 * @param latentShape  {B, 4, h, w}
 * @param seed         the seed used (the random one when the request had none)
 * @param settings     the resolved settings (defaults filled in)
 * @param files        the PNG files written (empty when the request had no output)
 * @param latentFile   the latent file written, or null
 * @param timings      seconds per stage, in order
 */
public record GenerateResult(List<PngImage> images, float[] image01, float[] latent, int[] latentShape, long seed,
        ResolvedSettings settings, List<Path> files, Path latentFile, Timings timings) {
}
