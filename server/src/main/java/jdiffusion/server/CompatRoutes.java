package jdiffusion.server;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.Javalin;
import io.javalin.http.Context;
import io.javalin.http.UploadedFile;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.security.SecureRandom;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import javax.imageio.ImageIO;
import jdiffusion.io.ModelFormatException;
import jdiffusion.model.mmdit.Sd3Variant;

/**
 * Stability's {@code /v2beta/stable-image/generate/sd3} (AUTOMATIC1111's API is {@link A1111Routes}): each request becomes an API-format prompt ({@link Workflows}) queued like
 * any other (same limits, same history), and the answer waits for it to finish.
 */
final class CompatRoutes {
    private static final SecureRandom RANDOM = new SecureRandom();

    /** Stability's aspect ratios and their sizes at side 1024 (multiples of 64, about 1 megapixel). */
    static final Map<String, int[]> ASPECT_SIZES = aspectSizes();
    /** cfg_scale when none is given: SD1 / SDXL checkpoints, SD3 (Stability's default), Large Turbo below. */
    static final double DEFAULT_CFG = 7;
    static final double SD3_CFG = 4;
    /** Steps of Large Turbo (the sd35-turbo preset). */
    static final int TURBO_STEPS = 4;

    private final JDiffusionServer server;
    private final ApiJobs jobs;
    private final Map<String, Object[]> variants = new ConcurrentHashMap<>();

    CompatRoutes(ApiJobs jobs) {
        this.server = jobs.server();
        this.jobs = jobs;
    }

    void register(Javalin app) {
        app.post("/v2beta/stable-image/generate/sd3", this::stability);
        app.get("/v1/engines/list", this::engines);
    }

    /**
     * Stability's engine list (v1 API shape: [{id, name, description, type}]) for the SD3 models installed: one
     * entry per installed kind, id = the {@code model} value the sd3 endpoint takes, description = its checkpoint.
     */
    private void engines(Context ctx) {
        com.fasterxml.jackson.databind.node.ArrayNode out = PromptStore.JSON.createArrayNode();
        for (Sd3Variant v : Sd3Variant.values()) {
            String file;
            try {
                file = checkpointOf(v);
            } catch (ApiError none) {
                continue;
            }
            ObjectNode e = out.addObject();
            e.put("id", v.apiName());
            e.put("name", v.title());
            e.put("description", file);
            e.put("type", "PICTURE");
        }
        JDiffusionServer.json(ctx, out);
    }

    /** Errors from the shared parts (queue, limits, a failed prompt) re-shaped into Stability's error JSON. */
    private void stability(Context ctx) throws IOException {
        try {
            generate(ctx);
        } catch (ApiError e) {
            if (e.body.has("name")) {
                throw e;
            }
            throw stabilityError(e.status, e.getMessage());
        }
    }

    private void generate(Context ctx) throws IOException {
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
        if (seed < 0 || seed > 4294967294L) {
            throw stabilityError(400, "seed must be 0..4294967294, not " + seed);
        }
        double cfgScale = parseDouble(form(ctx, "cfg_scale", Double.toString(DEFAULT_CFG)), "cfg_scale");
        if (cfgScale < 0 || cfgScale > 35) {
            throw stabilityError(400, "cfg_scale must be 0..35, not " + cfgScale);
        }
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
            init = jobs.saveInput(img, "api");
            size = new int[] {0, 0};
            denoise = parseDouble(form(ctx, "strength", "0.75"), "strength");
            if (denoise < 0 || denoise > 1) {
                throw stabilityError(400, "strength must be 0..1, not " + denoise);
            }
        } else if (mode.equals("text-to-image")) {
            size = aspectSize(form(ctx, "aspect_ratio", "1:1"), server.config().apiSize());
        } else {
            throw stabilityError(400, "mode must be text-to-image or image-to-image, not '" + mode + "'");
        }
        String model = ctx.formParam("model");
        Optional<Sd3Variant> wanted = Sd3Variant.byApiName(model);
        String checkpoint = wanted.isPresent() ? checkpointOf(wanted.get()) : jobs.checkpoint(model);
        Optional<Sd3Variant> variant = wanted.isPresent() ? wanted : variantOf(checkpoint);
        boolean turbo = variant.map(Sd3Variant::turbo).orElse(false);
        // SD3 without cfg_scale: Stability's defaults (4; Large Turbo 1); Large Turbo samples with the sd35-turbo
        // preset (euler + sgm_uniform, 4 steps), the others as diffusers' SD3 pipeline does (ComfyUI's normal)
        double cfg = ctx.formParam("cfg_scale") == null || ctx.formParam("cfg_scale").isBlank()
                ? variant.isEmpty() ? DEFAULT_CFG : turbo ? 1.0 : SD3_CFG : cfgScale;
        int steps = turbo ? TURBO_STEPS : server.config().apiSteps();
        Workflows.Settings s = new Workflows.Settings(checkpoint, prompt, form(ctx, "negative_prompt", ""), size[0],
                size[1], steps, cfg, "euler", turbo ? "sgm_uniform" : "normal", seed, 1, denoise, init, "stability");
        ObjectNode workflow = Workflows.prompt(s);
        if (variant.isPresent() && workflow.has("5")) {
            // SD3's latents have 16 channels
            ((ObjectNode) workflow.get("5")).put("class_type", "EmptySD3LatentImage");
        }
        PromptStore.Entry done = jobs.run(workflow);
        byte[] png = Files.readAllBytes(jobs.outputFiles(done, Workflows.SAVE_NODE).getFirst());
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

