package jdiffusion.lora;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import jdiffusion.Golden;
import jdiffusion.io.OpenClipWeights;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;

/** Opens the golden tiny checkpoints as the components a LoRA patches (te2 in its raw OpenCLIP layout). */
final class GoldenModels {
    private GoldenModels() {
    }

    /** Some manifests hold -Infinity (log of sigma 0), which Golden.json's strict parser rejects. */
    private static final ObjectMapper JSON = JsonMapper.builder().enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS).build();

    static JsonNode manifest(Path file) {
        try {
            return JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static boolean isSdxl(SafeTensors ckpt) {
        return ckpt.contains("conditioner.embedders.1.model.ln_final.weight");
    }

    /** The checkpoint a manifest names ("models/tiny-sd1-fp32.safetensors (or the fp16 file ...)"); fp16 twin if the fp32 file is not shipped. */
    static Path checkpoint(JsonNode params) {
        String named = params.get("model").asText().split(" ")[0];
        Path p = Golden.dir().resolve(named);
        if (!Files.exists(p)) {
            p = Golden.dir().resolve(named.replace("-fp32", "-fp16"));
        }
        return p;
    }

    /** The components with te2 as the text engineer's HF-named view (what the pipeline uses). */
    static ModelComponents components(SafeTensors ckpt) {
        return components(ckpt, true);
    }

    /** hfTe2 false: te2 in its raw OpenCLIP layout (fused in_proj_weight). */
    static ModelComponents components(SafeTensors ckpt, boolean hfTe2) {
        Weights unet = Weights.prefixed(ckpt, "model.diffusion_model.");
        if (isSdxl(ckpt)) {
            Weights te2 = Weights.prefixed(ckpt, "conditioner.embedders.1.model.");
            return new ModelComponents(unet, Weights.prefixed(ckpt, "conditioner.embedders.0.transformer."),
                    hfTe2 ? OpenClipWeights.of(te2) : te2);
        }
        return new ModelComponents(unet, Weights.prefixed(ckpt, "cond_stage_model.transformer."), null);
    }
}
