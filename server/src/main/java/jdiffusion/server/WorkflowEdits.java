package jdiffusion.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import jdiffusion.workflow.Nodes;

/**
 * Changes to a prompt built by {@link Workflows#prompt} that the compatibility APIs ask for: LoRAs from A1111's
 * {@code <lora:name:weight>} prompt tags (a LoraLoader chain feeding the sampler and both text encoders), a VAE file,
 * CLIP skip, a PreviewImage instead of SaveImage (A1111's {@code save_images: false}), and the inpainting mask hook.
 */
final class WorkflowEdits {
    /** {@code <lora:name>}, {@code <lora:name:w>}, {@code <lora:name:te:unet>}; also te= / unet= named weights. */
    private static final Pattern LORA = Pattern.compile("<lora:([^:>]+)((?::[^:>]*)*)>");

    /** A LoRA asked for in a prompt: text-encoder and UNet strengths (A1111: te first, unet defaults to te). */
    record LoraTag(String name, double te, double unet) {
    }

    /** The prompt text without its LoRA tags, and the tags. */
    record Parsed(String text, List<LoraTag> loras) {
    }

    private WorkflowEdits() {
    }

    static Parsed parseLoras(String prompt) {
        List<LoraTag> out = new ArrayList<>();
        Matcher m = LORA.matcher(prompt == null ? "" : prompt);
        StringBuilder text = new StringBuilder();
        while (m.find()) {
            String name = m.group(1).trim();
            Double te = null;
            Double unet = null;
            List<Double> positional = new ArrayList<>();
            for (String part : m.group(2).split(":")) {
                if (part.isBlank()) {
                    continue;
                }
                String p = part.trim();
                try {
                    if (p.startsWith("te=")) {
                        te = Double.parseDouble(p.substring(3));
                    } else if (p.startsWith("unet=")) {
                        unet = Double.parseDouble(p.substring(5));
                    } else {
                        positional.add(Double.parseDouble(p));
                    }
                } catch (NumberFormatException e) {
                    throw ApiError.status(400, "bad LoRA weight '" + p + "' in " + m.group());
                }
            }
            if (te == null) {
                te = positional.isEmpty() ? 1.0 : positional.get(0);
            }
            if (unet == null) {
                unet = positional.size() > 1 ? positional.get(1) : te;
            }
            out.add(new LoraTag(name, te, unet));
            m.appendReplacement(text, "");
        }
        m.appendTail(text);
        return new Parsed(text.toString().replaceAll("\\s{2,}", " ").replaceAll("\\s+,", ",").trim(), out);
    }

    /**
     * Inserts one LoraLoader per file after the checkpoint (node 4): the sampler's model and the text encoders' clip
     * then come from the last one.
     */
    static void addLoras(ObjectNode prompt, List<String> files, List<LoraTag> tags) {
        String model = "4";
        String clip = "4";
        int clipSlot = 1;
        for (int i = 0; i < files.size(); i++) {
            String id = "30" + i;
            ObjectNode in = node(prompt, id, "LoraLoader");
            link(in, "model", model, 0);
            link(in, "clip", clip, clipSlot);
            in.put("lora_name", files.get(i));
            in.put("strength_model", tags.get(i).unet());
            in.put("strength_clip", tags.get(i).te());
            model = id;
            clip = id;
            clipSlot = 1;
        }
        if (files.isEmpty()) {
            return;
        }
        for (var e : prompt.properties()) {
            ObjectNode inputs = (ObjectNode) e.getValue().path("inputs");
            if (e.getKey().startsWith("30")) {
                continue;
            }
            if (isLink(inputs.get("model"), "4", 0)) {
                link(inputs, "model", model, 0);
            }
            if (isLink(inputs.get("clip"), "4", 1)) {
                link(inputs, "clip", clip, 1);
            }
        }
    }

    /** CLIPSetLastLayer(-n) before the text encoders; A1111's CLIP_stop_at_last_layers n (1 = all layers). */
    static void clipSkip(ObjectNode prompt, int stopAtLastLayers) {
        if (stopAtLastLayers <= 1) {
            return;
        }
        String[] source = null;
        for (var e : prompt.properties()) {
            if (e.getValue().path("class_type").asText().equals("CLIPTextEncode")) {
                JsonNode c = e.getValue().path("inputs").path("clip");
                source = new String[] {c.get(0).asText(), c.get(1).asText()};
            }
        }
        if (source == null) {
            return;
        }
        ObjectNode skip = node(prompt, "40", "CLIPSetLastLayer");
        link(skip, "clip", source[0], Integer.parseInt(source[1]));
        skip.put("stop_at_clip_layer", -stopAtLastLayers);
        for (var e : prompt.properties()) {
            if (e.getValue().path("class_type").asText().equals("CLIPTextEncode")) {
                link((ObjectNode) e.getValue().path("inputs"), "clip", "40", 0);
            }
        }
    }

    /** A VAELoader feeding every VAE input (decode and encode) instead of the checkpoint's VAE. */
    static void vae(ObjectNode prompt, String vaeFile) {
        if (vaeFile == null) {
            return;
        }
        node(prompt, "41", "VAELoader").put("vae_name", vaeFile);
        for (var e : prompt.properties()) {
            ObjectNode inputs = (ObjectNode) e.getValue().path("inputs");
            if (isLink(inputs.get("vae"), "4", 2)) {
                link(inputs, "vae", "41", 0);
            }
        }
    }

    /** The save node becomes a PreviewImage (temp folder): A1111's API default is not to keep the images. */
    static void previewOnly(ObjectNode prompt) {
        ObjectNode save = (ObjectNode) prompt.get(Workflows.SAVE_NODE);
        save.put("class_type", "PreviewImage");
        ((ObjectNode) save.get("inputs")).remove("filename_prefix");
    }

    /**
     * The inpainting hook: an img2img prompt (LoadImage 10, VAEEncode 11, KSampler 3) gets a mask image stored in
     * input/ (its transparent pixels are the area to repaint, as LoadImage's MASK output reads them). When the engine
     * has ComfyUI's {@code SetLatentNoiseMask} node (the inpainting feature), the sampler's latent goes through it; until
     * then the mask is not applied and the request is plain img2img. Returns whether the mask is applied.
     */
    static boolean inpaintHook(ObjectNode prompt, String maskImage) {
        if (maskImage == null || Nodes.get("SetLatentNoiseMask") == null || !prompt.has("11")) {
            return false;
        }
        node(prompt, "20", "LoadImage").put("image", maskImage);
        ObjectNode set = node(prompt, "21", "SetLatentNoiseMask");
        link(set, "samples", "11", 0);
        link(set, "mask", "20", 1);
        link((ObjectNode) prompt.get("3").get("inputs"), "latent_image", "21", 0);
        return true;
    }

    private static boolean isLink(JsonNode v, String node, int slot) {
        return v != null && v.isArray() && v.size() == 2 && v.get(0).asText().equals(node) && v.get(1).asInt() == slot;
    }

    private static ObjectNode node(ObjectNode prompt, String id, String classType) {
        ObjectNode n = prompt.putObject(id);
        n.put("class_type", classType);
        return n.putObject("inputs");
    }

    private static void link(ObjectNode inputs, String name, String source, int slot) {
        ArrayNode a = inputs.putArray(name);
        a.add(source).add(slot);
    }

    static String lower(String s) {
        return s.toLowerCase(Locale.ROOT);
    }
}
