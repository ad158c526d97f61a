package jdiffusion.io;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import jdiffusion.model.Family;

/**
 * Every key layout jdiffusion reads, as data: where each component lives in a single-file checkpoint, and how the
 * names of other layouts (diffusers UNet, old transformers CLIP) map onto the canonical LDM / HuggingFace names.
 */
public final class CheckpointLayouts {
    private CheckpointLayouts() {
    }

    /** How a text encoder's tensors are named inside its prefix. */
    public enum TextLayout {
        /** HuggingFace CLIPTextModel names ({@code text_model.encoder.layers.N.self_attn.q_proj.weight}). */
        HF_CLIP,
        /** OpenCLIP names ({@code transformer.resblocks.N.attn.in_proj_weight}, fused q/k/v). */
        OPEN_CLIP
    }

    /** One text encoder of a layout: its name (clip_l, clip_h, clip_g), file prefix and naming scheme. */
    public record TextEncoderSlot(String name, String prefix, TextLayout layout) {
    }

    /** A single-file checkpoint layout: the prefixes of UNet, VAE and text encoders. */
    public record Layout(Family family, String unetPrefix, String vaePrefix, List<TextEncoderSlot> textEncoders) {
        /** The tensor every layout's component must have, used to tell whether a part is present. */
        public String unetMarker() {
            return unetPrefix + UNET_MARKER;
        }

        public String vaeMarker() {
            return vaePrefix + VAE_MARKER;
        }
    }

    public static final String UNET_PREFIX = "model.diffusion_model.";
    public static final String VAE_PREFIX = "first_stage_model.";
    static final String UNET_MARKER = "input_blocks.0.0.weight";
    static final String VAE_MARKER = "decoder.conv_in.weight";

    /** The single-file layouts users download, one per family. */
    public static final List<Layout> CHECKPOINTS = List.of(
            new Layout(Family.SD1, UNET_PREFIX, VAE_PREFIX, List.of(
                    new TextEncoderSlot("clip_l", "cond_stage_model.transformer.", TextLayout.HF_CLIP))),
            new Layout(Family.SD2, UNET_PREFIX, VAE_PREFIX, List.of(
                    new TextEncoderSlot("clip_h", "cond_stage_model.model.", TextLayout.OPEN_CLIP))),
            new Layout(Family.SDXL, UNET_PREFIX, VAE_PREFIX, List.of(
                    new TextEncoderSlot("clip_l", "conditioner.embedders.0.transformer.", TextLayout.HF_CLIP),
                    new TextEncoderSlot("clip_g", "conditioner.embedders.1.model.", TextLayout.OPEN_CLIP))));

    public static Layout layout(Family family) {
        return CHECKPOINTS.stream().filter(l -> l.family() == family).findFirst().orElseThrow();
    }

    /** The tensor that tells a text encoder is present under its prefix. */
    public static String textMarker(TextLayout layout) {
        return switch (layout) {
            case HF_CLIP -> "text_model.embeddings.token_embedding.weight";
            case OPEN_CLIP -> "token_embedding.weight";
        };
    }

    /**
     * CLIP checkpoints saved with transformers before 4.x lack the {@code text_model.} level; these prefixes gain it.
     */
    static final Map<String, String> HF_CLIP_LEGACY = Map.of(
            "embeddings.", "text_model.embeddings.",
            "encoder.", "text_model.encoder.",
            "final_layer_norm.", "text_model.final_layer_norm.");

    /** An HF CLIP text encoder under prefix, in canonical names (legacy names gain {@code text_model.}). */
    static MappedWeights hfClip(SafeTensors file, String prefix) {
        Map<String, String> m = new LinkedHashMap<>();
        for (String n : file.names()) {
            if (!n.startsWith(prefix)) {
                continue;
            }
            String rest = n.substring(prefix.length());
            for (Map.Entry<String, String> e : HF_CLIP_LEGACY.entrySet()) {
                if (rest.startsWith(e.getKey())) {
                    rest = e.getValue() + rest.substring(e.getKey().length());
                    break;
                }
            }
            m.put(rest, n);
        }
        return new MappedWeights(file, m);
    }

    // ---------------------------------------------------------------------------------------------------------
    // diffusers UNet -> original LDM/SGM names

    /** diffusers top-level module -> LDM module. */
    static final Map<String, String> DIFFUSERS_UNET_TOP = Map.of(
            "time_embedding.linear_1", "time_embed.0",
            "time_embedding.linear_2", "time_embed.2",
            "add_embedding.linear_1", "label_emb.0.0",
            "add_embedding.linear_2", "label_emb.0.2",
            "conv_in", "input_blocks.0.0",
            "conv_norm_out", "out.0",
            "conv_out", "out.2");

