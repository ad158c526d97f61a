package jdiffusion.lora;

import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import jdiffusion.io.Weights;

/**
 * Every LoRA-patchable module of one component by its flattened name (dots as underscores, the kohya spelling,
 * which also matches a dotted diffusers/PEFT path once flattened). The UNet is listed under its LDM/SGM names and
 * its diffusers names; a text encoder under its HuggingFace CLIP names, and, when it is an OpenCLIP tower in its raw
 * layout, under the HF names too, q/k/v pointing at thirds of the fused in_proj_weight.
 */
final class TargetTable {
    private static final Pattern RESBLOCK = Pattern.compile("transformer\\.resblocks\\.(\\d+)\\.(.+)");

    private TargetTable() {
    }

    static Map<String, LoraTarget> forComponent(Component c, Weights w) {
        return c == Component.UNET ? unet(w) : textEncoder(w);
    }

    static Map<String, LoraTarget> unet(Weights w) {
        Map<String, LoraTarget> table = new HashMap<>();
        UnetLayout layout = UnetLayout.of(w.names());
        for (String name : w.names()) {
            if (!name.endsWith(".weight")) {
                continue;
            }
            String module = name.substring(0, name.length() - ".weight".length());
            LoraTarget t = whole(w, name);
            table.put(flat(module), t);
            String diffusers = layout.toDiffusers(module);
            if (diffusers != null) {
                table.put(flat(diffusers), t);
            }
        }
        return table;
    }

    static Map<String, LoraTarget> textEncoder(Weights w) {
        Map<String, LoraTarget> table = new HashMap<>();
        for (String name : w.names()) {
            if (name.endsWith(".weight")) {
                table.put(flat(name.substring(0, name.length() - ".weight".length())), whole(w, name));
            }
            Matcher m = RESBLOCK.matcher(name);
            if (m.matches()) {
                addOpenClip(table, w, name, "text_model.encoder.layers." + m.group(1) + ".", m.group(2));
            }
        }
        return table;
    }

    /** HF CLIP names for one raw OpenCLIP resblock tensor. */
    private static void addOpenClip(Map<String, LoraTarget> table, Weights w, String name, String hf, String rest) {
        switch (rest) {
            case "attn.in_proj_weight" -> {
                int[] s = w.shape(name);
                int width = s[0] / 3;
                String[] parts = {"q_proj", "k_proj", "v_proj"};
                for (int i = 0; i < 3; i++) {
                    table.put(flat(hf + "self_attn." + parts[i]), new LoraTarget(name, i * width, width, s[1]));
                }
            }
            case "attn.out_proj.weight" -> table.put(flat(hf + "self_attn.out_proj"), whole(w, name));
            case "mlp.c_fc.weight" -> table.put(flat(hf + "mlp.fc1"), whole(w, name));
            case "mlp.c_proj.weight" -> table.put(flat(hf + "mlp.fc2"), whole(w, name));
            default -> {
            }
        }
    }

    private static LoraTarget whole(Weights w, String name) {
        int[] s = w.shape(name);
        return new LoraTarget(name, 0, s.length == 0 ? 1 : s[0], s.length == 0 ? 1 : Tensors.numel(s, 1));
    }

    static String flat(String path) {
        return path.replace('.', '_');
    }
}
