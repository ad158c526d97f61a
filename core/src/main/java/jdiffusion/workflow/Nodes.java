package jdiffusion.workflow;

import static jdiffusion.workflow.InputSpec.MAX_RESOLUTION;
import static jdiffusion.workflow.InputSpec.bool;
import static jdiffusion.workflow.InputSpec.combo;
import static jdiffusion.workflow.InputSpec.files;
import static jdiffusion.workflow.InputSpec.integer;
import static jdiffusion.workflow.InputSpec.link;
import static jdiffusion.workflow.InputSpec.number;
import static jdiffusion.workflow.InputSpec.seed;
import static jdiffusion.workflow.InputSpec.text;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.math.BigInteger;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import jdiffusion.sampling.Samplers;
import jdiffusion.sampling.Schedulers;

/**
 * The node classes, with ComfyUI's names, inputs (names, types, defaults, ranges as in its {@code INPUT_TYPES}),
 * outputs, display names and categories, and their {@code /object_info} description.
 */
public final class Nodes {
    private static final Map<String, NodeDefinition> REGISTRY = new LinkedHashMap<>();

    static final List<String> LATENT_UPSCALE_METHODS = List.of("nearest-exact", "bilinear", "area", "bicubic",
            "bislerp");
    static final List<String> IMAGE_UPSCALE_METHODS = List.of("nearest-exact", "bilinear", "area", "bicubic",
            "lanczos");
    static final List<String> CROP = List.of("disabled", "center");

