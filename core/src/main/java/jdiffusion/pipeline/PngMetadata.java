package jdiffusion.pipeline;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * The text chunks a saved image carries: {@code parameters} in the AUTOMATIC1111 format (what civitai and image
 * browsers read) and {@code prompt}, the equivalent ComfyUI API-format workflow (drop it on ComfyUI to rerun).
 */
public final class PngMetadata {
    private static final ObjectMapper JSON = new ObjectMapper();

    private PngMetadata() {
    }

    /** Both chunks, parameters first. */
    public static Map<String, String> chunks(ResolvedSettings s, String modelHash) {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("parameters", parameters(s, modelHash));
        m.put("prompt", comfyWorkflow(s));
        return m;
    }

    /**
     * A1111 "parameters": the prompt, a "Negative prompt:" line when there is one, then
     * {@code Steps: 20, Sampler: Euler, Schedule type: Normal, CFG scale: 7, Seed: 1, Size: 512x512, Model hash: ..,
     * Model: ..}.
     */
    public static String parameters(ResolvedSettings s, String modelHash) {
        StringBuilder sb = new StringBuilder(s.prompt());
        if (s.negativePrompt() != null && !s.negativePrompt().isEmpty()) {
            sb.append("\nNegative prompt: ").append(s.negativePrompt());
        }
        sb.append("\nSteps: ").append(s.steps());
        sb.append(", Sampler: ").append(a1111Sampler(s.sampler()));
        sb.append(", Schedule type: ").append(a1111Schedule(s.scheduler()));
        sb.append(", CFG scale: ").append(number(s.cfg()));
        sb.append(", Seed: ").append(Long.toUnsignedString(s.seed()));
        sb.append(", Size: ").append(s.width()).append('x').append(s.height());
        if (modelHash != null) {
            sb.append(", Model hash: ").append(modelHash);
        }
        sb.append(", Model: ").append(stem(s.modelName()));
        if (s.isImg2Img()) {
            sb.append(", Denoising strength: ").append(number(s.denoise()));
        }
        if (s.inpaint() != null) {
            inpaintParameters(sb, s.inpaint());
        }
        if (s.clipSkip() > 1) {
            sb.append(", Clip skip: ").append(s.clipSkip());
        }
        if (s.batch() > 1) {
            sb.append(", Batch size: ").append(s.batch());
        }
        if (s.vaeName() != null) {
            sb.append(", VAE: ").append(s.vaeName());
        }
        for (GenerateRequest.LoraSpec l : s.loras()) {
            sb.append(", Lora: ").append(stem(l.file().getFileName().toString())).append(':')
                    .append(number(l.strength()));
        }
        for (int i = 0; i < s.controls().size(); i++) {
            GenerateRequest.ControlSpec c = s.controls().get(i);
            sb.append(", ControlNet ").append(i).append(": \"Module: ").append(c.module())
                    .append(", Model: ").append(stem(c.model().getFileName().toString()))
                    .append(", Weight: ").append(number(c.strength()));
            if (c.module().equals("canny")) {
                sb.append(", Threshold A: ").append(number(c.low())).append(", Threshold B: ").append(number(c.high()));
            }
            sb.append(", Guidance Start: ").append(number(c.start())).append(", Guidance End: ")
                    .append(number(c.end())).append('"');
        }
        sb.append(", Version: jdiffusion");
        return sb.toString();
    }

