package jdiffusion.server;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import jdiffusion.io.SafeTensors;
import jdiffusion.workflow.ModelPaths;

/**
 * Which latent projection a sampler's previews need. The engine's progress event carries the latent but not the
 * model, so this follows the sampler's {@code model} link up the prompt to the loader and reads the file's tensor
 * names (SDXL has the UNet's {@code label_emb}, the ADM input that SD1 lacks). Answers are cached per file.
 */
final class PreviewFormats {
    private final ModelPaths paths;
    private final Map<Path, LatentPreview.Format> byFile = new ConcurrentHashMap<>();

    PreviewFormats(ModelPaths paths) {
        this.paths = paths;
    }

    LatentPreview.Format forNode(JsonNode prompt, String nodeId) {
        Set<String> seen = new HashSet<>();
        String id = nodeId;
        while (id != null && seen.add(id)) {
            JsonNode inputs = prompt.path(id).path("inputs");
            if (inputs.path("ckpt_name").isTextual()) {
                return forFile("checkpoints", inputs.path("ckpt_name").asText());
            }
            if (inputs.path("unet_name").isTextual()) {
                return forFile("diffusion_models", inputs.path("unet_name").asText());
            }
            JsonNode model = inputs.path("model");
            id = model.isArray() && model.size() == 2 ? model.get(0).asText() : null;
        }
        return LatentPreview.SD15;
    }

    private LatentPreview.Format forFile(String kind, String name) {
        try {
            Path file = paths.resolve(kind, name);
            return byFile.computeIfAbsent(file, PreviewFormats::detect);
        } catch (RuntimeException e) {
            return LatentPreview.SD15;
        }
    }

    private static LatentPreview.Format detect(Path file) {
        try (SafeTensors st = SafeTensors.open(file)) {
            boolean sdxl = st.names().stream().anyMatch(n -> n.contains("label_emb") || n.contains("add_embedding"));
            return sdxl ? LatentPreview.SDXL : LatentPreview.SD15;
        } catch (java.io.IOException | RuntimeException e) {
            return LatentPreview.SD15;
        }
    }
}
