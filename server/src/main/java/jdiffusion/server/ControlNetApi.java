package jdiffusion.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.Javalin;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Base64;
import java.util.List;
import java.util.UUID;
import javax.imageio.ImageIO;
import jdiffusion.workflow.ModelPaths;

/**
 * The AUTOMATIC1111 ControlNet extension's API as clients send it: {@code alwayson_scripts: {controlnet: {args:
 * [{image, module, model, weight, guidance_start, guidance_end, threshold_a, threshold_b, enabled}]}}} on txt2img /
 * img2img becomes ControlNetLoader + LoadImage (+ Canny) + ControlNetApplyAdvanced nodes in the request's workflow;
 * {@code GET /controlnet/model_list} lists {@code models/controlnet}, {@code GET /controlnet/module_list} the
 * preprocessors.
 */
final class ControlNetApi {
    /** The preprocessors units may name (A1111 module names; "none" passes the image as the hint). */
    static final List<String> MODULES = List.of("none", "canny");

    private final JDiffusionServer server;

    ControlNetApi(JDiffusionServer server) {
        this.server = server;
    }

    void register(Javalin app) {
        app.get("/controlnet/model_list", ctx -> {
            ObjectNode out = PromptStore.JSON.createObjectNode();
            ArrayNode list = out.putArray("model_list");
            for (String f : server.paths().list("controlnet")) {
                list.add(stem(f));
            }
            JDiffusionServer.json(ctx, out);
        });
        app.get("/controlnet/module_list", ctx -> {
            ObjectNode out = PromptStore.JSON.createObjectNode();
            ArrayNode list = out.putArray("module_list");
            MODULES.forEach(list::add);
            JDiffusionServer.json(ctx, out);
        });
        app.get("/controlnet/version", ctx -> JDiffusionServer.json(ctx,
                PromptStore.JSON.createObjectNode().put("version", 2)));
    }

    private static String stem(String file) {
        int dot = file.lastIndexOf('.');
        return dot > 0 ? file.substring(0, dot) : file;
    }

    /**
     * Adds the request's enabled ControlNet units to a txt2img / img2img workflow (KSampler "3" fed by the text
     * encodes "6" / "7"): each unit's hint image is stored in input/, preprocessed, and applied to positive and
     * negative with its weight and guidance window, chained in order. A request without units is left alone.
     */
    void apply(JsonNode request, ObjectNode prompt) throws IOException {
        JsonNode units = request.path("alwayson_scripts").path("controlnet").path("args");
        if (units.isMissingNode() || units.isNull()) {
            return;
        }
        if (!units.isArray()) {
            throw ApiError.status(400, "alwayson_scripts.controlnet.args must be a list of ControlNet units");
        }
        String pos = "6";
        int posOut = 0;
        String neg = "7";
        int negOut = 0;
        int id = 100;
        for (int i = 0; i < units.size(); i++) {
            JsonNode u = units.get(i);
            String where = "controlnet unit " + i;
            if (!u.path("enabled").asBoolean(true)) {
                continue;
            }
            String model = model(u.path("model").asText(""), where);
            String module = u.path("module").asText("none");
            if (!MODULES.contains(module)) {
                throw ApiError.status(400, where + ": module '" + module + "' is not supported (supported: "
                        + String.join(", ", MODULES) + "; send a ready hint image with module none)");
            }
            JsonNode imageField = u.has("image") ? u.get("image") : u.get("input_image");
            String b64 = imageField == null ? null : imageField.isObject() ? imageField.path("image").asText(null)
                    : imageField.asText(null);
            if (b64 == null || b64.isBlank()) {
                throw ApiError.status(400, where + ": image (base64) is required");
            }
            String input = saveInput(b64, where);
            String loader = Integer.toString(id++);
            Workflows.node(prompt, loader, "ControlNetLoader").put("control_net_name", model);
            String image = Integer.toString(id++);
            Workflows.node(prompt, image, "LoadImage").put("image", input);
            if (module.equals("canny")) {
                // A1111's thresholds are 0..255 (defaults 100 / 200); ComfyUI's Canny takes [0.01, 0.99]
                String canny = Integer.toString(id++);
                ObjectNode in = Workflows.node(prompt, canny, "Canny");
                Workflows.link(in, "image", image, 0);
                in.put("low_threshold", threshold(u.path("threshold_a").asDouble(100)));
                in.put("high_threshold", threshold(u.path("threshold_b").asDouble(200)));
                image = canny;
            }
            double start = u.path("guidance_start").asDouble(0.0);
            double end = u.path("guidance_end").asDouble(1.0);
            if (!(start >= 0 && end <= 1 && start <= end)) {
                throw ApiError.status(400, where + ": guidance_start/end must satisfy 0 <= start <= end <= 1");
            }
            String applyId = Integer.toString(id++);
            ObjectNode in = Workflows.node(prompt, applyId, "ControlNetApplyAdvanced");
            Workflows.link(in, "positive", pos, posOut);
            Workflows.link(in, "negative", neg, negOut);
            Workflows.link(in, "control_net", loader, 0);
            Workflows.link(in, "image", image, 0);
            in.put("strength", u.path("weight").asDouble(1.0));
            in.put("start_percent", start);
            in.put("end_percent", end);
            pos = applyId;
            posOut = 0;
            neg = applyId;
            negOut = 1;
        }
        ObjectNode ks = (ObjectNode) prompt.path("3").path("inputs");
        Workflows.link(ks, "positive", pos, posOut);
        Workflows.link(ks, "negative", neg, negOut);
    }

    private static double threshold(double a1111) {
        return Math.min(0.99, Math.max(0.01, Math.round(a1111 / 255.0 * 100) / 100.0));
    }

    /** "control_v11p_sd15_canny [d14c016b]" or a file name -> the file in models/controlnet. */
    private String model(String requested, String where) {
        String name = requested.replaceFirst("\\s*\\[[0-9a-fA-F]+\\]$", "").trim();
        for (String f : server.paths().list("controlnet")) {
            if (f.equals(name) || stem(f).equals(name)) {
                return f;
            }
        }
        throw ApiError.status(400, where + ": model '" + requested + "' is not in models/controlnet");
    }

    private String saveInput(String data, String where) throws IOException {
        String b64 = data.startsWith("data:") ? data.substring(data.indexOf(',') + 1) : data;
        byte[] bytes;
        try {
            bytes = Base64.getMimeDecoder().decode(b64);
        } catch (IllegalArgumentException e) {
            throw ApiError.status(400, where + ": image is not valid base64");
        }
        BufferedImage image = FileRoutes.decode(bytes, where + " image", server.config().maxPixels());
        String name = "controlnet-" + UUID.randomUUID() + ".png";
        Path target = ModelPaths.within(server.paths().inputDir(), name);
        ImageIO.write(image, "png", target.toFile());
        return name;
    }
}
