package jdiffusion.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.http.Context;
import io.javalin.http.HandlerType;
import io.javalin.http.UploadedFile;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;
import javax.imageio.IIOImage;
import javax.imageio.ImageIO;
import javax.imageio.ImageWriteParam;
import javax.imageio.ImageWriter;
import javax.imageio.stream.ImageOutputStream;
import jdiffusion.io.SafeTensors;
import jdiffusion.workflow.ModelPaths;
import jdiffusion.workflow.WorkflowException;

/**
 * The rest of ComfyUI's API, as its own front end (CONTRACT.md beside the shared build) and its SDKs call it, each at
 * {@code /x} and {@code /api/x}: features, logs, users, settings and user data (one user, "default", whose files
 * live in {@code user/default/} and cannot leave it), the model library ({@code /experiment/models},
 * {@code /view_metadata}), folder paths, files, {@code /upload/mask}, the jobs list of the queue and history panels,
 * {@code /view?preview=jpeg;Q}, and the empty answers ({@code /i18n}, {@code /workflow_templates}, ...) the front end
 * needs as JSON rather than a 404.
 */
final class ComfyExtraRoutes {
    static final String USER = "default";

    private final JDiffusionServer server;
    private final ModelPaths paths;
    private final Path users;

    ComfyExtraRoutes(JDiffusionServer server) {
        this.server = server;
        this.paths = server.paths();
        this.users = paths.base().resolve("user");
    }

    void register() {
        both(HandlerType.GET, "/features", ctx -> JDiffusionServer.json(ctx, featureFlags(server.config())));
        both(HandlerType.GET, "/internal/logs", ctx -> JDiffusionServer.json(ctx,
                PromptStore.JSON.getNodeFactory().textNode(server.log().text())));
        both(HandlerType.GET, "/internal/logs/raw", ctx -> JDiffusionServer.json(ctx, server.log().raw()));
        both(HandlerType.PATCH, "/internal/logs/subscribe", this::subscribeLogs);
        both(HandlerType.GET, "/internal/folder_paths", this::folderPaths);
        both(HandlerType.GET, "/internal/files/{type}", this::internalFiles);
        both(HandlerType.GET, "/users", this::getUsers);
        both(HandlerType.POST, "/users", ctx -> {
            throw ApiError.status(400, "this server has one user (\"default\"); it does not add users");
        });
        both(HandlerType.GET, "/settings", ctx -> JDiffusionServer.json(ctx, settings()));
        both(HandlerType.POST, "/settings", this::postSettings);
        both(HandlerType.GET, "/settings/{id}", ctx -> {
            JsonNode v = settings().get(ctx.pathParam("id"));
            JDiffusionServer.json(ctx, v == null ? com.fasterxml.jackson.databind.node.NullNode.getInstance() : v);
        });
        both(HandlerType.POST, "/settings/{id}", this::postSetting);
        both(HandlerType.GET, "/userdata", this::listUserdata);
        both(HandlerType.GET, "/v2/userdata", this::listUserdataV2);
        both(HandlerType.GET, "/userdata/<file>", this::getUserdata);
        both(HandlerType.POST, "/userdata/<file>", this::postUserdata);
        both(HandlerType.DELETE, "/userdata/<file>", this::deleteUserdata);
        both(HandlerType.GET, "/experiment/models", this::modelFolders);
        both(HandlerType.GET, "/experiment/models/{folder}", this::modelsIn);
        both(HandlerType.GET, "/view_metadata/{folder}", this::viewMetadata);
        both(HandlerType.POST, "/upload/mask", this::uploadMask);
        both(HandlerType.GET, "/jobs", this::jobs);
        both(HandlerType.GET, "/jobs/{id}", this::job);
        for (String empty : List.of("/i18n", "/workflow_templates", "/global_subgraphs", "/node_replacements")) {
            both(HandlerType.GET, empty, ctx -> JDiffusionServer.json(ctx, PromptStore.JSON.createObjectNode()));
        }
        both(HandlerType.GET, "/global_subgraphs/{id}", ctx -> {
            throw ApiError.status(404, "no global subgraph '" + ctx.pathParam("id") + "'");
        });
    }

