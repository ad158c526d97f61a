package jdiffusion.lora;

import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The diffusers names of an LDM/SGM UNet's modules, derived from the UNet's own structure (how many res blocks per
 * level, which blocks hold a transformer), so it works for SD1, SD2 and SDXL at any size:
 * {@code input_blocks.{(R+1)i + j + 1}.0/1} = {@code down_blocks.i.resnets/attentions.j},
 * {@code input_blocks.{(R+1)(i+1)}.0.op} = {@code down_blocks.i.downsamplers.0.conv},
 * {@code output_blocks.{(R+1)i + j}.0/1} = {@code up_blocks.i.resnets/attentions.j} (R+1 blocks per level there),
 * the upsampler being the last sub-module of a level's last output block; middle block sub-modules count resnets and
 * attentions in order; res-block layers are renamed (in_layers.2 = conv1 ...).
 */
public final class UnetLayout {
    private static final Pattern INPUT = Pattern.compile("input_blocks\\.(\\d+)\\.(\\d+)(?:\\.(.+))?");
    private static final Pattern MIDDLE = Pattern.compile("middle_block\\.(\\d+)(?:\\.(.+))?");
    private static final Pattern OUTPUT = Pattern.compile("output_blocks\\.(\\d+)\\.(\\d+)(?:\\.(.+))?");

    private final Set<String> names;
    private final int resPerLevel;

    private UnetLayout(Set<String> names, int resPerLevel) {
        this.names = names;
        this.resPerLevel = resPerLevel;
    }

    /** The layout of the UNet whose canonical (LDM, unprefixed) tensor names are given. */
    public static UnetLayout of(Set<String> ldmNames) {
        int firstDown = -1;
        int lastInput = 0;
        for (String n : ldmNames) {
            Matcher m = INPUT.matcher(n);
            if (m.matches()) {
                int k = Integer.parseInt(m.group(1));
                lastInput = Math.max(lastInput, k);
                if (n.startsWith("input_blocks." + k + ".0.op.") && (firstDown < 0 || k < firstDown)) {
                    firstDown = k;
                }
            }
        }
        return new UnetLayout(ldmNames, firstDown > 0 ? firstDown - 1 : lastInput);
    }

    /** Res blocks per level in the down path (2 in SD1/SD2/SDXL). */
    public int resPerLevel() {
        return resPerLevel;
    }

    /** The diffusers module path for an LDM module path (no .weight), or null when there is none. */
    public String toDiffusers(String module) {
        switch (module) {
            case "time_embed.0": return "time_embedding.linear_1";
            case "time_embed.2": return "time_embedding.linear_2";
            case "label_emb.0.0": return "add_embedding.linear_1";
            case "label_emb.0.2": return "add_embedding.linear_2";
            case "input_blocks.0.0": return "conv_in";
            case "out.0": return "conv_norm_out";
            case "out.2": return "conv_out";
            default: break;
        }
        Matcher m = INPUT.matcher(module);
        if (m.matches()) {
            return input(Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)), m.group(3));
        }
        m = MIDDLE.matcher(module);
        if (m.matches()) {
            return middle(Integer.parseInt(m.group(1)), m.group(2));
        }
        m = OUTPUT.matcher(module);
        if (m.matches()) {
            return output(Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)), m.group(3));
        }
        return null;
    }

    private String input(int block, int sub, String rest) {
        if (block == 0 || rest == null) {
            return null;
        }
        int level = (block - 1) / (resPerLevel + 1);
        int j = (block - 1) % (resPerLevel + 1);
        String base = "down_blocks." + level;
        if (j == resPerLevel) {
            return sub == 0 && (rest.equals("op") || rest.startsWith("op.")) ? base + ".downsamplers.0.conv" + rest.substring(2) : null;
        }
        return switch (sub) {
            case 0 -> resnet(base + ".resnets." + j, rest);
            case 1 -> base + ".attentions." + j + "." + rest;
            default -> null;
        };
    }

    private String middle(int sub, String rest) {
        if (rest == null) {
            return null;
        }
        int attentions = 0;
        for (int s = 0; s < sub; s++) {
            if (isTransformer("middle_block." + s)) {
                attentions++;
            }
        }
        return isTransformer("middle_block." + sub)
                ? "mid_block.attentions." + attentions + "." + rest
                : resnet("mid_block.resnets." + (sub - attentions), rest);
    }

    private String output(int block, int sub, String rest) {
        if (rest == null) {
            return null;
        }
        int level = block / (resPerLevel + 1);
        int j = block % (resPerLevel + 1);
        String base = "up_blocks." + level;
        if (sub == 0) {
            return resnet(base + ".resnets." + j, rest);
        }
        if (isTransformer("output_blocks." + block + "." + sub)) {
            return base + ".attentions." + j + "." + rest;
        }
        return rest.equals("conv") || rest.startsWith("conv.") ? base + ".upsamplers.0." + rest : null;
    }

    private boolean isTransformer(String prefix) {
        return names.contains(prefix + ".proj_in.weight") || names.contains(prefix + ".norm.weight");
    }

    private static String resnet(String base, String rest) {
        String renamed = switch (rest) {
            case "in_layers.0" -> "norm1";
            case "in_layers.2" -> "conv1";
            case "emb_layers.1" -> "time_emb_proj";
            case "out_layers.0" -> "norm2";
            case "out_layers.3" -> "conv2";
            case "skip_connection" -> "conv_shortcut";
            default -> null;
        };
        return renamed == null ? null : base + "." + renamed;
    }
}
