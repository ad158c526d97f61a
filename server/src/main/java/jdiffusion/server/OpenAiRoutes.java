package jdiffusion.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.Javalin;
import io.javalin.http.Context;
import io.javalin.http.Handler;
import io.javalin.http.UploadedFile;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.InputStream;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.Base64;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * OpenAI's image API: {@code POST /v1/images/generations} (JSON), {@code POST /v1/images/edits} (multipart image,
 * optional mask whose transparent pixels are the area to repaint) and {@code GET /v1/models} (the checkpoints). A
 * request's {@code model} names a checkpoint (unknown names, such as "dall-e-3", use the current one, so clients with a
 * fixed model name work), {@code size} is "WxH", {@code n} the batch, {@code response_format} b64_json or url (a
 * {@code /view} link to the saved image); quality and style are accepted and ignored. Errors are OpenAI's
 * {@code {error: {message, type, param, code}}} with its status codes.
 */
final class OpenAiRoutes {
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final Pattern SIZE = Pattern.compile("(\\d{1,5})x(\\d{1,5})");

    private final ApiJobs jobs;

    OpenAiRoutes(ApiJobs jobs) {
        this.jobs = jobs;
    }

    void register(Javalin app) {
        app.post("/v1/images/generations", wrap(this::generations));
        app.post("/v1/images/edits", wrap(this::edits));
        app.post("/v1/images/variations", wrap(ctx -> {
            throw error(400, "variations are not supported; use /v1/images/edits with a prompt", null,
                    "unsupported");
        }));
        app.get("/v1/models", wrap(this::models));
        app.get("/v1/models/{model}", wrap(this::model));
    }

    /** An error in OpenAI's shape. */
    static ApiError error(int status, String message, String param, String code) {
        ObjectNode o = PromptStore.JSON.createObjectNode();
        ObjectNode e = o.putObject("error");
        e.put("message", message);
        e.put("type", status >= 500 ? "server_error" : "invalid_request_error");
        e.put("param", param);
        e.put("code", code);
        return new ApiError(status, o);
    }

    /** Any other error of the shared code ({error: message}) in OpenAI's shape, same status. */
    private static Handler wrap(Handler h) {
        return ctx -> {
            try {
                h.handle(ctx);
            } catch (ApiError e) {
                if (e.body.path("error").isObject()) {
                    throw e;
                }
                String msg = e.body.path("error").isTextual() ? e.body.path("error").asText() : e.body.toString();
                throw error(e.status, msg, null, null);
            }
        };
    }

    private void models(Context ctx) {
        ObjectNode out = PromptStore.JSON.createObjectNode();
        out.put("object", "list");
        ArrayNode data = out.putArray("data");
        for (String c : jobs.paths().list("checkpoints")) {
            data.add(modelJson(c));
        }
        JDiffusionServer.json(ctx, out);
    }

    private void model(Context ctx) {
        String name = ctx.pathParam("model");
        String found = jobs.find("checkpoints", name);
        if (found == null) {
            throw error(404, "The model '" + name + "' does not exist", "model", "model_not_found");
        }
        JDiffusionServer.json(ctx, modelJson(found));
    }

    private ObjectNode modelJson(String checkpoint) {
        ObjectNode m = PromptStore.JSON.createObjectNode();
        m.put("id", checkpoint);
        m.put("object", "model");
        long created = 0;
        try {
            created = Files.getLastModifiedTime(jobs.paths().resolve("checkpoints", checkpoint)).toMillis() / 1000;
        } catch (IOException | RuntimeException e) {
            // no time: 0
        }
        m.put("created", created);
        m.put("owned_by", "jdiffusion");
        return m;
    }

    /** What generations and edits have in common. */
    private record Request(String prompt, String model, int n, int width, int height, String format) {
    }