    /**
     * ControlNetLoader + LoadImage (+ Canny) + ControlNetApplyAdvanced per ControlNet, chained on the CLIPTextEncode
     * outputs "6" / "7"; returns the node ids the KSampler's positive (output 0) and negative (output 1) come from.
     */
    private static String[] controlNodes(ObjectNode wf, ResolvedSettings s, String positive, String negative,
            int negativeOut) {
        String pos = positive;
        String neg = negative;
        int negOut = negativeOut;
        int id = 40;
        for (GenerateRequest.ControlSpec c : s.controls()) {
            String loader = Integer.toString(id++);
            node(wf, loader, "ControlNetLoader").put("control_net_name", c.model().getFileName().toString());
            String image = Integer.toString(id++);
            node(wf, image, "LoadImage").put("image", c.image().getFileName().toString());
            if (c.module().equals("canny")) {
                String canny = Integer.toString(id++);
                ObjectNode in = node(wf, canny, "Canny");
                link(in, "image", image, 0);
                in.put("low_threshold", c.low());
                in.put("high_threshold", c.high());
                image = canny;
            }
            String apply = Integer.toString(id++);
            ObjectNode in = node(wf, apply, "ControlNetApplyAdvanced");
            link(in, "positive", pos, 0);
            link(in, "negative", neg, negOut);
            link(in, "control_net", loader, 0);
            link(in, "image", image, 0);
            in.put("strength", c.strength());
            in.put("start_percent", c.start());
            in.put("end_percent", c.end());
            pos = apply;
            neg = apply;
            negOut = 1; // ControlNetApplyAdvanced's negative output
        }
        return new String[] {pos, neg, Integer.toString(negOut)};
    }

    /**
     * The inpaint part of the equivalent workflow (after LoadImage "10"): the mask (LoadImage's alpha MASK or
     * LoadImageMask of the mask file), InvertMask, ImagePadForOutpaint, GrowMask, then InpaintModelConditioning "11"
     * (which also serves an ordinary checkpoint: the original's latent with the mask as noise mask). The mask blur
     * has no ComfyUI core node and is left out. Returns the conditioning node's id.
     */
    private static String inpaintNodes(ObjectNode wf, GenerateRequest.Inpaint in, String vae, int vaeOut) {
        String mask = null;
        int maskOut = 0;
        if (in.maskFromAlpha()) {
            mask = "10";
            maskOut = 1;
        } else if (in.mask() != null) {
            ObjectNode m = node(wf, "16", "LoadImageMask");
            m.put("image", in.mask().getFileName().toString());
            m.put("channel", "red");
            mask = "16";
        }
        if (mask != null && in.invert()) {
            link(node(wf, "17", "InvertMask"), "mask", mask, maskOut);
            mask = "17";
            maskOut = 0;
        }
        String pixels = "10";
        GenerateRequest.Outpaint o = in.outpaint();
        if (o != null) {
            ObjectNode pad = node(wf, "18", "ImagePadForOutpaint");
            link(pad, "image", "10", 0);
            pad.put("left", o.left());
            pad.put("top", o.top());
            pad.put("right", o.right());
            pad.put("bottom", o.bottom());
            pad.put("feathering", o.feather());
            pixels = "18";
            if (mask == null) {
                mask = "18";
                maskOut = 1;
            }
        }
        if (in.grow() != 0) {
            ObjectNode g = node(wf, "19", "GrowMask");
            link(g, "mask", mask, maskOut);
            g.put("expand", in.grow());
            g.put("tapered_corners", true);
            mask = "19";
            maskOut = 0;
        }
        ObjectNode c = node(wf, "11", "InpaintModelConditioning");
        link(c, "positive", "6", 0);
        link(c, "negative", "7", 0);
        link(c, "vae", vae, vaeOut);
        link(c, "pixels", pixels, 0);
        link(c, "mask", mask, maskOut);
        c.put("noise_mask", true);
        return "11";
    }

    /** A1111's inpaint keys (Mask blur, Mask mode) and jdiffusion's for the mask source, growth and outpainting. */
    private static void inpaintParameters(StringBuilder sb, GenerateRequest.Inpaint in) {
        sb.append(", Mask blur: ").append(number(in.blur()));
        if (in.maskFromAlpha()) {
            sb.append(", Mask: alpha");
        } else if (in.mask() != null) {
            sb.append(", Mask: ").append(in.mask().getFileName());
        }
        if (in.grow() != 0) {
            sb.append(", Mask grow: ").append(in.grow());
        }
        if (in.invert()) {
            sb.append(", Mask mode: Inpaint not masked");
        }
        GenerateRequest.Outpaint o = in.outpaint();
        if (o != null) {
            sb.append(", Outpaint: ").append(o.left()).append(',').append(o.top()).append(',').append(o.right())
                    .append(',').append(o.bottom()).append(", Outpaint feather: ").append(o.feather());
        }
        if (in.pasteBack()) {
            sb.append(", Inpaint paste back: true");
        }
    }

