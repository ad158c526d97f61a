package jdiffusion.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.Javalin;
import io.javalin.http.Context;
import io.javalin.http.UploadedFile;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Locale;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import javax.imageio.ImageIO;
import jdiffusion.workflow.ModelPaths;

/**
 * AUTOMATIC1111's {@code /sdapi/v1/txt2img}, {@code /sdapi/v1/img2img} and Stability's
 * {@code /v2beta/stable-image/generate/sd3}: each request becomes an API-format prompt ({@link Workflows}) queued like
 * any other (same limits, same history), and the answer waits for it to finish.
 */
final class CompatRoutes {
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final long WAIT_MINUTES = 60;

    private final JDiffusionServer server;

    CompatRoutes(JDiffusionServer server) {
        this.server = server;
    }

    void register(Javalin app) {
        app.post("/sdapi/v1/txt2img", ctx -> a1111(ctx, false));
        app.post("/sdapi/v1/img2img", ctx -> a1111(ctx, true));
        app.post("/v2beta/stable-image/generate/sd3", this::stability);
    }

    private void a1111(Context ctx, boolean img2img) throws IOException {
        JsonNode r = ApiError.readJson(ctx);
        String[] sampler = Workflows.sampler(text(r, "sampler_name", text(r, "sampler_index", null)));
        String scheduler = Workflows.scheduler(text(r, "scheduler", null), sampler[1]);
        long seed = r.path("seed").asLong(-1);
        if (seed < 0) {
            seed = RANDOM.nextLong(1L << 32);
        }
        int width = r.path("width").asInt(512);
        int height = r.path("height").asInt(512);
        String init = null;
        if (img2img) {
            JsonNode images = r.path("init_images");
            if (!images.isArray() || images.isEmpty()) {
                throw ApiError.status(400, "img2img needs init_images (base64 images)");
            }
            BufferedImage image = decodeBase64(images.get(0).asText(), "init_images[0]");
            init = saveInput(image);
            if (image.getWidth() == width && image.getHeight() == height) {
                width = 0; // no resize needed
                height = 0;
            }
        }
        String checkpoint = checkpoint(r.path("override_settings").path("sd_model_checkpoint").asText(null));
        Workflows.Settings s = new Workflows.Settings(checkpoint, text(r, "prompt", ""),
                text(r, "negative_prompt", ""), width, height, r.path("steps").asInt(20),
                r.path("cfg_scale").asDouble(7.0), sampler[0], scheduler, seed, r.path("batch_size").asInt(1),
                img2img ? r.path("denoising_strength").asDouble(0.75) : 1.0, init, "sdapi");
        ObjectNode prompt = Workflows.prompt(s);
        if (img2img) {
            InpaintRoutes.a1111Mask(r, prompt, this::decodeBase64, this::saveInput); // mask, mask_blur, ...
        }
        PromptStore.Entry done = run(prompt);
        ObjectNode out = PromptStore.JSON.createObjectNode();
        ArrayNode images = out.putArray("images");
        for (Path p : outputFiles(done)) {
            images.add(Base64.getEncoder().encodeToString(Files.readAllBytes(p)));
        }
        out.set("parameters", r);
        out.put("info", info(s, checkpoint).toString());
        JDiffusionServer.json(ctx, out);
    }

    private static ObjectNode info(Workflows.Settings s, String checkpoint) {
        ObjectNode info = PromptStore.JSON.createObjectNode();
        info.put("prompt", s.prompt());
        info.put("negative_prompt", s.negative());
        info.put("seed", s.seed());
        ArrayNode seeds = info.putArray("all_seeds");
        for (int i = 0; i < s.batch(); i++) {
            seeds.add(s.seed()); // one noise draw for the whole batch, as ComfyUI
        }
        info.put("width", s.width());
        info.put("height", s.height());
        info.put("sampler_name", s.sampler());
        info.put("scheduler", s.scheduler());
        info.put("cfg_scale", s.cfg());
        info.put("steps", s.steps());
        info.put("batch_size", s.batch());
        info.put("denoising_strength", s.denoise());
        info.put("sd_model_name", checkpoint);
        return info;
    }

