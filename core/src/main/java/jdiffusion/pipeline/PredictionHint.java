package jdiffusion.pipeline;

import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Pattern;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.sampling.PredictionType;

/**
 * What a model file says about its UNet's prediction beyond the checkpoint layout: the 1-step SDXL-Lightning files
 * predict x0 and say so only in their name ({@code sdxl_lightning_1step_unet_x0.safetensors}); other files carry
 * {@code modelspec.prediction_type} metadata. A UNet file given with {@code --unet} speaks for the UNet first (eps,
 * v or x0), then the checkpoint's name and metadata (x0 only: its eps / v are {@code ModelDetector}'s).
 *
 * @param source human-readable origin, e.g. "UNet file name sdxl_lightning_1step_unet_x0.safetensors"
 */
public record PredictionHint(PredictionType prediction, String source) {
    /** "x0" as a word of the file name: between separators, not inside "x00" or "fox0". */
    private static final Pattern X0_NAME = Pattern.compile("(?i)(?:^|[^a-z0-9])x0(?:[^a-z0-9]|$)");
    private static final String META_KEY = "modelspec.prediction_type";

    /** The hint of the UNet file (when given), else the checkpoint's x0 hint; empty when neither says anything. */
    public static Optional<PredictionHint> of(Path model, Map<String, String> modelMeta, Path unet,
            Map<String, String> unetMeta) {
        if (unet != null) {
            Optional<PredictionHint> h = ofFile("UNet file", unet, unetMeta);
            if (h.isPresent()) {
                return h;
            }
        }
        // eps and v of a checkpoint are ModelDetector's to decide (v_pred key, metadata, SD2's trained-bias probe)
        return ofFile("checkpoint", model, modelMeta).filter(h -> h.prediction() == PredictionType.X0);
    }

    /** Reads only the headers of the files (for a message before loading); unreadable files give no hint. */
    public static Optional<PredictionHint> ofFiles(Path model, Path unet) {
        return of(model, metadata(model), unet, unet == null ? Map.of() : metadata(unet));
    }

    /** The file name first (the Lightning x0 files have no metadata), then its metadata. */
    static Optional<PredictionHint> ofFile(String role, Path file, Map<String, String> meta) {
        String name = file.getFileName().toString();
        if (X0_NAME.matcher(name).find()) {
            return Optional.of(new PredictionHint(PredictionType.X0, role + " name " + name));
        }
        String declared = meta == null ? null : meta.get(META_KEY);
        if (declared == null) {
            return Optional.empty();
        }
        return parse(declared).map(p -> new PredictionHint(p, role + " metadata " + META_KEY + "=" + declared.trim()));
    }

    /** diffusers / modelspec spellings: epsilon, v_prediction, v, x0, sample. */
    static Optional<PredictionType> parse(String value) {
        return switch (value.trim().toLowerCase(Locale.ROOT)) {
            case "eps", "epsilon" -> Optional.of(PredictionType.EPS);
            case "v", "v_prediction", "v-prediction" -> Optional.of(PredictionType.V);
            case "x0", "sample" -> Optional.of(PredictionType.X0);
            default -> Optional.empty();
        };
    }

    private static Map<String, String> metadata(Path file) {
        try (SafeTensors st = SafeTensors.open(file)) {
            return st.metadata();
        } catch (ModelFormatException | RuntimeException e) {
            return Map.of(); // loading reports the problem properly
        }
    }

    /** e.g. "x0 (UNet file name sdxl_lightning_1step_unet_x0.safetensors)". */
    public String describe() {
        return name(prediction) + " (" + source + ")";
    }

    static String name(PredictionType p) {
        return switch (p) {
            case EPS -> "eps";
            case V -> "v";
            case X0 -> "x0";
            case FLOW -> "flow";
        };
    }
}