    /** ComfyUI's display-independent sampler names mapped to A1111's labels; others keep their ComfyUI name. */
    static String a1111Sampler(String name) {
        return switch (name) {
            case "euler" -> "Euler";
            case "euler_ancestral" -> "Euler a";
            case "heun" -> "Heun";
            case "dpm_2" -> "DPM2";
            case "dpm_2_ancestral" -> "DPM2 a";
            case "lms" -> "LMS";
            case "dpm_fast" -> "DPM fast";
            case "dpm_adaptive" -> "DPM adaptive";
            case "dpmpp_2s_ancestral" -> "DPM++ 2S a";
            case "dpmpp_sde" -> "DPM++ SDE";
            case "dpmpp_2m" -> "DPM++ 2M";
            case "dpmpp_2m_sde" -> "DPM++ 2M SDE";
            case "dpmpp_2m_sde_heun" -> "DPM++ 2M SDE Heun";
            case "dpmpp_3m_sde" -> "DPM++ 3M SDE";
            case "ddim" -> "DDIM";
            case "lcm" -> "LCM";
            case "uni_pc" -> "UniPC";
            case "restart" -> "Restart";
            default -> name;
        };
    }

    static String a1111Schedule(String name) {
        return switch (name) {
            case "normal" -> "Normal";
            case "karras" -> "Karras";
            case "exponential" -> "Exponential";
            case "sgm_uniform" -> "SGM Uniform";
            case "simple" -> "Simple";
            case "ddim_uniform" -> "DDIM";
            case "beta" -> "Beta";
            case "kl_optimal" -> "KL Optimal";
            case "linear_quadratic" -> "Linear Quadratic";
            case "leading", "linspace", "trailing" -> "diffusers " + name;
            default -> name;
        };
    }

