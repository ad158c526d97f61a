package jdiffusion.pipeline;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import jdiffusion.io.ModelFormatException;
import jdiffusion.model.Family;
import jdiffusion.model.Taesd;

/**
 * The fast decoder ({@code --vae-decoder taesd}): the final latents are decoded by TAESD instead of the checkpoint's
 * VAE. {@code taesd} picks the family's file ({@code taesd_decoder}, {@code taesdxl_decoder}, {@code taesd3_decoder}
 * .safetensors) in a {@code vae_approx} folder beside the model or beside its folder (ComfyUI's
 * {@code models/vae_approx}); any other value is a TAESD file (ComfyUI decoder or diffusers AutoencoderTiny).
 * Process-wide, like the VAE tiling (the CLI sets it once).
 */
public final class TaesdDecoding {
    private static volatile String spec;
    private static volatile Path model;
    private static volatile Taesd cached;
    private static volatile Path cachedFile;

    private TaesdDecoding() {
    }

    /** Decodes with TAESD from now on (spec "taesd" or a file; null: back to the checkpoint's VAE). */
    public static void use(String decoder, Path modelFile) {
        spec = decoder == null || decoder.equalsIgnoreCase("vae") ? null : decoder;
        model = modelFile;
    }

    public static boolean active() {
        return spec != null;
    }

    /** The name ComfyUI gives the family's TAESD ({@code taesd}, {@code taesdxl}, {@code taesd3}). */
    public static String nameFor(Family family) {
        return switch (family) {
            case SDXL -> "taesdxl";
            case SD3 -> "taesd3";
            default -> "taesd";
        };
    }

    /** Folders searched for vae_approx files of a model: {@code <model dir>/vae_approx}, {@code <model dir>/../vae_approx}. */
    public static List<Path> approxDirs(Path modelFile) {
        List<Path> dirs = new ArrayList<>();
        Path dir = modelFile == null ? null : modelFile.toAbsolutePath().getParent();
        if (dir != null) {
            dirs.add(dir.resolve("vae_approx"));
            if (dir.getParent() != null) {
                dirs.add(dir.getParent().resolve("vae_approx"));
            }
        }
        return dirs;
    }

    /** The decoder file for a family (spec "taesd") or the file spec names; a clear error when there is none. */
    public static Path decoderFile(String spec, Path modelFile, Family family) {
        if (!spec.equalsIgnoreCase("taesd")) {
            Path p = Path.of(spec);
            if (!Files.isRegularFile(p)) {
                throw new GenerateException("--vae-decoder: no such file " + p + " (give 'taesd' or a TAESD file)");
            }
            return p;
        }
        String file = nameFor(family) + "_decoder.safetensors";
        for (Path d : approxDirs(modelFile)) {
            if (Files.isRegularFile(d.resolve(file))) {
                return d.resolve(file);
            }
        }
        throw new GenerateException("--vae-decoder taesd: no " + file + " in " + approxDirs(modelFile));
    }

    /** The image in [0, 1] (clamped, NCHW) of VAE-space latents, or null when TAESD decoding is off. */
    static float[] decodeToUnit(ResolvedSettings s, float[] rawLatent) {
        String sp = spec;
        if (sp == null) {
            return null;
        }
        Family family = Family.valueOf(s.family());
        Taesd t = load(decoderFile(sp, model, family));
        float[] x = t.decode(family.latentFormat().toModel(rawLatent), s.batch(), s.latentHeight(), s.latentWidth());
        for (int i = 0; i < x.length; i++) {
            x[i] = Math.min(1f, Math.max(0f, x[i]));
        }
        return x;
    }

    private static synchronized Taesd load(Path file) {
        if (cached == null || !file.equals(cachedFile)) {
            try {
                cached = Taesd.open(file);
            } catch (ModelFormatException e) {
                throw new GenerateException(e.getMessage());
            }
            if (!cached.canDecode()) {
                throw new GenerateException("--vae-decoder: " + file + " holds no TAESD decoder");
            }
            cachedFile = file;
        }
        return cached;
    }
}
