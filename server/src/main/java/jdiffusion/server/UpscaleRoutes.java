package jdiffusion.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.Javalin;
import io.javalin.http.Context;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import javax.imageio.ImageIO;
import jdiffusion.workflow.ModelPaths;

/**
 * AUTOMATIC1111's upscaling routes: {@code GET /sdapi/v1/upscalers} (None, Lanczos, Nearest and every file in
 * {@code models/upscale_models}), {@code GET /sdapi/v1/latent-upscale-modes}, and
 * {@code POST /sdapi/v1/extra-single-image}, which becomes a ComfyUI workflow (LoadImage, the model applied until the
 * target size is reached, at most 3 times as A1111 does, an ImageScale to the exact size, SaveImage) queued like
 * every other prompt.
 */
final class UpscaleRoutes {
    /** A1111's latent upscale mode names and the ComfyUI methods they run (no antialiased variants here). */
    static final Map<String, String> LATENT_MODES = new LinkedHashMap<>();

    static {
        LATENT_MODES.put("Latent", "bilinear");
        LATENT_MODES.put("Latent (antialiased)", "bilinear"); // A1111's antialiased variants: ComfyUI has none
        LATENT_MODES.put("Latent (bicubic)", "bicubic");
        LATENT_MODES.put("Latent (bicubic antialiased)", "bicubic");
        LATENT_MODES.put("Latent (nearest)", "nearest-exact");
        LATENT_MODES.put("Latent (nearest-exact)", "nearest-exact");
        LATENT_MODES.put("Latent (area)", "area");
        LATENT_MODES.put("Latent (bislerp)", "bislerp");
    }

    private static final String SAVE = "9";
    private static final long WAIT_MINUTES = 60;
    private static final int MAX_MODEL_PASSES = 3;

    private final JDiffusionServer server;

    UpscaleRoutes(JDiffusionServer server) {
        this.server = server;
    }

    void register(Javalin app) {
        app.get("/sdapi/v1/upscalers", this::upscalers);
        app.get("/sdapi/v1/latent-upscale-modes", ctx -> {
            ArrayNode a = PromptStore.JSON.createArrayNode();
            LATENT_MODES.keySet().forEach(n -> a.addObject().put("name", n));
            JDiffusionServer.json(ctx, a);
        });
        app.post("/sdapi/v1/extra-single-image", this::extraSingleImage);
    }

    private void upscalers(Context ctx) {
        ArrayNode a = PromptStore.JSON.createArrayNode();
        for (String builtin : new String[] {"None", "Lanczos", "Nearest"}) {
            ObjectNode o = a.addObject();
            o.put("name", builtin);
            o.putNull("model_name");
            o.putNull("model_path");
            o.putNull("model_url");
            o.put("scale", 4);
        }
        for (String file : server.paths().list("upscale_models")) {
            ObjectNode o = a.addObject();
            o.put("name", stem(file));
            o.put("model_name", file);
            o.put("model_path", file);
            o.putNull("model_url");
            o.put("scale", 4); // A1111's nominal value; the real scale is read from the weights when it runs
        }
        JDiffusionServer.json(ctx, a);
    }

    private static String stem(String file) {
        String name = file.substring(file.lastIndexOf('/') + 1);
        int dot = name.lastIndexOf('.');
        return dot > 0 ? name.substring(0, dot) : name;
    }

    /** upscaler_1's model file, or null for the built-in resizers; 400 when the name is unknown. */
    private String modelFile(String upscaler) {
        if (upscaler.equals("None") || upscaler.equals("Lanczos") || upscaler.equals("Nearest")) {
            return null;
        }
        for (String f : server.paths().list("upscale_models")) {
            if (f.equals(upscaler) || stem(f).equals(upscaler)) {
                return f;
            }
        }
        throw ApiError.status(400, "upscaler '" + upscaler + "' is not None, Lanczos, Nearest or a file in"
                + " models/upscale_models");
    }