    static {
        add("CheckpointLoaderSimple", "Load Checkpoint", "loaders", false,
                List.of(files("ckpt_name", "checkpoints")),
                List.of("MODEL", "CLIP", "VAE"), BasicNodes::checkpointLoader);
        add("UNETLoader", "Load Diffusion Model", "advanced/loaders", false,
                List.of(files("unet_name", "diffusion_models"),
                        combo("weight_dtype", List.of("default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"))),
                List.of("MODEL"), BasicNodes::unetLoader);
        add("VAELoader", "Load VAE", "loaders", false, List.of(files("vae_name", "vae")), List.of("VAE"),
                BasicNodes::vaeLoader);
        add("CLIPSetLastLayer", "CLIP Set Last Layer", "conditioning", false,
                List.of(link("clip", "CLIP"), integer("stop_at_clip_layer", -1, -24, -1, 1)),
                List.of("CLIP"), BasicNodes::clipSetLastLayer);
        add("CLIPTextEncode", "CLIP Text Encode (Prompt)", "conditioning", false,
                List.of(text("text", null, true), link("clip", "CLIP")),
                List.of("CONDITIONING"), BasicNodes::clipTextEncode);
        add("EmptyLatentImage", "Empty Latent Image", "latent", false,
                List.of(integer("width", 512, 16, MAX_RESOLUTION, 8), integer("height", 512, 16, MAX_RESOLUTION, 8),
                        integer("batch_size", 1, 1, 4096, 1)),
                List.of("LATENT"), BasicNodes::emptyLatent);
        add("KSampler", "KSampler", "sampling", false,
                List.of(link("model", "MODEL"), seed("seed"), integer("steps", 20, 1, 10000, 1),
                        number("cfg", 8.0, 0.0, 100.0, 0.1, 0.01), samplerNames("sampler_name"),
                        combo("scheduler", Schedulers.NAMES), link("positive", "CONDITIONING"),
                        link("negative", "CONDITIONING"), link("latent_image", "LATENT"),
                        number("denoise", 1.0, 0.0, 1.0, 0.01, null)),
                List.of("LATENT"), SamplerNodes::ksampler);
        add("KSamplerAdvanced", "KSampler (Advanced)", "sampling", false,
                List.of(link("model", "MODEL"), combo("add_noise", List.of("enable", "disable")), seed("noise_seed"),
                        integer("steps", 20, 1, 10000, 1), number("cfg", 8.0, 0.0, 100.0, 0.1, 0.01),
                        samplerNames("sampler_name"), combo("scheduler", Schedulers.NAMES),
                        link("positive", "CONDITIONING"), link("negative", "CONDITIONING"),
                        link("latent_image", "LATENT"), integer("start_at_step", 0, 0, 10000, 1),
                        integer("end_at_step", 10000, 0, 10000, 1),
                        combo("return_with_leftover_noise", List.of("disable", "enable"))),
                List.of("LATENT"), SamplerNodes::ksamplerAdvanced);
        add("VAEDecode", "VAE Decode", "latent", false, List.of(link("samples", "LATENT"), link("vae", "VAE")),
                List.of("IMAGE"), ImageNodes::vaeDecode);
        add("VAEDecodeTiled", "VAE Decode (Tiled)", "_for_testing", false,
                List.of(link("samples", "LATENT"), link("vae", "VAE"), integer("tile_size", 512, 64, 4096, 32),
                        integer("overlap", 64, 0, 4096, 32), integer("temporal_size", 64, 8, 4096, 4),
                        integer("temporal_overlap", 8, 4, 4096, 4)),
                List.of("IMAGE"), ImageNodes::vaeDecodeTiled);
        add("VAEEncode", "VAE Encode", "latent", false, List.of(link("pixels", "IMAGE"), link("vae", "VAE")),
                List.of("LATENT"), ImageNodes::vaeEncode);
        add("LoadImage", "Load Image", "image", false, List.of(InputSpec.inputImages("image")),
                List.of("IMAGE", "MASK"), ImageNodes::loadImage);
        REGISTRY.put("SaveImage", new NodeDefinition("SaveImage", "Save Image", "image",
                "Saves the input images to your output directory.", true,
                List.of(link("images", "IMAGE"), text("filename_prefix", "ComfyUI", false)), List.of(), List.of(),
                Map.of("prompt", "PROMPT", "extra_pnginfo", "EXTRA_PNGINFO"), ImageNodes::saveImage));
        REGISTRY.put("PreviewImage", new NodeDefinition("PreviewImage", "Preview Image", "image",
                "Saves the input images to the temp directory.", true, List.of(link("images", "IMAGE")), List.of(),
                List.of(), Map.of("prompt", "PROMPT", "extra_pnginfo", "EXTRA_PNGINFO"), ImageNodes::previewImage));
        add("LoraLoader", "Load LoRA", "loaders", false,
                List.of(link("model", "MODEL"), link("clip", "CLIP"), files("lora_name", "loras"),
                        number("strength_model", 1.0, -100.0, 100.0, 0.01, null),
                        number("strength_clip", 1.0, -100.0, 100.0, 0.01, null)),
                List.of("MODEL", "CLIP"), BasicNodes::loraLoader);
        add("LoraLoaderModelOnly", "LoraLoaderModelOnly", "loaders", false,
                List.of(link("model", "MODEL"), files("lora_name", "loras"),
                        number("strength_model", 1.0, -100.0, 100.0, 0.01, null)),
                List.of("MODEL"), BasicNodes::loraLoaderModelOnly);
        add("ModelSamplingDiscrete", "ModelSamplingDiscrete", "advanced/model", false,
                List.of(link("model", "MODEL"),
                        combo("sampling", List.of("eps", "v_prediction", "lcm", "x0", "img_to_img")),
                        bool("zsnr", false)),
                List.of("MODEL"), BasicNodes::modelSamplingDiscrete);
        add("LatentUpscale", "Upscale Latent", "latent", false,
                List.of(link("samples", "LATENT"), combo("upscale_method", LATENT_UPSCALE_METHODS),
                        integer("width", 512, 0, MAX_RESOLUTION, 8), integer("height", 512, 0, MAX_RESOLUTION, 8),
                        combo("crop", CROP)),
                List.of("LATENT"), BasicNodes::latentUpscale);
        add("ImageScale", "Upscale Image", "image/upscaling", false,
                List.of(link("image", "IMAGE"), combo("upscale_method", IMAGE_UPSCALE_METHODS),
                        integer("width", 512, 0, MAX_RESOLUTION, 1), integer("height", 512, 0, MAX_RESOLUTION, 1),
                        combo("crop", CROP)),
                List.of("IMAGE"), ImageNodes::imageScale);
        // Node groups of later features register themselves here, one line each (a class per feature keeps its
        // node definitions next to its implementations).
        WebsocketNodes.register();
        Sd3Nodes.register();
        UpscaleNodes.register();
        ControlNetNodes.register();
        InpaintNodes.register();
        TaesdNodes.register();
    }

    private Nodes() {
    }

    /** The implemented samplers (a ComfyUI name without an implementation is refused at validation). */
    private static InputSpec samplerNames(String name) {
        return combo(name, Samplers.implemented());
    }

