package jdiffusion.model.mmdit;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;

/**
 * Which SD3 model a file is, under the names Stability's API uses for them ({@code model: sd3.5-medium} ...): read
 * from the MMDiT's tensors (MMDiT-X dual attention: 3.5 Medium; QK RMS-norm without it: 3.5 Large; neither: SD3
 * Medium). Large Turbo has Large's architecture, so it is told by its name: "turbo" in the file name or in the
 * file's metadata (Stability's {@code modelspec.*} fields).
 */
public enum Sd3Variant {
    SD3_MEDIUM("sd3-medium", "SD3 Medium"),
    SD35_MEDIUM("sd3.5-medium", "SD3.5 Medium"),
    SD35_LARGE("sd3.5-large", "SD3.5 Large"),
    SD35_LARGE_TURBO("sd3.5-large-turbo", "SD3.5 Large Turbo");

    private final String apiName;
    private final String title;

    Sd3Variant(String apiName, String title) {
        this.apiName = apiName;
        this.title = title;
    }

    /** Stability's model name ({@code sd3.5-large-turbo}). */
    public String apiName() {
        return apiName;
    }

    /** As people call it ("SD3.5 Large Turbo"). */
    public String title() {
        return title;
    }

    /** Whether this is a few-step distilled model (sampled with the sd35-turbo preset: 4 steps, cfg 1). */
    public boolean turbo() {
        return this == SD35_LARGE_TURBO;
    }

    /** The variant for Stability's model name, case-insensitive; empty for any other name. */
    public static Optional<Sd3Variant> byApiName(String name) {
        if (name == null) {
            return Optional.empty();
        }
        String n = name.trim().toLowerCase(Locale.ROOT);
        return Arrays.stream(values()).filter(v -> v.apiName.equals(n)).findFirst();
    }

    /** The variant of an MMDiT of this configuration, in a file of this name with this metadata. */
    public static Sd3Variant of(MMDiTConfig mmdit, String fileName, Map<String, String> metadata) {
        if (!mmdit.dualAttentionBlocks().isEmpty()) {
            return SD35_MEDIUM;
        }
        if (!mmdit.qkNorm()) {
            return SD3_MEDIUM;
        }
        boolean turbo = fileName.toLowerCase(Locale.ROOT).contains("turbo");
        for (Map.Entry<String, String> e : metadata.entrySet()) {
            if (e.getKey().startsWith("modelspec.") && e.getValue() != null
                    && e.getValue().toLowerCase(Locale.ROOT).contains("turbo")) {
                turbo = true;
            }
        }
        return turbo ? SD35_LARGE_TURBO : SD35_LARGE;
    }

    /**
     * The variant of a safetensors file (header only; Stability's single files and MMDiT-only files under
     * {@code model.diffusion_model.}); empty when the file holds no MMDiT. A damaged file fails with one line.
     */
    public static Optional<Sd3Variant> of(Path file) throws ModelFormatException {
        try (SafeTensors f = SafeTensors.open(file)) {
            if (!Sd3Config.isSd3(f)) {
                return Optional.empty();
            }
            MMDiTConfig m;
            try {
                m = MMDiTConfig.detect(Weights.prefixed(f, Sd3Config.MMDIT_PREFIX));
            } catch (ModelFormatException e) {
                throw new ModelFormatException(file + ": " + e.getMessage(), e);
            }
            return Optional.of(of(m, file.getFileName().toString(), f.metadata()));
        }
    }
}