    private Request request(String prompt, String model, String n, String size, String format, int[] defaultSize) {
        if (prompt == null || prompt.isBlank()) {
            throw error(400, "prompt is required", "prompt", "missing_required_parameter");
        }
        int count = 1;
        if (n != null && !n.isBlank()) {
            try {
                count = Integer.parseInt(n.trim());
            } catch (NumberFormatException e) {
                throw error(400, "n must be an integer, not '" + n + "'", "n", "invalid_value");
            }
        }
        if (count < 1 || count > jobs.server().config().maxBatch()) {
            throw error(400, "n must be 1.." + jobs.server().config().maxBatch() + ", not " + count, "n",
                    "invalid_value");
        }
        int w = defaultSize[0];
        int h = defaultSize[1];
        if (size != null && !size.isBlank() && !size.equals("auto")) {
            Matcher m = SIZE.matcher(size.trim());
            if (!m.matches()) {
                throw error(400, "size must look like 1024x1024, not '" + size + "'", "size", "invalid_value");
            }
            w = Integer.parseInt(m.group(1));
            h = Integer.parseInt(m.group(2));
            if (w < 16 || h < 16 || w % 8 != 0 || h % 8 != 0) {
                throw error(400, "size " + size + ": width and height must be multiples of 8, at least 16", "size",
                        "invalid_value");
            }
        }
        String f = format == null || format.isBlank() ? "b64_json" : format;
        if (!f.equals("b64_json") && !f.equals("url")) {
            throw error(400, "response_format must be b64_json or url, not '" + format + "'", "response_format",
                    "invalid_value");
        }
        String checkpoint;
        String found = model == null || model.isBlank() ? null : jobs.find("checkpoints", model.trim());
        checkpoint = found != null ? found : jobs.checkpoint(null);
        return new Request(prompt, checkpoint, count, w, h, f);
    }

    private void generations(Context ctx) throws IOException {
        JsonNode body;
        try {
            body = ApiError.readJson(ctx);
        } catch (ApiError e) {
            throw error(400, e.getMessage(), null, "invalid_json");
        }
        for (String key : List.of("prompt", "model", "size", "response_format", "quality", "style")) {
            JsonNode v = body.get(key);
            if (v != null && !v.isNull() && !v.isTextual()) {
                throw error(400, key + " must be a string", key, "invalid_type");
            }
        }
        JsonNode nNode = body.get("n");
        if (nNode != null && !nNode.isNull() && !nNode.isIntegralNumber()) {
            throw error(400, "n must be an integer", "n", "invalid_type");
        }
        int side = jobs.server().config().apiSize();
        Request r = request(body.path("prompt").asText(null), body.path("model").asText(null),
                nNode == null || nNode.isNull() ? null : nNode.asText(), body.path("size").asText(null),
                body.path("response_format").asText(null), new int[] {side, side});
        run(ctx, r, null, null);
    }

    private void edits(Context ctx) throws IOException {
        UploadedFile image = ctx.uploadedFile("image");
        if (image == null) {
            image = ctx.uploadedFile("image[]");
        }
        if (image == null) {
            throw error(400, "image is required (a PNG file in the multipart form)", "image",
                    "missing_required_parameter");
        }
        BufferedImage img = read(image, "image");
        String mask = null;
        UploadedFile maskFile = ctx.uploadedFile("mask");
        if (maskFile != null) {
            BufferedImage m = read(maskFile, "mask");
            if (m.getWidth() != img.getWidth() || m.getHeight() != img.getHeight()) {
                throw error(400, "mask is " + m.getWidth() + "x" + m.getHeight() + " but image is " + img.getWidth()
                        + "x" + img.getHeight() + ": they must be the same size", "mask", "invalid_image");
            }
            if (!m.getColorModel().hasAlpha()) {
                throw error(400, "mask must have an alpha channel (its transparent pixels are the area to edit)",
                        "mask", "invalid_image");
            }
            mask = jobs.saveInput(m, "openai-mask");
        }
        String init = jobs.saveInput(img, "openai");
        Request r = request(ctx.formParam("prompt"), ctx.formParam("model"), ctx.formParam("n"),
                ctx.formParam("size"), ctx.formParam("response_format"), new int[] {img.getWidth(), img.getHeight()});
        run(ctx, r, init, mask);
    }