    /** Adds a node class; node groups in their own classes call this from the static block above. */
    static void add(String name, String display, String category, boolean outputNode, List<InputSpec> inputs,
            List<String> outputs, NodeDefinition.Function f) {
        REGISTRY.put(name, new NodeDefinition(name, display, category, "", outputNode, inputs, outputs, outputs,
                Map.of(), f));
    }

    /** Adds a node class described in full (output names that differ from the types, optional inputs). */
    static void add(NodeDefinition d) {
        REGISTRY.put(d.name(), d);
    }

    public static NodeDefinition get(String classType) {
        return REGISTRY.get(classType);
    }

    public static Collection<NodeDefinition> all() {
        return REGISTRY.values();
    }

    /** {@code GET /object_info}: every node class by name. */
    public static ObjectNode objectInfo(ModelPaths paths) {
        ObjectNode out = JsonNodeFactory.instance.objectNode();
        for (NodeDefinition d : REGISTRY.values()) {
            out.set(d.name(), objectInfo(d, paths));
        }
        return out;
    }

    /** One class in ComfyUI's object_info shape. */
    public static ObjectNode objectInfo(NodeDefinition d, ModelPaths paths) {
        JsonNodeFactory f = JsonNodeFactory.instance;
        ObjectNode info = f.objectNode();
        ObjectNode input = info.putObject("input");
        ObjectNode required = input.putObject("required");
        ObjectNode optional = f.objectNode();
        ArrayNode requiredOrder = f.arrayNode();
        ArrayNode optionalOrder = f.arrayNode();
        for (InputSpec s : d.inputs()) {
            (s.optional() ? optional : required).set(s.name(), inputInfo(s, paths));
            (s.optional() ? optionalOrder : requiredOrder).add(s.name());
        }
        if (!optional.isEmpty()) {
            input.set("optional", optional);
        }
        if (!d.hidden().isEmpty()) {
            ObjectNode hidden = input.putObject("hidden");
            d.hidden().forEach(hidden::put);
        }
        ObjectNode order = info.putObject("input_order");
        order.set("required", requiredOrder);
        if (!optionalOrder.isEmpty()) {
            order.set("optional", optionalOrder);
        }
        ArrayNode output = info.putArray("output");
        d.outputTypes().forEach(output::add);
        ArrayNode isList = info.putArray("output_is_list");
        d.outputTypes().forEach(t -> isList.add(false));
        ArrayNode names = info.putArray("output_name");
        d.outputNames().forEach(names::add);
        info.put("name", d.name());
        info.put("display_name", d.displayName());
        info.put("description", d.description());
        info.put("python_module", "nodes");
        info.put("category", d.category());
        info.put("output_node", d.outputNode());
        return info;
    }

    /** [type, options] or, for a combo, [[values...], options]. */
    private static ArrayNode inputInfo(InputSpec s, ModelPaths paths) {
        JsonNodeFactory f = JsonNodeFactory.instance;
        ArrayNode a = f.arrayNode();
        ObjectNode opts = f.objectNode();
        if (s.type().equals("COMBO")) {
            ArrayNode values = a.addArray();
            s.choices().list(paths).forEach(values::add);
        } else {
            a.add(s.type());
        }
        if (s.defaultValue() != null) {
            putNumberOrValue(opts, "default", s.defaultValue());
        }
        if (s.min() != null) {
            putNumberOrValue(opts, "min", s.min());
        }
        if (s.max() != null) {
            putNumberOrValue(opts, "max", s.max());
        }
        if (s.step() != null) {
            putNumberOrValue(opts, "step", s.step());
        }
        if (s.round() != null) {
            putNumberOrValue(opts, "round", s.round());
        }
        s.extra().forEach((k, v) -> {
            if (!k.equals("folder")) {
                putNumberOrValue(opts, k, v);
            }
        });
        if (!opts.isEmpty()) {
            a.add(opts);
        }
        return a;
    }

    private static void putNumberOrValue(ObjectNode o, String key, Object v) {
        switch (v) {
            case BigInteger b -> o.put(key, b);
            case Long l -> o.put(key, l);
            case Integer i -> o.put(key, i);
            case Double d -> o.put(key, d);
            case Boolean b -> o.put(key, b);
            default -> o.put(key, v.toString());
        }
    }
}
