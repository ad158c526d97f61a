package jdiffusion.lora;

import com.fasterxml.jackson.databind.JsonNode;
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

    static JsonNode manifest(Path file) {
        return Golden.json(file);
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
