package jdiffusion.server;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Locale;
import java.util.Map;
import jdiffusion.sampling.Samplers;
import jdiffusion.sampling.Schedulers;

/**
 * API-format prompts built from simple settings (what the AUTOMATIC1111 and Stability endpoints receive), so that
 * every request runs through the same queue and engine as a ComfyUI client's. Also maps A1111's sampler and
 * scheduler names ("DPM++ 2M Karras") onto ComfyUI's.
 */
final class Workflows {
    /** One generation's settings; initImage is an input/ file name for img2img, else null. */
    record Settings(String checkpoint, String prompt, String negative, int width, int height, int steps, double cfg,
            String sampler, String scheduler, long seed, int batch, double denoise, String initImage,
            String filenamePrefix) {
    }

    static final String SAVE_NODE = "9";

    private static final Map<String, String> A1111_SAMPLERS = Map.ofEntries(
            Map.entry("euler a", "euler_ancestral"), Map.entry("euler", "euler"), Map.entry("lms", "lms"),
            Map.entry("heun", "heun"), Map.entry("dpm2", "dpm_2"), Map.entry("dpm2 a", "dpm_2_ancestral"),
            Map.entry("dpm++ 2s a", "dpmpp_2s_ancestral"), Map.entry("dpm++ 2m", "dpmpp_2m"),
            Map.entry("dpm++ sde", "dpmpp_sde"), Map.entry("dpm++ 2m sde", "dpmpp_2m_sde"),
            Map.entry("dpm++ 3m sde", "dpmpp_3m_sde"), Map.entry("dpm fast", "dpm_fast"),
            Map.entry("dpm adaptive", "dpm_adaptive"), Map.entry("ddim", "ddim"), Map.entry("unipc", "uni_pc"),
            Map.entry("lcm", "lcm"), Map.entry("ddpm", "ddpm"), Map.entry("deis", "deis"),
            Map.entry("ipndm", "ipndm"), Map.entry("res multistep", "res_multistep"));

    private static final Map<String, String> A1111_SCHEDULERS = Map.ofEntries(
            Map.entry("automatic", "normal"), Map.entry("karras", "karras"), Map.entry("exponential", "exponential"),
            Map.entry("sgm uniform", "sgm_uniform"), Map.entry("simple", "simple"), Map.entry("normal", "normal"),
            Map.entry("ddim", "ddim_uniform"), Map.entry("beta", "beta"), Map.entry("kl optimal", "kl_optimal"),
            Map.entry("uniform", "normal"));

    private Workflows() {
    }

    /**
     * [comfy sampler, comfy scheduler or null] for an A1111 or ComfyUI sampler name; A1111's old names carry the
     * scheduler ("DPM++ 2M Karras").
     */
    static String[] sampler(String name) {
        if (name == null || name.isBlank()) {
            return new String[] {"euler", null};
        }
        if (Samplers.NAMES.contains(name)) {
            return new String[] {name, null};
        }
        String n = name.trim().toLowerCase(Locale.ROOT);
        String scheduler = null;
        for (String suffix : new String[] {"karras", "exponential"}) {
            if (n.endsWith(" " + suffix)) {
                scheduler = suffix;
                n = n.substring(0, n.length() - suffix.length() - 1);
            }
        }
        String comfy = A1111_SAMPLERS.get(n);
        if (comfy == null) {
            throw ApiError.status(400, "unknown sampler '" + name + "'; use an A1111 name such as \"Euler a\" or"
                    + " \"DPM++ 2M\", or a ComfyUI name: " + String.join(", ", Samplers.implemented()));
        }
        return new String[] {comfy, scheduler};
    }

    static String scheduler(String name, String fromSampler) {
        if (name == null || name.isBlank()) {
            return fromSampler != null ? fromSampler : "normal";
        }
        if (Schedulers.NAMES.contains(name)) {
            return name;
        }
        String comfy = A1111_SCHEDULERS.get(name.trim().toLowerCase(Locale.ROOT));
        if (comfy == null) {
            throw ApiError.status(400, "unknown scheduler '" + name + "'; known: " + String.join(", ",
                    Schedulers.NAMES));
        }
        return comfy;
    }

    /** Checkpoint, two text encodes, empty or encoded latent, KSampler, decode, save (node 9). */
    static ObjectNode prompt(Settings s) {
        ObjectNode p = PromptStore.JSON.createObjectNode();
        node(p, "4", "CheckpointLoaderSimple").put("ckpt_name", s.checkpoint());
        ObjectNode pos = node(p, "6", "CLIPTextEncode");
        pos.put("text", s.prompt());
        link(pos, "clip", "4", 1);
        ObjectNode neg = node(p, "7", "CLIPTextEncode");
        neg.put("text", s.negative());
        link(neg, "clip", "4", 1);
        String latentNode;
        if (s.initImage() == null) {
            ObjectNode empty = node(p, "5", "EmptyLatentImage");
            empty.put("width", s.width());
            empty.put("height", s.height());
            empty.put("batch_size", s.batch());
            latentNode = "5";
        } else {
            node(p, "10", "LoadImage").put("image", s.initImage());
            String pixels = "10";
            if (s.width() > 0 && s.height() > 0) {
                // A1111 resizes the init image to the requested size; 0 means "already that size"
                ObjectNode scale = node(p, "12", "ImageScale");
                link(scale, "image", "10", 0);
                scale.put("upscale_method", "bilinear");
                scale.put("width", s.width());
                scale.put("height", s.height());
                scale.put("crop", "center");
                pixels = "12";
            }
            ObjectNode enc = node(p, "11", "VAEEncode");
            link(enc, "pixels", pixels, 0);
            link(enc, "vae", "4", 2);
            latentNode = "11";
        }
        ObjectNode ks = node(p, "3", "KSampler");
        link(ks, "model", "4", 0);
        ks.put("seed", s.seed());
        ks.put("steps", s.steps());
        ks.put("cfg", s.cfg());
        ks.put("sampler_name", s.sampler());
        ks.put("scheduler", s.scheduler());
        link(ks, "positive", "6", 0);
        link(ks, "negative", "7", 0);
        link(ks, "latent_image", latentNode, 0);
        ks.put("denoise", s.denoise());
        ObjectNode dec = node(p, "8", "VAEDecode");
        link(dec, "samples", "3", 0);
        link(dec, "vae", "4", 2);
        ObjectNode save = node(p, SAVE_NODE, "SaveImage");
        link(save, "images", "8", 0);
        save.put("filename_prefix", s.filenamePrefix());
        return p;
    }

    static ObjectNode node(ObjectNode prompt, String id, String classType) {
        ObjectNode n = prompt.putObject(id);
        n.put("class_type", classType);
        return n.putObject("inputs");
    }

    static void link(ObjectNode inputs, String name, String source, int slot) {
        ArrayNode a = inputs.putArray(name);
        a.add(source).add(slot);
    }
}
