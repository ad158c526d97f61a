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
import java.util.Base64;
import java.util.List;
import java.util.Locale;
import javax.imageio.ImageIO;

/**
 * Stability's {@code /v2beta/stable-image/generate/sd3} (AUTOMATIC1111's API is {@link A1111Routes}): each request becomes an API-format prompt ({@link Workflows}) queued like
 * any other (same limits, same history), and the answer waits for it to finish.
 */
final class CompatRoutes {
    private static final SecureRandom RANDOM = new SecureRandom();

    private final JDiffusionServer server;
    private final ApiJobs jobs;

    CompatRoutes(ApiJobs jobs) {
        this.server = jobs.server();
        this.jobs = jobs;
    }

    void register(Javalin app) {
        app.post("/v2beta/stable-image/generate/sd3", this::stability);
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
        if (seed < 0 || seed > 4294967294L) {
            throw stabilityError(400, "seed must be 0..4294967294, not " + seed);
        }
        double cfg = parseDouble(form(ctx, "cfg_scale", "7"), "cfg_scale");
        if (cfg < 0 || cfg > 35) {
            throw stabilityError(400, "cfg_scale must be 0..35, not " + cfg);
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
        String checkpoint = jobs.checkpoint(ctx.formParam("model"));
        Workflows.Settings s = new Workflows.Settings(checkpoint, prompt, form(ctx, "negative_prompt", ""), size[0],
                size[1], server.config().apiSteps(), cfg, "euler", "normal", seed, 1, denoise, init, "stability");
        PromptStore.Entry done = jobs.run(Workflows.prompt(s));
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

    /** Stability's error body: {name, errors: [..]}. */
    private static ApiError stabilityError(int status, String message) {
        ObjectNode o = PromptStore.JSON.createObjectNode();
        o.put("name", "bad_request");
        o.putArray("errors").add(message);
        o.put("error", message);
        return new ApiError(status, o);
    }
}