    private void both(HandlerType type, String path, io.javalin.http.Handler h) {
        server.both(type, path, h);
    }

    /** The server's feature flags (GET /features and the websocket handshake). */
    static ObjectNode featureFlags(ServerConfig config) {
        ObjectNode o = PromptStore.JSON.createObjectNode();
        o.put("supports_preview_metadata", false);
        o.put("max_upload_size", config.maxBodyBytes());
        o.putObject("extension").putObject("manager").put("supports_v4", false);
        return o;
    }

    private void subscribeLogs(Context ctx) {
        JsonNode body = ApiError.readJson(ctx);
        String id = body.path("clientId").asText("");
        if (id.isBlank()) {
            throw ApiError.status(400, "clientId is required");
        }
        server.log().subscribe(id, body.path("enabled").asBoolean(false));
        ctx.status(200);
    }

    private void folderPaths(Context ctx) {
        ObjectNode out = PromptStore.JSON.createObjectNode();
        for (String kind : ModelPaths.MODEL_KINDS.keySet().stream().sorted().toList()) {
            ArrayNode a = out.putArray(kind);
            paths.folders(kind).forEach(p -> a.add(p.toString()));
        }
        out.putArray("custom_nodes");
        JDiffusionServer.json(ctx, out);
    }

    private void internalFiles(Context ctx) throws IOException {
        Path folder = switch (ctx.pathParam("type")) {
            case "input" -> paths.inputDir();
            case "output" -> paths.outputDir();
            case "temp" -> paths.tempDir();
            default -> throw ApiError.status(400, "type must be input, output or temp");
        };
        ArrayNode out = PromptStore.JSON.createArrayNode();
        if (Files.isDirectory(folder)) {
            try (Stream<Path> s = Files.list(folder)) {
                s.filter(p -> Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS))
                        .sorted(Comparator.comparing(ComfyExtraRoutes::modified).reversed())
                        .forEach(p -> out.add(p.getFileName().toString()));
            }
        }
        JDiffusionServer.json(ctx, out);
    }

    private static long modified(Path p) {
        try {
            return Files.getLastModifiedTime(p, LinkOption.NOFOLLOW_LINKS).toMillis();
        } catch (IOException e) {
            return 0;
        }
    }

    // ---- users and settings ----

    private void getUsers(Context ctx) {
        ObjectNode o = PromptStore.JSON.createObjectNode();
        o.put("storage", "server");
        o.put("migrated", true);
        JDiffusionServer.json(ctx, o);
    }

    /** The one user's folder (ComfyUI's user/default), created on first use. */
    private Path userDir() throws IOException {
        Path dir = users.resolve(USER);
        Files.createDirectories(dir);
        return dir;
    }

    private Path settingsFile() throws IOException {
        return userDir().resolve("comfy.settings.json");
    }

    private synchronized ObjectNode settings() throws IOException {
        Path f = settingsFile();
        if (Files.isRegularFile(f)) {
            try {
                JsonNode n = PromptStore.JSON.readTree(f.toFile());
                if (n != null && n.isObject()) {
                    return (ObjectNode) n;
                }
            } catch (IOException e) {
                server.log().line("WARN", "settings file " + f + " is not JSON; starting from {}");
            }
        }
        return PromptStore.JSON.createObjectNode();
    }

    private synchronized void saveSettings(ObjectNode s) throws IOException {
        write(settingsFile(), s.toPrettyString().getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }

    private synchronized void postSettings(Context ctx) throws IOException {
        JsonNode body = ApiError.readJson(ctx);
        ObjectNode s = settings();
        s.setAll((ObjectNode) body);
        saveSettings(s);
        ctx.status(200);
    }

    private synchronized void postSetting(Context ctx) throws IOException {
        JsonNode value;
        try {
            value = PromptStore.JSON.readTree(ctx.body());
        } catch (IOException e) {
            throw ApiError.status(400, "the setting's value must be JSON");
        }
        ObjectNode s = settings();
        s.set(ctx.pathParam("id"), value == null ? com.fasterxml.jackson.databind.node.NullNode.getInstance() : value);
        saveSettings(s);
        ctx.status(200);
    }

    // ---- user data ----

    /** A path inside the user's folder; 403 when it would leave it (.., absolute, a link out). */
    private Path userPath(String rel) throws IOException {
        Path dir = userDir();
        if (rel == null || rel.isEmpty()) {
            return dir;
        }
        try {
            return ModelPaths.within(dir, rel);
        } catch (WorkflowException e) {
            throw ApiError.status(403, "'" + rel + "' is outside the user's folder: " + e.getMessage());
        }
    }

    private static String decoded(Context ctx) {
        return java.net.URLDecoder.decode(ctx.pathParam("file").replace("+", "%2B"),
                java.nio.charset.StandardCharsets.UTF_8);
    }

    private void listUserdata(Context ctx) throws IOException {
        String dir = ctx.queryParam("dir");
        if (dir == null || dir.isBlank()) {
            throw ApiError.status(400, "dir is required");
        }
        Path folder = userPath(dir);
        if (!Files.isDirectory(folder, LinkOption.NOFOLLOW_LINKS)) {
            throw ApiError.status(404, "no folder '" + dir + "'");
        }
        boolean recurse = "true".equalsIgnoreCase(ctx.queryParam("recurse"));
        boolean fullInfo = "true".equalsIgnoreCase(ctx.queryParam("full_info"));
        boolean split = "true".equalsIgnoreCase(ctx.queryParam("split"));
        ArrayNode out = PromptStore.JSON.createArrayNode();
        try (Stream<Path> s = recurse ? Files.walk(folder) : Files.list(folder)) {
            for (Path p : s.filter(p -> Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)).sorted().toList()) {
                String rel = folder.relativize(p).toString().replace('\\', '/');
                if (fullInfo) {
                    ObjectNode o = out.addObject();
                    o.put("path", rel);
                    o.put("size", Files.size(p));
                    o.put("modified", modified(p) / 1000.0);
                } else if (split) {
                    ArrayNode a = out.addArray();
                    a.add(rel);
                    for (String part : rel.split("/")) {
                        a.add(part);
                    }
                } else {
                    out.add(rel);
                }
            }
        }
        JDiffusionServer.json(ctx, out);
    }

    private void listUserdataV2(Context ctx) throws IOException {
        String rel = ctx.queryParam("path");
        Path folder = userPath(rel == null ? "" : rel);
        if (!Files.isDirectory(folder, LinkOption.NOFOLLOW_LINKS)) {
            throw ApiError.status(404, "no folder '" + rel + "'");
        }
        Path root = userDir();
        ArrayNode out = PromptStore.JSON.createArrayNode();
        try (Stream<Path> s = Files.list(folder)) {
            for (Path p : s.sorted().toList()) {
                if (Files.isSymbolicLink(p)) {
                    continue;
                }
                ObjectNode o = out.addObject();
                o.put("name", p.getFileName().toString());
                o.put("path", root.relativize(p).toString().replace('\\', '/'));
                boolean dir = Files.isDirectory(p);
                o.put("type", dir ? "directory" : "file");
                if (!dir) {
                    o.put("size", Files.size(p));
                }
                o.put("modified", modified(p) / 1000.0);
            }
        }
        JDiffusionServer.json(ctx, out);
    }

    private void getUserdata(Context ctx) throws IOException {
        String rel = decoded(ctx);
        Path p = userPath(rel);
        if (!Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)) {
            throw ApiError.status(404, "no user file '" + rel + "'");
        }
        String n = p.getFileName().toString().toLowerCase(Locale.ROOT);
        ctx.contentType(n.endsWith(".json") ? "application/json" : n.endsWith(".css") ? "text/css"
                : FileRoutes.contentType(p));
        ctx.result(Files.readAllBytes(p));
    }

    private void postUserdata(Context ctx) throws IOException {
        String rel = decoded(ctx);
        int move = rel.indexOf("/move/");
        boolean overwrite = !"false".equalsIgnoreCase(ctx.queryParam("overwrite"));
        boolean fullInfo = "true".equalsIgnoreCase(ctx.queryParam("full_info"));
        Path target;
        if (move >= 0) {
            Path source = userPath(rel.substring(0, move));
            target = userPath(rel.substring(move + 6));
            if (!Files.isRegularFile(source, LinkOption.NOFOLLOW_LINKS)) {
                throw ApiError.status(404, "no user file '" + rel.substring(0, move) + "'");
            }
            if (!overwrite && Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
                throw ApiError.status(409, "'" + rel.substring(move + 6) + "' exists");
            }
            Files.createDirectories(target.getParent());
            Files.move(source, target, StandardCopyOption.REPLACE_EXISTING);
        } else {
            target = userPath(rel);
            if (!overwrite && Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
                throw ApiError.status(409, "'" + rel + "' exists");
            }
            if (Files.isDirectory(target)) {
                throw ApiError.status(400, "'" + rel + "' is a folder");
            }
            write(target, ctx.bodyAsBytes());
        }
        String path = userDir().relativize(target).toString().replace('\\', '/');
        if (fullInfo) {
            ObjectNode o = PromptStore.JSON.createObjectNode();
            o.put("path", path);
            o.put("size", Files.size(target));
            o.put("modified", modified(target) / 1000.0);
            JDiffusionServer.json(ctx, o);
        } else {
            JDiffusionServer.json(ctx, PromptStore.JSON.getNodeFactory().textNode(path));
        }
    }

    private void deleteUserdata(Context ctx) throws IOException {
        String rel = decoded(ctx);
        Path p = userPath(rel);
        if (!Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)) {
            throw ApiError.status(404, "no user file '" + rel + "'");
        }
        Files.delete(p);
        ctx.status(204);
    }

    /** Writes through a temporary file moved over the target: a link at the target is replaced, not followed. */
    private static void write(Path target, byte[] bytes) throws IOException {
        Files.createDirectories(target.getParent());
        Path tmp = Files.createTempFile(target.getParent(), ".write-", ".tmp");
        try {
            Files.write(tmp, bytes);
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    // ---- model library ----

    private static String kind(String folder) {
        String kind = folder.equals("unet") ? "diffusion_models" : folder;
        if (!ModelPaths.MODEL_KINDS.containsKey(kind)) {
            throw ApiError.status(404, "unknown model folder '" + folder + "'");
        }
        return kind;
    }

    private void modelFolders(Context ctx) {
        ArrayNode out = PromptStore.JSON.createArrayNode();
        for (String kind : ModelPaths.MODEL_KINDS.keySet().stream().sorted().toList()) {
            ObjectNode o = out.addObject();
            o.put("name", kind);
            ArrayNode f = o.putArray("folders");
            paths.folders(kind).forEach(p -> f.add(p.toString()));
        }
        JDiffusionServer.json(ctx, out);
    }

    private void modelsIn(Context ctx) {
        String kind = kind(ctx.pathParam("folder"));
        List<Path> folders = paths.folders(kind);
        ArrayNode out = PromptStore.JSON.createArrayNode();
        for (String name : paths.list(kind)) {
            ObjectNode o = out.addObject();
            o.put("name", name);
            Path file = paths.resolve(kind, name);
            int index = 0;
            for (int i = 0; i < folders.size(); i++) {
                if (file.startsWith(folders.get(i).toAbsolutePath().normalize())) {
                    index = i;
                    break;
                }
            }
            o.put("pathIndex", index);
            o.put("modified", modified(file) / 1000.0);
            try {
                o.put("size", Files.size(file));
            } catch (IOException e) {
                // listed without a size
            }
        }
        JDiffusionServer.json(ctx, out);
    }

    /** The safetensors header's __metadata__, as ComfyUI; 404 when the file has none. */
    private void viewMetadata(Context ctx) {
        String kind = kind(ctx.pathParam("folder"));
        String name = ctx.queryParam("filename");
        if (name == null || name.isBlank()) {
            throw ApiError.status(400, "filename is required");
        }
        if (!name.endsWith(".safetensors") && !name.endsWith(".sft")) {
            throw ApiError.status(404, "'" + name + "' is not a safetensors file");
        }
        Path file;
        try {
            file = paths.resolve(kind, name);
        } catch (WorkflowException e) {
            throw ApiError.status(404, e.getMessage());
        }
        ObjectNode out = PromptStore.JSON.createObjectNode();
        try (SafeTensors st = SafeTensors.open(file)) {
            st.metadata().forEach(out::put);
        } catch (IOException | RuntimeException e) {
            throw ApiError.status(400, "'" + name + "': " + e.getMessage());
        }
        if (out.isEmpty()) {
            throw ApiError.status(404, "'" + name + "' has no metadata");
        }
        JDiffusionServer.json(ctx, out);
    }

    // ---- /upload/mask and /view?preview= ----

    /** ComfyUI's mask editor: the original_ref image with the uploaded image's alpha channel, saved in input/. */
    private void uploadMask(Context ctx) throws IOException {
        UploadedFile image = ctx.uploadedFile("image");
        String ref = ctx.formParam("original_ref");
        if (image == null || ref == null) {
            throw ApiError.status(400, "the form needs an 'image' file and 'original_ref'");
        }
        JsonNode r;
        try {
            r = PromptStore.JSON.readTree(ref);
        } catch (IOException e) {
            throw ApiError.status(400, "original_ref must be JSON {filename, subfolder, type}");
        }
        if (r == null || !r.path("filename").isTextual()) {
            throw ApiError.status(400, "original_ref must be JSON {filename, subfolder, type}");
        }
        Path original;
        try {
            original = server.jobs().file(r);
        } catch (WorkflowException e) {
            throw ApiError.status(400, e.getMessage());
        }
        if (!Files.isRegularFile(original, LinkOption.NOFOLLOW_LINKS)) {
            throw ApiError.status(404, "no original image '" + r.path("filename").asText() + "'");
        }
        BufferedImage base = FileRoutes.decode(Files.readAllBytes(original), "original_ref",
                server.config().maxPixels());
        BufferedImage mask;
        try (InputStream in = image.content()) {
            mask = FileRoutes.decode(in.readAllBytes(), "image", server.config().maxPixels());
        }
        BufferedImage out = new BufferedImage(base.getWidth(), base.getHeight(), BufferedImage.TYPE_INT_ARGB);
        boolean alpha = mask.getColorModel().hasAlpha();
        for (int y = 0; y < base.getHeight(); y++) {
            for (int x = 0; x < base.getWidth(); x++) {
                int mx = Math.min(mask.getWidth() - 1, x * mask.getWidth() / base.getWidth());
                int my = Math.min(mask.getHeight() - 1, y * mask.getHeight() / base.getHeight());
                int a = alpha ? mask.getRGB(mx, my) >>> 24 : 255;
                out.setRGB(x, y, a << 24 | (base.getRGB(x, y) & 0xFFFFFF));
            }
        }
        String name = image.filename();
        if (name == null || name.isBlank() || name.contains("/") || name.contains("\\")) {
            throw ApiError.status(400, "bad image file name '" + name + "': a plain name, no folders");
        }
        name = name.replaceFirst("\\.[^.]*$", "") + ".png";
        String sub = ctx.formParam("subfolder") == null ? "" : ctx.formParam("subfolder");
        Path target;
        try {
            target = ModelPaths.within(paths.inputDir(), sub.isEmpty() ? name : sub + "/" + name);
        } catch (WorkflowException e) {
            throw ApiError.status(400, e.getMessage());
        }
        boolean overwrite = "true".equalsIgnoreCase(ctx.formParam("overwrite")) || "1".equals(ctx.formParam("overwrite"));
        String stem = name.replaceFirst("\\.png$", "");
        for (int i = 1; !overwrite && Files.exists(target, LinkOption.NOFOLLOW_LINKS); i++) {
            target = ModelPaths.within(paths.inputDir(), (sub.isEmpty() ? "" : sub + "/") + stem + " (" + i + ").png");
        }
        ByteArrayOutputStream png = new ByteArrayOutputStream();
        ImageIO.write(out, "png", png);
        write(target, png.toByteArray());
        ObjectNode o = PromptStore.JSON.createObjectNode();
        o.put("name", target.getFileName().toString());
        o.put("subfolder", sub);
        o.put("type", "input");
        JDiffusionServer.json(ctx, o);
    }

    /**
     * /view; with {@code preview=jpeg;Q} the image re-encoded. {@code webp;Q} is served as JPEG too: Maven Central
     * has no pure-Java WebP encoder (its WebP writers, org.sejda.imageio:webp-imageio, webp4j and the like, bind the
     * native libwebp; TwelveMonkeys' imageio-webp only reads), and the content type says what was sent.
     */
    void view(Context ctx) throws IOException {
        String preview = ctx.queryParam("preview");
        server.files().view(ctx);
        if (preview == null || preview.isBlank()) {
            return;
        }
        String[] parts = preview.split(";");
        String format = parts[0].trim().toLowerCase(Locale.ROOT);
        if (!format.equals("jpeg") && !format.equals("webp")) {
            return; // ComfyUI serves the file itself for other formats
        }
        int quality = 90;
        if (parts.length > 1) {
            try {
                quality = Math.max(1, Math.min(100, Integer.parseInt(parts[1].trim())));
            } catch (NumberFormatException e) {
                throw ApiError.status(400, "preview quality must be an integer, not '" + parts[1] + "'");
            }
        }
        byte[] bytes;
        try (InputStream in = ctx.resultInputStream()) {
            bytes = in.readAllBytes();
        }
        BufferedImage src = ImageIO.read(new ByteArrayInputStream(bytes));
        if (src == null) {
            ctx.result(bytes);
            return;
        }
        ctx.contentType("image/jpeg").result(jpeg(src, quality / 100f));
    }

    static byte[] jpeg(BufferedImage src, float quality) throws IOException {
        BufferedImage rgb = new BufferedImage(src.getWidth(), src.getHeight(), BufferedImage.TYPE_INT_RGB);
        rgb.getGraphics().drawImage(src, 0, 0, null);
        ImageWriter w = ImageIO.getImageWritersByFormatName("jpeg").next();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (ImageOutputStream ios = ImageIO.createImageOutputStream(out)) {
            w.setOutput(ios);
            ImageWriteParam p = w.getDefaultWriteParam();
            p.setCompressionMode(ImageWriteParam.MODE_EXPLICIT);
            p.setCompressionQuality(quality);
            w.write(null, new IIOImage(rgb, null, null), p);
        } finally {
            w.dispose();
        }
        return out.toByteArray();
    }

    // ---- jobs ----

    /** A prompt as ComfyUI's jobs API lists it. */
    static ObjectNode job(PromptStore.Entry e, boolean full) {
        ObjectNode j = PromptStore.JSON.createObjectNode();
        j.put("id", e.promptId());
        String status = switch (e.state()) {
            case "pending" -> "pending";
            case "running" -> "in_progress";
            default -> doneStatus(e.status());
        };
        j.put("status", status);
        j.put("priority", e.number());
        JsonNode extra = e.extraData() == null ? PromptStore.JSON.createObjectNode() : e.extraData();
        if (extra.has("create_time")) {
            j.put("create_time", extra.get("create_time").asLong());
        }
        JsonNode wfId = extra.path("extra_pnginfo").path("workflow").path("id");
        if (wfId.isTextual()) {
            j.put("workflow_id", wfId.asText());
        }
        if (e.status() != null) {
            for (JsonNode m : e.status().path("messages")) {
                String type = m.path(0).asText();
                long t = m.path(1).path("timestamp").asLong(0);
                if (type.equals("execution_start")) {
                    j.put("execution_start_time", t);
                } else if (type.equals("execution_success") || type.equals("execution_error")
                        || type.equals("execution_interrupted")) {
                    j.put("execution_end_time", t);
                }
                if (type.equals("execution_error")) {
                    ObjectNode err = ((ObjectNode) m.path(1)).deepCopy();
                    err.remove("timestamp");
                    j.set("execution_error", err);
                }
            }
        }
        int count = 0;
        ObjectNode preview = null;
        if (e.outputs() != null) {
            for (var node : e.outputs().properties()) {
                for (JsonNode img : node.getValue().path("images")) {
                    count++;
                    if (preview == null || "output".equals(img.path("type").asText())
                            && !"output".equals(preview.path("type").asText())) {
                        preview = PromptStore.JSON.createObjectNode();
                        preview.put("filename", img.path("filename").asText());
                        preview.put("subfolder", img.path("subfolder").asText(""));
                        preview.put("type", img.path("type").asText("output"));
                        preview.put("nodeId", node.getKey());
                        preview.put("mediaType", "images");
                    }
                }
            }
        }
        if (e.outputs() != null) {
            j.put("outputs_count", count);
        }
        if (preview != null) {
            j.set("preview_output", preview);
        }
        if (full) {
            j.set("outputs", e.outputs() == null ? PromptStore.JSON.createObjectNode() : e.outputs());
            ObjectNode wf = j.putObject("workflow");
            wf.set("prompt", e.prompt());
            wf.set("extra_data", extra);
            if (e.status() != null) {
                j.set("execution_status", e.status());
            }
        }
        return j;
    }

    private static String doneStatus(JsonNode status) {
        if (status == null) {
            return "failed";
        }
        if ("success".equals(status.path("status_str").asText())) {
            return "completed";
        }
        for (JsonNode m : status.path("messages")) {
            if (m.path(0).asText().equals("execution_interrupted")) {
                return "cancelled";
            }
        }
        return "failed";
    }

    private void jobs(Context ctx) {
        List<String> wanted = new ArrayList<>();
        String st = ctx.queryParam("status");
        if (st != null && !st.isBlank()) {
            for (String s : st.split(",")) {
                String v = s.trim();
                if (!List.of("pending", "in_progress", "completed", "failed", "cancelled").contains(v)) {
                    throw ApiError.status(400, "status must be pending, in_progress, completed, failed or cancelled,"
                            + " not '" + v + "'");
                }
                wanted.add(v);
            }
        }
        int limit = intParam(ctx, "limit", -1);
        int offset = Math.max(0, intParam(ctx, "offset", 0));
        String workflowId = ctx.queryParam("workflow_id");
        String sortBy = ctx.queryParam("sort_by") == null ? "created_at" : ctx.queryParam("sort_by");
        boolean asc = "asc".equalsIgnoreCase(ctx.queryParam("sort_order"));
        PromptStore store = server.store();
        List<ObjectNode> all = new ArrayList<>();
        for (PromptStore.Entry e : store.running()) {
            all.add(job(e, false));
        }
        for (PromptStore.Entry e : store.pending()) {
            all.add(job(e, false));
        }
        for (PromptStore.Entry e : store.history(0)) {
            all.add(job(e, false));
        }
        List<ObjectNode> picked = new ArrayList<>();
        for (ObjectNode j : all) {
            if ((wanted.isEmpty() || wanted.contains(j.path("status").asText()))
                    && (workflowId == null || workflowId.equals(j.path("workflow_id").asText(null)))) {
                picked.add(j);
            }
        }
        Comparator<ObjectNode> order = sortBy.equals("execution_duration")
                ? Comparator.comparingLong(j -> j.path("execution_end_time").asLong(0)
                        - j.path("execution_start_time").asLong(0))
                : Comparator.comparingLong((ObjectNode j) -> j.path("create_time").asLong(0))
                        .thenComparingLong(j -> j.path("priority").asLong());
        picked.sort(asc ? order : order.reversed());
        int total = picked.size();
        int end = limit < 0 ? total : Math.min(total, offset + limit);
        ObjectNode out = PromptStore.JSON.createObjectNode();
        ArrayNode jobs = out.putArray("jobs");
        for (int i = offset; i < end; i++) {
            jobs.add(picked.get(i));
        }
        ObjectNode page = out.putObject("pagination");
        page.put("offset", offset);
        if (limit < 0) {
            page.putNull("limit");
        } else {
            page.put("limit", limit);
        }
        page.put("total", total);
        page.put("has_more", end < total);
        JDiffusionServer.json(ctx, out);
    }

    private void job(Context ctx) {
        PromptStore.Entry e = server.store().get(ctx.pathParam("id"));
        if (e == null) {
            throw ApiError.status(404, "Job not found");
        }
        JDiffusionServer.json(ctx, job(e, true));
    }

    private static int intParam(Context ctx, String name, int def) {
        String v = ctx.queryParam(name);
        if (v == null || v.isBlank()) {
            return def;
        }
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw ApiError.status(400, name + " must be an integer, not '" + v + "'");
        }
    }
}