    private void extraSingleImage(Context ctx) throws IOException {
        JsonNode r = ApiError.readJson(ctx);
        String data = r.path("image").asText("");
        if (data.isEmpty()) {
            throw ApiError.status(400, "extra-single-image needs image (a base64 image)");
        }
        BufferedImage image = decode(data);
        int w = image.getWidth();
        int h = image.getHeight();
        int mode = r.path("resize_mode").asInt(0);
        int tw;
        int th;
        if (mode == 1) {
            tw = r.path("upscaling_resize_w").asInt(512);
            th = r.path("upscaling_resize_h").asInt(512);
        } else {
            double by = r.path("upscaling_resize").asDouble(2.0);
            if (!(by > 0 && by <= 8)) {
                throw ApiError.status(400, "upscaling_resize must be in (0, 8], got " + by);
            }
            tw = (int) (w * by);
            th = (int) (h * by);
        }
        long max = server.config().maxPixels();
        if (tw < 1 || th < 1 || (long) tw * th > max) {
            throw ApiError.status(400, "target size " + tw + "x" + th + " is outside 1.." + max + " pixels");
        }
        String upscaler = r.path("upscaler_1").asText("None");
        String model = modelFile(upscaler);
        String input = "api-" + UUID.randomUUID() + ".png";
        ImageIO.write(image, "png", ModelPaths.within(server.paths().inputDir(), input).toFile());

        ObjectNode p = PromptStore.JSON.createObjectNode();
        node(p, "1", "LoadImage").put("image", input);
        String pixels = "1";
        int cw = w;
        int ch = h;
        if (model != null) {
            node(p, "2", "UpscaleModelLoader").put("model_name", model);
            // like A1111, the model runs again while the image is still smaller than the target (3 passes at most)
            for (int pass = 0; pass < MAX_MODEL_PASSES && (cw < tw || ch < th); pass++) {
                String id = Integer.toString(10 + pass);
                ObjectNode up = node(p, id, "ImageUpscaleWithModel");
                up.set("upscale_model", link("2"));
                up.set("image", link(pixels));
                pixels = id;
                int s = modelScale(model);
                cw *= s;
                ch *= s;
            }
        }
        if (cw != tw || ch != th || model == null) {
            ObjectNode sc = node(p, "20", "ImageScale");
            sc.set("image", link(pixels));
            sc.put("upscale_method", upscaler.equals("Nearest") ? "nearest-exact" : "lanczos");
            sc.put("width", tw);
            sc.put("height", th);
            sc.put("crop", mode == 1 && r.path("upscaling_crop").asBoolean(true) ? "center" : "disabled");
            pixels = "20";
        }
        ObjectNode save = node(p, SAVE, "SaveImage");
        save.set("images", link(pixels));
        save.put("filename_prefix", "extras");
        Path out = run(p);
        ObjectNode o = PromptStore.JSON.createObjectNode();
        o.put("html_info", "<p>Postprocess upscale to: " + tw + "x" + th + ", Postprocess upscaler: "
                + escape(upscaler) + "</p>");
        o.put("image", Base64.getEncoder().encodeToString(Files.readAllBytes(out)));
        JDiffusionServer.json(ctx, o);
    }

    /** The model's scale, read once per file (the weights' shapes decide it). */
    private final Map<String, Integer> scales = new java.util.concurrent.ConcurrentHashMap<>();

    private int modelScale(String model) {
        return scales.computeIfAbsent(model, m -> {
            try {
                return jdiffusion.model.upscale.UpscaleModel.open(server.paths().resolve("upscale_models", m)).scale();
            } catch (jdiffusion.io.ModelFormatException e) {
                throw ApiError.status(400, e.getMessage());
            }
        });
    }

    private static String escape(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
    }

    private Path run(ObjectNode prompt) {
        JDiffusionServer.Accepted a = server.submit(prompt, null, null, false, null);
        PromptStore.Entry done;
        try {
            done = server.runner().completion(a.promptId()).get(WAIT_MINUTES, TimeUnit.MINUTES);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw ApiError.status(503, "interrupted while waiting for prompt " + a.promptId());
        } catch (ExecutionException | TimeoutException e) {
            throw ApiError.status(504, "prompt " + a.promptId() + " did not finish in time");
        }
        JsonNode status = done.status();
        if (status == null || !"success".equals(status.path("status_str").asText())) {
            String msg = "prompt " + a.promptId() + " failed";
            for (JsonNode m : status == null ? PromptStore.JSON.createArrayNode() : status.path("messages")) {
                if (m.path(1).has("exception_message")) {
                    msg += ": " + m.path(1).path("exception_message").asText();
                }
            }
            throw ApiError.status(500, msg);
        }
        for (JsonNode img : done.outputs().path(SAVE).path("images")) {
            String sub = img.path("subfolder").asText("");
            String name = img.path("filename").asText();
            return ModelPaths.within(server.paths().outputDir(), sub.isEmpty() ? name : sub + "/" + name);
        }
        throw ApiError.status(500, "prompt finished without an image");
    }

    private BufferedImage decode(String data) throws IOException {
        String b64 = data.startsWith("data:") ? data.substring(data.indexOf(',') + 1) : data;
        byte[] bytes;
        try {
            bytes = Base64.getMimeDecoder().decode(b64);
        } catch (IllegalArgumentException e) {
            throw ApiError.status(400, "image is not valid base64");
        }
        return FileRoutes.decode(bytes, "image", server.config().maxPixels());
    }

    private static ObjectNode node(ObjectNode prompt, String id, String classType) {
        ObjectNode n = prompt.putObject(id);
        n.put("class_type", classType);
        return n.putObject("inputs");
    }

    private static ArrayNode link(String id) {
        ArrayNode a = PromptStore.JSON.createArrayNode();
        a.add(id);
        a.add(0);
        return a;
    }

}