    private void stability(Context ctx) throws IOException {
        String prompt = ctx.formParam("prompt");
        if (prompt == null || prompt.isBlank()) {
            throw stabilityError(400, "prompt is required");
        }
        String mode = form(ctx, "mode", "text-to-image");
        String format = form(ctx, "output_format", "png").toLowerCase(Locale.ROOT);
        if (!format.equals("png") && !format.equals("jpeg")) {
            throw stabilityError(400, "output_format must be png or jpeg, not '" + format + "'");
        }
        long seed = parseLong(form(ctx, "seed", "0"), "seed");
        if (seed == 0) {
            seed = 1 + RANDOM.nextLong(4294967294L); // Stability: 0 means random
        }
        double cfg = parseDouble(form(ctx, "cfg_scale", "7"), "cfg_scale");
        String init = null;
        double denoise = 1.0;
        int[] size;
        if (mode.equals("image-to-image")) {
            UploadedFile image = ctx.uploadedFile("image");
            if (image == null) {
                throw stabilityError(400, "image-to-image needs an image");
            }
            BufferedImage img;
            try (InputStream in = image.content()) {
                img = FileRoutes.decode(in.readAllBytes(), "image", server.config().maxPixels());
            }
            init = saveInput(img);
            size = new int[] {0, 0};
            denoise = parseDouble(form(ctx, "strength", "0.75"), "strength");
        } else if (mode.equals("text-to-image")) {
            size = aspectSize(form(ctx, "aspect_ratio", "1:1"), server.config().apiSize());
        } else {
            throw stabilityError(400, "mode must be text-to-image or image-to-image, not '" + mode + "'");
        }
        String checkpoint = checkpoint(ctx.formParam("model"));
        Workflows.Settings s = new Workflows.Settings(checkpoint, prompt, form(ctx, "negative_prompt", ""), size[0],
                size[1], server.config().apiSteps(), cfg, "euler", "normal", seed, 1, denoise, init, "stability");
        PromptStore.Entry done = run(Workflows.prompt(s));
        byte[] png = Files.readAllBytes(outputFiles(done).getFirst());
        byte[] bytes = format.equals("png") ? png : toJpeg(png);
        String accept = ctx.header("Accept");
        if (accept != null && accept.startsWith("image/")) {
            ctx.header("seed", Long.toString(seed));
            ctx.header("finish-reason", "SUCCESS");
            ctx.contentType(format.equals("png") ? "image/png" : "image/jpeg").result(bytes);
            return;
        }
        ObjectNode out = PromptStore.JSON.createObjectNode();
        out.put("image", Base64.getEncoder().encodeToString(bytes));
        out.put("finish_reason", "SUCCESS");
        out.put("seed", seed);
        JDiffusionServer.json(ctx, out);
    }

    /** width x height for an aspect ratio with about longSide^2 pixels, in multiples of 8. */
    static int[] aspectSize(String ratio, int longSide) {
        String[] parts = ratio.split(":");
        double r;
        try {
            r = Double.parseDouble(parts[0]) / Double.parseDouble(parts[1]);
        } catch (RuntimeException e) {
            throw stabilityError(400, "aspect_ratio must look like 16:9, not '" + ratio + "'");
        }
        if (!List.of("16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21").contains(ratio)) {
            throw stabilityError(400, "aspect_ratio must be one of 16:9 1:1 21:9 2:3 3:2 4:5 5:4 9:16 9:21");
        }
        double area = (double) longSide * longSide;
        int w = (int) Math.max(16, Math.round(Math.sqrt(area * r) / 8) * 8);
        int h = (int) Math.max(16, Math.round(Math.sqrt(area / r) / 8) * 8);
        return new int[] {w, h};
    }