    /**
     * width x height for one of Stability's aspect ratios. At side 1024 (the default) these are the ~1 megapixel
     * sizes in multiples of 64 that Stability lists for SDXL and SD3 (1024x1024, 1344x768, 1536x640, 1216x832,
     * 1152x896 and their transposes); another side scales them by side / 1024, in multiples of 64 (of 16 below
     * side 512, so that tiny test sizes keep their shape).
     */
    static int[] aspectSize(String ratio, int side) {
        int[] base = ASPECT_SIZES.get(ratio);
        if (base == null) {
            throw stabilityError(400, "aspect_ratio must be one of " + String.join(" ", ASPECT_SIZES.keySet())
                    + ", not '" + ratio + "'");
        }
        int unit = side >= 512 ? 64 : 16;
        int w = (int) Math.max(unit, Math.round(base[0] * (double) side / 1024 / unit) * unit);
        int h = (int) Math.max(unit, Math.round(base[1] * (double) side / 1024 / unit) * unit);
        return new int[] {w, h};
    }

    /**
     * The installed checkpoint of an SD3 variant: the current one when it is of that variant, else the first in
     * models/checkpoints; 400 naming what is installed when there is none.
     */
    String checkpointOf(Sd3Variant wanted) {
        List<String> all = jobs.paths().list("checkpoints");
        String current = jobs.currentCheckpoint();
        if (current != null && variantOf(current).orElse(null) == wanted) {
            return current;
        }
        List<String> sd3 = new ArrayList<>();
        for (String c : all) {
            Optional<Sd3Variant> v = variantOf(c);
            if (v.isPresent() && v.get() == wanted) {
                return c;
            }
            v.ifPresent(x -> sd3.add(c + " (" + x.apiName() + ")"));
        }
        throw stabilityError(400, "model " + wanted.apiName() + ": no " + wanted.title()
                + " checkpoint in models/checkpoints" + (sd3.isEmpty() ? " (no SD3 checkpoint at all)"
                : "; installed: " + String.join(", ", sd3)));
    }

    /** The SD3 variant of a checkpoint file (header read once per path, size and modification time). */
    Optional<Sd3Variant> variantOf(String checkpoint) {
        Path file;
        String key;
        try {
            file = jobs.paths().resolve("checkpoints", checkpoint);
            key = file.toAbsolutePath() + "|" + Files.size(file) + "|" + Files.getLastModifiedTime(file);
        } catch (IOException | RuntimeException e) {
            return Optional.empty();
        }
        Object[] cached = variants.get(checkpoint);
        if (cached != null && cached[0].equals(key)) {
            @SuppressWarnings("unchecked")
            Optional<Sd3Variant> v = (Optional<Sd3Variant>) cached[1];
            return v;
        }
        Optional<Sd3Variant> v;
        try {
            v = file.getFileName().toString().endsWith(".safetensors") ? Sd3Variant.of(file) : Optional.empty();
        } catch (ModelFormatException | RuntimeException e) {
            v = Optional.empty(); // not readable as SD3: whatever loads it reports the problem
        }
        variants.put(checkpoint, new Object[] {key, v});
        return v;
    }

    private static Map<String, int[]> aspectSizes() {
        Map<String, int[]> m = new LinkedHashMap<>();
        int[][] landscape = {{1024, 1024}, {1344, 768}, {1536, 640}, {1216, 832}, {1152, 896}};
        String[][] names = {{"1:1", "1:1"}, {"16:9", "9:16"}, {"21:9", "9:21"}, {"3:2", "2:3"}, {"5:4", "4:5"}};
        for (int i = 0; i < names.length; i++) {
            m.put(names[i][0], landscape[i]);
            m.put(names[i][1], new int[] {landscape[i][1], landscape[i][0]});
        }
        return java.util.Collections.unmodifiableMap(m);
    }

    private static byte[] toJpeg(byte[] png) throws IOException {
        BufferedImage src = ImageIO.read(new java.io.ByteArrayInputStream(png));
        BufferedImage rgb = new BufferedImage(src.getWidth(), src.getHeight(), BufferedImage.TYPE_INT_RGB);
        rgb.getGraphics().drawImage(src, 0, 0, null);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ImageIO.write(rgb, "jpeg", out);
        return out.toByteArray();
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
            double d = Double.parseDouble(v.trim());
            if (!Double.isFinite(d)) {
                throw new NumberFormatException("not finite");
            }
            return d;
        } catch (NumberFormatException e) {
            throw stabilityError(400, what + " must be a number, not '" + v + "'");
        }
    }

    /** Stability's error body: {id, name, errors: [..]} (and {error} as the other APIs here). */
    private static ApiError stabilityError(int status, String message) {
        ObjectNode o = PromptStore.JSON.createObjectNode();
        o.put("id", Long.toHexString(RANDOM.nextLong()) + Long.toHexString(RANDOM.nextLong()));
        o.put("name", switch (status) {
            case 400 -> "bad_request";
            case 403 -> "forbidden";
            case 413 -> "payload_too_large";
            case 429 -> "rate_limit_exceeded";
            default -> status >= 500 ? "internal_error" : "bad_request";
        });
        o.putArray("errors").add(message);
        o.put("error", message);
        return new ApiError(status, o);
    }
}