    /** Inside a res block: diffusers module -> LDM module. */
    static final Map<String, String> DIFFUSERS_RESNET = Map.of(
            "norm1", "in_layers.0",
            "conv1", "in_layers.2",
            "time_emb_proj", "emb_layers.1",
            "norm2", "out_layers.0",
            "conv2", "out_layers.3",
            "conv_shortcut", "skip_connection");

    /** The middle block's parts, in LDM order. */
    static final Map<String, String> DIFFUSERS_MID = Map.of(
            "mid_block.resnets.0", "middle_block.0",
            "mid_block.attentions.0", "middle_block.1",
            "mid_block.resnets.1", "middle_block.2");

    private static final Pattern BLOCK = Pattern.compile(
            "(down_blocks|up_blocks)\\.(\\d+)\\.(resnets|attentions|downsamplers|upsamplers)\\.(\\d+)\\.(.+)");
    private static final Pattern MID = Pattern.compile("(mid_block\\.(?:resnets|attentions)\\.\\d+)\\.(.+)");

    /** Whether a file's names look like a diffusers UNet (conv_in plus down_blocks). */
    public static boolean isDiffusersUnet(Set<String> names) {
        return names.contains("conv_in.weight") && names.stream().anyMatch(n -> n.startsWith("down_blocks."));
    }

    /**
     * Canonical LDM name -> diffusers name for every tensor of a diffusers UNet. The block numbering follows from the
     * structure read off the names (res blocks per level, which up levels have attention), so it serves SD1, SD2 and
     * SDXL at any size and transformer depth.
     */
    public static Map<String, String> diffusersUnetToLdm(Set<String> diffusersNames, String where) throws ModelFormatException {
        int resPerLevel = countIndices(diffusersNames, "down_blocks.0.resnets.");
        if (resPerLevel == 0) {
            throw new ModelFormatException(where + ": diffusers UNet without down_blocks.0.resnets.*");
        }
        Set<Integer> upWithAttention = new TreeSet<>();
        for (String n : diffusersNames) {
            Matcher m = BLOCK.matcher(n);
            if (m.matches() && m.group(1).equals("up_blocks") && m.group(3).equals("attentions")) {
                upWithAttention.add(Integer.parseInt(m.group(2)));
            }
        }
        Map<String, String> out = new LinkedHashMap<>();
        List<String> unknown = new ArrayList<>();
        for (String n : new TreeSet<>(diffusersNames)) {
            String ldm = diffusersToLdm(n, resPerLevel, upWithAttention);
            if (ldm == null) {
                unknown.add(n);
            } else if (out.put(ldm, n) != null) {
                throw new ModelFormatException(where + ": two diffusers tensors map to '" + ldm + "'");
            }
        }
        if (!unknown.isEmpty()) {
            throw new ModelFormatException(where + ": " + unknown.size() + " tensor(s) with names a diffusers UNet does not have, e.g. '"
                    + unknown.getFirst() + "'");
        }
        return out;
    }

    private static String diffusersToLdm(String name, int res, Set<Integer> upWithAttention) {
        int dot = name.lastIndexOf('.');
        String module = name.substring(0, dot);
        String param = name.substring(dot);
        String top = DIFFUSERS_UNET_TOP.get(module);
        if (top != null) {
            return top + param;
        }
        Matcher mid = MID.matcher(name);
        if (mid.matches()) {
            String block = DIFFUSERS_MID.get(mid.group(1));
            if (block == null) {
                return null;
            }
            return block + "." + (block.equals("middle_block.1") ? mid.group(2) : resnetInner(mid.group(2)));
        }
        Matcher m = BLOCK.matcher(name);
        if (!m.matches()) {
            return null;
        }
        int level = Integer.parseInt(m.group(2));
        int j = Integer.parseInt(m.group(4));
        String rest = m.group(5);
        boolean down = m.group(1).equals("down_blocks");
        return switch (m.group(3)) {
            case "resnets" -> (down ? "input_blocks." + ((res + 1) * level + j + 1) : "output_blocks." + ((res + 1) * level + j))
                    + ".0." + resnetInner(rest);
            case "attentions" -> (down ? "input_blocks." + ((res + 1) * level + j + 1) : "output_blocks." + ((res + 1) * level + j))
                    + ".1." + rest;
            case "downsamplers" -> down && j == 0 && rest.startsWith("conv.")
                    ? "input_blocks." + ((res + 1) * (level + 1)) + ".0.op." + rest.substring("conv.".length()) : null;
            case "upsamplers" -> !down && j == 0 && rest.startsWith("conv.")
                    ? "output_blocks." + ((res + 1) * level + res) + "." + (upWithAttention.contains(level) ? 2 : 1) + "." + rest
                    : null;
            default -> null;
        };
    }