    private PromptStore.Entry run(ObjectNode prompt) {
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
                if (m.path(0).asText().equals("execution_interrupted")) {
                    msg += ": interrupted";
                }
            }
            throw ApiError.status(500, msg);
        }
        return done;
    }

    private List<Path> outputFiles(PromptStore.Entry done) {
        List<Path> files = new ArrayList<>();
        for (JsonNode img : done.outputs().path(Workflows.SAVE_NODE).path("images")) {
            Path folder = img.path("type").asText().equals("temp") ? server.paths().tempDir()
                    : server.paths().outputDir();
            String sub = img.path("subfolder").asText("");
            String name = img.path("filename").asText();
            files.add(ModelPaths.within(folder, sub.isEmpty() ? name : sub + "/" + name));
        }
        if (files.isEmpty()) {
            throw ApiError.status(500, "prompt finished without images");
        }
        return files;
    }

    private String checkpoint(String requested) {
        List<String> all = server.paths().list("checkpoints");
        if (requested != null && !requested.isBlank()) {
            String name = requested.replaceFirst("\\s*\\[[0-9a-fA-F]+\\]$", "");
            for (String c : all) {
                if (c.equals(name) || c.replaceFirst("\\.[^.]*$", "").equals(name)) {
                    return c;
                }
            }
            throw ApiError.status(400, "checkpoint '" + requested + "' is not in models/checkpoints");
        }
        if (all.isEmpty()) {
            throw ApiError.status(400, "no checkpoint in models/checkpoints");
        }
        return all.getFirst();
    }

    /** Stores an init image in input/ under a fresh name; LoadImage reads it from there. */
    private String saveInput(BufferedImage image) throws IOException {
        String name = "api-" + UUID.randomUUID() + ".png";
        Path target = ModelPaths.within(server.paths().inputDir(), name);
        ImageIO.write(image, "png", target.toFile());
        return name;
    }

    private BufferedImage decodeBase64(String data, String what) throws IOException {
        String b64 = data.startsWith("data:") ? data.substring(data.indexOf(',') + 1) : data;
        byte[] bytes;
        try {
            bytes = Base64.getMimeDecoder().decode(b64);
        } catch (IllegalArgumentException e) {
            throw ApiError.status(400, what + " is not valid base64");
        }
        return FileRoutes.decode(bytes, what, server.config().maxPixels());
    }

    private static byte[] toJpeg(byte[] png) throws IOException {
        BufferedImage src = ImageIO.read(new java.io.ByteArrayInputStream(png));
        BufferedImage rgb = new BufferedImage(src.getWidth(), src.getHeight(), BufferedImage.TYPE_INT_RGB);
        rgb.getGraphics().drawImage(src, 0, 0, null);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ImageIO.write(rgb, "jpeg", out);
        return out.toByteArray();
    }

    private static String text(JsonNode r, String key, String def) {
        JsonNode v = r.get(key);
        return v != null && v.isTextual() ? v.asText() : def;
    }

    private static String form(Context ctx, String key, String def) {
        String v = ctx.formParam(key);
        return v == null || v.isBlank() ? def : v;
    }

    private static long parseLong(String v, String what) {
        try {
            return Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            throw stabilityError(400, what + " must be an integer, not '" + v + "'");
        }
    }

    private static double parseDouble(String v, String what) {
        try {
            return Double.parseDouble(v.trim());
        } catch (NumberFormatException e) {
            throw stabilityError(400, what + " must be a number, not '" + v + "'");
        }
    }

    /** Stability's error body: {name, errors: [..]}. */
    private static ApiError stabilityError(int status, String message) {
        ObjectNode o = PromptStore.JSON.createObjectNode();
        o.put("name", "bad_request");
        o.putArray("errors").add(message);
        o.put("error", message);
        return new ApiError(status, o);
    }
}