    private BufferedImage read(UploadedFile f, String field) throws IOException {
        byte[] bytes;
        try (InputStream in = f.content()) {
            bytes = in.readAllBytes();
        }
        try {
            return jobs.decode(bytes, field);
        } catch (ApiError e) {
            throw error(e.status, e.getMessage(), field, "invalid_image");
        }
    }

    /** Generates n images (one batch) and answers {created, data: [{b64_json | url, revised_prompt}]}. */
    private void run(Context ctx, Request r, String init, String mask) throws IOException {
        long seed = RANDOM.nextLong(1L << 32);
        boolean edit = init != null;
        Workflows.Settings s = new Workflows.Settings(r.model(), r.prompt(), "", r.width(), r.height(),
                jobs.server().config().apiSteps(), 7.0, "euler", "normal", seed, r.n(), 1.0, init,
                "openai");
        com.fasterxml.jackson.databind.node.ObjectNode prompt = Workflows.prompt(s);
        if (edit) {
            boolean masked = WorkflowEdits.inpaintHook(prompt, mask);
            if (mask != null && !masked) {
                ctx.header("X-JDiffusion-Mask", "ignored: this engine has no inpainting node yet");
            }
            if (!masked) {
                // without a mask the whole image is redrawn from it: img2img at a strength that keeps its layout
                ((ObjectNode) prompt.get("3").get("inputs")).put("denoise", 0.75);
            } else if (r.n() == 1) {
                // as OpenAI's edits do, only the transparent area changes: the result pasted over the image through
                // the mask (LoadImage's MASK, 1 where the mask is transparent); the VAE round trip would otherwise
                // alter the kept pixels too. (ImageCompositeMasked keeps the destination's batch of one: n == 1.)
                ObjectNode comp = prompt.putObject("42");
                comp.put("class_type", "ImageCompositeMasked");
                ObjectNode in = comp.putObject("inputs");
                in.putArray("destination").add(prompt.has("12") ? "12" : "10").add(0);
                in.putArray("source").add("8").add(0);
                in.put("x", 0);
                in.put("y", 0);
                in.put("resize_source", false);
                in.putArray("mask").add("20").add(1);
                ((ObjectNode) prompt.path(Workflows.SAVE_NODE).path("inputs")).putArray("images").add("42").add(0);
            }
        }
        PromptStore.Entry done = jobs.run(prompt);
        ObjectNode out = PromptStore.JSON.createObjectNode();
        out.put("created", System.currentTimeMillis() / 1000);
        ArrayNode data = out.putArray("data");
        for (JsonNode img : done.outputs().path(Workflows.SAVE_NODE).path("images")) {
            ObjectNode d = data.addObject();
            if (r.format().equals("url")) {
                d.put("url", viewUrl(ctx, img));
            } else {
                Path file = jobs.file(img);
                d.put("b64_json", Base64.getEncoder().encodeToString(Files.readAllBytes(file)));
            }
            d.put("revised_prompt", r.prompt());
        }
        if (data.isEmpty()) {
            throw error(500, "the prompt finished without images", null, null);
        }
        JDiffusionServer.json(ctx, out);
    }

    private static String viewUrl(Context ctx, JsonNode img) {
        String base = ctx.scheme() + "://" + ctx.host();
        return base + "/view?filename=" + enc(img.path("filename").asText()) + "&subfolder="
                + enc(img.path("subfolder").asText("")) + "&type=" + enc(img.path("type").asText("output"));
    }

    private static String enc(String s) {
        return URLEncoder.encode(s, StandardCharsets.UTF_8);
    }
}