    private static String resnetInner(String rest) {
        int dot = rest.indexOf('.');
        if (dot < 0) {
            return rest;
        }
        String mapped = DIFFUSERS_RESNET.get(rest.substring(0, dot));
        return mapped == null ? rest : mapped + rest.substring(dot);
    }

    // ---------------------------------------------------------------------------------------------------------
    // ControlNet: original ControlNet-v1.1 names (control_model.*) and diffusers ControlNetModel names

    /** Where the original layout keeps a ControlNet (ControlNet-v1.1 .pth/.safetensors files). */
    public static final String CONTROLNET_PREFIX = "control_model.";
    /** The hint encoder's first conv: every ControlNet has it, in LDM names. */
    public static final String CONTROLNET_MARKER = "input_hint_block.0.weight";
    static final String DIFFUSERS_CONTROLNET_MARKER = "controlnet_cond_embedding.conv_in.weight";

    /**
     * The ControlNet-only modules of diffusers' ControlNetModel -> LDM (cldm.py) modules; {@code N} and {@code J}
     * stand for an index. The hint encoder's blocks sit at the odd positions' neighbours in LDM's Sequential
     * (SiLUs in between): blocks.J = input_hint_block.(2J + 2), conv_out after the last block.
     */
    static final Map<String, String> DIFFUSERS_CONTROLNET = Map.of(
            "controlnet_down_blocks.N", "zero_convs.N.0",
            "controlnet_mid_block", "middle_block_out.0",
            "controlnet_cond_embedding.conv_in", "input_hint_block.0",
            "controlnet_cond_embedding.blocks.J", "input_hint_block.(2J+2)",
            "controlnet_cond_embedding.conv_out", "input_hint_block.(2B+2)");

    private static final Pattern DIFFUSERS_CN_INDEXED = Pattern.compile("(controlnet_down_blocks|controlnet_cond_embedding\\.blocks)\\.(\\d+)\\.(.+)");

    /** Whether a file's names look like a diffusers ControlNetModel. */
    public static boolean isDiffusersControlNet(Set<String> names) {
        return names.contains(DIFFUSERS_CONTROLNET_MARKER);
    }

    /**
     * Canonical LDM name -> diffusers name for every tensor of a diffusers ControlNetModel: the encoder copy of the
     * UNet through the UNet table, the hint encoder, zero convs and mid-block projection through
     * {@link #DIFFUSERS_CONTROLNET}.
     */
    public static Map<String, String> diffusersControlNetToLdm(Set<String> names, String where) throws ModelFormatException {
        int hintBlocks = countIndices(names, "controlnet_cond_embedding.blocks.");
        Map<String, String> out = new LinkedHashMap<>();
        Set<String> unet = new TreeSet<>();
        for (String n : new TreeSet<>(names)) {
            String ldm = controlNetPart(n, hintBlocks);
            if (ldm == null) {
                unet.add(n);
            } else if (out.put(ldm, n) != null) {
                throw new ModelFormatException(where + ": two diffusers tensors map to '" + ldm + "'");
            }
        }
        for (Map.Entry<String, String> e : diffusersUnetToLdm(unet, where).entrySet()) {
            if (out.put(e.getKey(), e.getValue()) != null) {
                throw new ModelFormatException(where + ": two diffusers tensors map to '" + e.getKey() + "'");
            }
        }
        return out;
    }

    /** The LDM name of a ControlNet-only tensor, or null for the tensors of the UNet encoder copy. */
    private static String controlNetPart(String name, int hintBlocks) {
        Matcher m = DIFFUSERS_CN_INDEXED.matcher(name);
        if (m.matches()) {
            int i = Integer.parseInt(m.group(2));
            return m.group(1).equals("controlnet_down_blocks")
                    ? DIFFUSERS_CONTROLNET.get("controlnet_down_blocks.N").replace("N", Integer.toString(i)) + "." + m.group(3)
                    : "input_hint_block." + (2 * i + 2) + "." + m.group(3);
        }
        int dot = name.lastIndexOf('.');
        if (dot < 0) {
            return null;
        }
        String module = name.substring(0, dot);
        String mapped = DIFFUSERS_CONTROLNET.get(module);
        if (mapped == null) {
            return null;
        }
        return mapped.replace("(2B+2)", Integer.toString(2 * hintBlocks + 2)) + name.substring(dot);
    }

    // ---------------------------------------------------------------------------------------------------------
    // diffusers VAE (AutoencoderKL) -> original LDM names