    /**
     * The ComfyUI API-format workflow of the same generation: CheckpointLoaderSimple (UNETLoader / VAELoader /
     * LoraLoader / CLIPSetLastLayer / ModelSamplingDiscrete when used), CLIPTextEncode x2, EmptyLatentImage or
     * LoadImage + VAEEncode, KSampler, VAEDecode, SaveImage. diffusers spacings have no KSampler scheduler; the
     * one giving the same timesteps is written (leading = ddim_uniform, linspace = normal, trailing ~ sgm_uniform)
     * and the node's title says what ran.
     */
    public static String comfyWorkflow(ResolvedSettings s) {
        ObjectNode wf = JSON.createObjectNode();
        node(wf, "4", "CheckpointLoaderSimple").put("ckpt_name", s.modelName());
        String model = "4";
        int modelOut = 0;
        String clip = "4";
        int clipOut = 1;
        String vae = "4";
        int vaeOut = 2;
        if (s.unetName() != null) {
            ObjectNode in = node(wf, "12", "UNETLoader");
            in.put("unet_name", s.unetName());
            in.put("weight_dtype", "default");
            model = "12";
            modelOut = 0;
        }
        if (s.vaeName() != null) {
            node(wf, "13", "VAELoader").put("vae_name", s.vaeName());
            vae = "13";
            vaeOut = 0;
        }
        int next = 20;
        for (GenerateRequest.LoraSpec l : s.loras()) {
            String id = Integer.toString(next++);
            ObjectNode in = node(wf, id, "LoraLoader");
            in.put("lora_name", l.file().getFileName().toString());
            in.put("strength_model", l.strength());
            in.put("strength_clip", l.clipStrength());
            link(in, "model", model, modelOut);
            link(in, "clip", clip, clipOut);
            model = id;
            modelOut = 0;
            clip = id;
            clipOut = 1;
        }
        if (s.clipSkip() > 1) {
            ObjectNode in = node(wf, "14", "CLIPSetLastLayer");
            in.put("stop_at_clip_layer", -s.clipSkip());
            link(in, "clip", clip, clipOut);
            clip = "14";
            clipOut = 0;
        }
        if (s.prediction() != jdiffusion.sampling.PredictionType.EPS) {
            ObjectNode in = node(wf, "15", "ModelSamplingDiscrete");
            in.put("sampling", s.prediction() == jdiffusion.sampling.PredictionType.V ? "v_prediction" : "x0");
            in.put("zsnr", false);
            link(in, "model", model, modelOut);
            model = "15";
            modelOut = 0;
        }
        ObjectNode pos = node(wf, "6", "CLIPTextEncode");
        pos.put("text", s.prompt());
        link(pos, "clip", clip, clipOut);
        ObjectNode neg = node(wf, "7", "CLIPTextEncode");
        neg.put("text", s.negativePrompt() == null ? "" : s.negativePrompt());
        link(neg, "clip", clip, clipOut);
        String latent;
        String positive = "6";
        String negative = "7";
        int negativeOut = 0;
        if (s.isImg2Img() && s.inpaint() != null) {
            node(wf, "10", "LoadImage").put("image", s.initImage().getFileName().toString());
            latent = inpaintNodes(wf, s.inpaint(), vae, vaeOut);
            positive = latent;
            negative = latent;
            negativeOut = 1;
        } else if (s.isImg2Img()) {
            node(wf, "10", "LoadImage").put("image", s.initImage().getFileName().toString());
            ObjectNode enc = node(wf, "11", "VAEEncode");
            link(enc, "pixels", "10", 0);
            link(enc, "vae", vae, vaeOut);
            latent = "11";
        } else {
            ObjectNode empty = node(wf, "5", "EmptyLatentImage");
            empty.put("width", s.width());
            empty.put("height", s.height());
            empty.put("batch_size", s.batch());
            latent = "5";
        }
        ObjectNode ks = node(wf, "3", "KSampler");
        ks.put("seed", new java.math.BigInteger(Long.toUnsignedString(s.seed())));
        ks.put("steps", s.steps());
        ks.put("cfg", s.cfg());
        ks.put("sampler_name", s.sampler());
        ks.put("scheduler", comfyScheduler(s.scheduler()));
        ks.put("denoise", s.denoise());
        link(ks, "model", model, modelOut);
        String[] conds = controlNodes(wf, s, positive, negative, negativeOut);
        link(ks, "positive", conds[0], 0);
        link(ks, "negative", conds[1], Integer.parseInt(conds[2]));
        link(ks, "latent_image", latent, latent.equals("11") && s.inpaint() != null ? 2 : 0);
        if (s.semantics() == ResolvedSettings.Semantics.DIFFUSERS) {
            ((ObjectNode) wf.get("3")).putObject("_meta").put("title",
                    "KSampler (jdiffusion ran diffusers '" + s.scheduler() + "' spacing)");
        }
        ObjectNode dec = node(wf, "8", "VAEDecode");
        link(dec, "samples", "3", 0);
        link(dec, "vae", vae, vaeOut);
        ObjectNode save = node(wf, "9", "SaveImage");
        save.put("filename_prefix", "jdiffusion");
        link(save, "images", "8", 0);
        try {
            return JSON.writeValueAsString(wf);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    static String comfyScheduler(String scheduler) {
        return switch (scheduler) {
            case "leading" -> "ddim_uniform";
            case "linspace" -> "normal";
            case "trailing" -> "sgm_uniform";
            default -> scheduler;
        };
    }

    private static ObjectNode node(ObjectNode wf, String id, String classType) {
        ObjectNode n = wf.putObject(id);
        n.put("class_type", classType);
        return n.putObject("inputs");
    }

    private static void link(ObjectNode inputs, String name, String node, int output) {
        ArrayNode a = inputs.putArray(name);
        a.add(node);
        a.add(output);
    }

    private static String number(double v) {
        if (v == Math.rint(v) && Math.abs(v) < 1e15) {
            return Long.toString((long) v);
        }
        return String.format(Locale.ROOT, "%s", (float) v);
    }

    private static String stem(String fileName) {
        int dot = fileName.lastIndexOf('.');
        return dot > 0 ? fileName.substring(0, dot) : fileName;
    }
}
