package jdiffusion.lora;

import java.util.List;

/**
 * Which family a LoRA was made for, from its modules alone. In order: a second text encoder means SDXL; the
 * cross-attention context width (to_k/to_v input of attn2) is 768 for SD1, 1024 for SD2, 2048 for SDXL at real
 * sizes; then structure: SD1/SD2 have attention at the first UNet level (down_blocks.0.attentions,
 * input_blocks.1/2.1) and depth-1 transformers, SDXL has none at level 0, deeper transformers and an ADM label
 * embedding; a kohya file whose text encoder is plain {@code lora_te_} is SD1/SD2 (SDXL files say te1/te2).
 */
final class FamilyGuess {
    private FamilyGuess() {
    }

    static Family of(List<LoraModule> modules) {
        if (modules.stream().anyMatch(m -> m.component() == Component.TE2)) {
            return Family.SDXL;
        }
        Family byContext = byContextWidth(modules);
        if (byContext != Family.UNKNOWN) {
            return byContext;
        }
        boolean sd = false;
        boolean xl = false;
        for (LoraModule m : modules) {
            if (m.component() != Component.UNET) {
                continue;
            }
            String p = "_" + flat(m.path()) + "_";
            sd |= p.contains("_down_blocks_0_attentions_") || p.contains("_input_blocks_1_1_")
                    || p.contains("_input_blocks_2_1_");
            xl |= p.contains("_transformer_blocks_1_") || p.contains("_label_emb_") || p.contains("_add_embedding_");
        }
        if (sd != xl) {
            return sd ? Family.SD1_OR_SD2 : Family.SDXL;
        }
        if (modules.stream().anyMatch(m -> m.component() == Component.TE1 && m.name().startsWith("lora_te_"))) {
            return Family.SD1_OR_SD2;
        }
        return Family.UNKNOWN;
    }

    private static Family byContextWidth(List<LoraModule> modules) {
        for (LoraModule m : modules) {
            String p = flat(m.path());
            if (m.component() == Component.UNET && (p.endsWith("attn2_to_k") || p.endsWith("attn2_to_v"))) {
                return switch (m.cols()) {
                    case 768 -> Family.SD1;
                    case 1024 -> Family.SD2;
                    case 2048 -> Family.SDXL;
                    default -> Family.UNKNOWN;
                };
            }
        }
        return Family.UNKNOWN;
    }

    static String flat(String path) {
        return path.replace('.', '_');
    }
}