    /** Module renames that hold anywhere in a diffusers VAE (res block shortcut, output norm, mid block parts). */
    static final Map<String, String> DIFFUSERS_VAE_PARTS = Map.ofEntries(
            Map.entry("conv_shortcut", "nin_shortcut"),
            Map.entry("conv_norm_out", "norm_out"),
            Map.entry("mid_block.resnets.0", "mid.block_1"),
            Map.entry("mid_block.resnets.1", "mid.block_2"),
            Map.entry("mid_block.attentions.0.group_norm", "mid.attn_1.norm"),
            Map.entry("mid_block.attentions.0.to_q", "mid.attn_1.q"),
            Map.entry("mid_block.attentions.0.to_k", "mid.attn_1.k"),
            Map.entry("mid_block.attentions.0.to_v", "mid.attn_1.v"),
            Map.entry("mid_block.attentions.0.to_out.0", "mid.attn_1.proj_out"),
            // diffusers before 0.14 named the attention projections like this
            Map.entry("mid_block.attentions.0.query", "mid.attn_1.q"),
            Map.entry("mid_block.attentions.0.key", "mid.attn_1.k"),
            Map.entry("mid_block.attentions.0.value", "mid.attn_1.v"),
            Map.entry("mid_block.attentions.0.proj_attn", "mid.attn_1.proj_out"));

    private static final Pattern VAE_BLOCK = Pattern.compile(
            "(encoder|decoder)\\.(down_blocks|up_blocks)\\.(\\d+)\\.(resnets\\.(\\d+)|downsamplers\\.0|upsamplers\\.0)\\.(.+)");

    /** Whether a file's names look like a diffusers AutoencoderKL. */
    public static boolean isDiffusersVae(Set<String> names) {
        return names.contains("decoder.conv_in.weight") && names.stream().anyMatch(n -> n.startsWith("decoder.up_blocks."));
    }

    /**
     * Canonical LDM name -> diffusers name for a diffusers AutoencoderKL (e.g. sdxl_vae.safetensors). The decoder's
     * up blocks run in the opposite order (diffusers up_blocks.0 is the lowest resolution, LDM up.0 the highest).
     */
    public static Map<String, String> diffusersVaeToLdm(Set<String> names, String where) throws ModelFormatException {
        int upLevels = countIndices(names, "decoder.up_blocks.");
        Map<String, String> out = new LinkedHashMap<>();
        List<String> unknown = new ArrayList<>();
        for (String n : new TreeSet<>(names)) {
            String ldm = diffusersVaeName(n, upLevels);
            if (ldm == null) {
                unknown.add(n);
            } else if (out.put(ldm, n) != null) {
                throw new ModelFormatException(where + ": two diffusers VAE tensors map to '" + ldm + "'");
            }
        }
        if (!unknown.isEmpty()) {
            throw new ModelFormatException(where + ": " + unknown.size() + " tensor(s) with names a diffusers VAE does not have, e.g. '"
                    + unknown.getFirst() + "'");
        }
        return out;
    }

    private static String diffusersVaeName(String name, int upLevels) {
        if (name.startsWith("quant_conv.") || name.startsWith("post_quant_conv.")) {
            return name;
        }
        int dot = name.indexOf('.');
        if (dot < 0) {
            return null;
        }
        String side = name.substring(0, dot);
        if (!side.equals("encoder") && !side.equals("decoder")) {
            return null;
        }
        Matcher m = VAE_BLOCK.matcher(name);
        if (m.matches()) {
            int level = Integer.parseInt(m.group(3));
            boolean up = m.group(2).equals("up_blocks");
            if (up != side.equals("decoder")) {
                return null;
            }
            String ldmLevel = side + (up ? ".up." + (upLevels - 1 - level) : ".down." + level);
            String part = m.group(5) != null ? ".block." + m.group(5)
                    : up ? ".upsample" : ".downsample";
            return ldmLevel + part + "." + renameVaeParts(m.group(6));
        }
        String rest = name.substring(dot + 1);
        return side + "." + renameVaeParts(rest);
    }

    /** Applies the longest matching module rename at the start of rest, and the res block shortcut anywhere. */
    private static String renameVaeParts(String rest) {
        String best = null;
        for (String from : DIFFUSERS_VAE_PARTS.keySet()) {
            if (rest.startsWith(from + ".") && (best == null || from.length() > best.length())) {
                best = from;
            }
        }
        if (best != null) {
            return DIFFUSERS_VAE_PARTS.get(best) + rest.substring(best.length());
        }
        return rest;
    }

    /** How many distinct indices N appear right after prefix ({@code prefix N.}). */
    static int countIndices(Set<String> names, String prefix) {
        Set<Integer> seen = new TreeSet<>();
        for (String n : names) {
            if (n.startsWith(prefix)) {
                String rest = n.substring(prefix.length());
                int dot = rest.indexOf('.');
                String idx = dot < 0 ? rest : rest.substring(0, dot);
                if (!idx.isEmpty() && idx.chars().allMatch(Character::isDigit)) {
                    seen.add(Integer.parseInt(idx));
                }
            }
        }
        return seen.size();
    }
}
