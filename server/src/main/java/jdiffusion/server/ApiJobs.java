package jdiffusion.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import javax.imageio.ImageIO;
import jdiffusion.workflow.ModelPaths;

/**
 * What the synchronous compatibility APIs (AUTOMATIC1111, OpenAI, Stability) share: the server-wide current
 * checkpoint, queueing an API-format prompt and waiting for it, reading its output files, storing request images in
 * {@code input/}, and the SHA-256 of model files (cached by path, size and modification time). Errors are
 * {@link ApiError}s with {@code {error: message}}; each API re-shapes them into its own error JSON.
 */
final class ApiJobs {
    private static final long WAIT_MINUTES = 60;

    private final JDiffusionServer server;
    private final Map<String, String[]> hashes = new ConcurrentHashMap<>();
    private volatile String currentCheckpoint;

    ApiJobs(JDiffusionServer server) {
        this.server = server;
    }

    JDiffusionServer server() {
        return server;
    }

    ModelPaths paths() {
        return server.paths();
    }

    /** The checkpoint a request without a model uses: the one chosen last (A1111's options), else the first. */
    String currentCheckpoint() {
        String c = currentCheckpoint;
        List<String> all = paths().list("checkpoints");
        if (c != null && all.contains(c)) {
            return c;
        }
        return all.isEmpty() ? null : all.getFirst();
    }

    void setCurrentCheckpoint(String requested) {
        currentCheckpoint = checkpoint(requested);
    }

    /**
     * A checkpoint file name for a requested name: the file name, the name without extension, or A1111's title
     * ({@code name.safetensors [hash]}); null or blank means the current one. 400 when unknown.
     */
    String checkpoint(String requested) {
        List<String> all = paths().list("checkpoints");
        if (requested != null && !requested.isBlank()) {
            String name = requested.trim().replaceFirst("\\s*\\[[0-9a-fA-F]+\\]$", "");
            for (String c : all) {
                if (c.equals(name) || stem(c).equals(name) || stem(c).equals(stem(name))) {
                    return c;
                }
            }
            throw ApiError.status(400, "checkpoint '" + requested + "' is not in models/checkpoints");
        }
        String c = currentCheckpoint();
        if (c == null) {
            throw ApiError.status(400, "no checkpoint in models/checkpoints");
        }
        return c;
    }

    /** A model file name of a kind for a name with or without extension (A1111 names LoRAs by stem); null if none. */
    String find(String kind, String name) {
        for (String f : paths().list(kind)) {
            String s = stem(f);
            if (f.equals(name) || s.equals(name) || s.substring(s.lastIndexOf('/') + 1).equals(name)) {
                return f;
            }
        }
        return null;
    }

    static String stem(String fileName) {
        return fileName.replaceFirst("\\.[^./]*$", "");
    }

    /** Queues a prompt (same validation and limits as POST /prompt) and returns its id. */
    String submit(ObjectNode prompt) {
        return server.submit(prompt, null, null, false, null).promptId();
    }

    /** Queues a prompt and waits for it; 500 naming the failure when it did not succeed. */
    PromptStore.Entry run(ObjectNode prompt) {
        return await(submit(prompt));
    }

    PromptStore.Entry await(String promptId) {
        PromptStore.Entry done;
        try {
            done = server.runner().completion(promptId).get(WAIT_MINUTES, TimeUnit.MINUTES);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw ApiError.status(503, "interrupted while waiting for prompt " + promptId);
        } catch (ExecutionException | TimeoutException e) {
            throw ApiError.status(504, "prompt " + promptId + " did not finish in time");
        }
        JsonNode status = done.status();
        if (status == null || !"success".equals(status.path("status_str").asText())) {
            String msg = "prompt " + promptId + " failed";
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

    /** The image files a node of a finished prompt wrote (output or temp folder). */
    List<Path> outputFiles(PromptStore.Entry done, String node) {
        List<Path> files = new ArrayList<>();
        for (JsonNode img : done.outputs().path(node).path("images")) {
            files.add(file(img));
        }
        if (files.isEmpty()) {
            throw ApiError.status(500, "prompt finished without images");
        }
        return files;
    }

    /** The file of a ComfyUI image reference {filename, subfolder, type}. */
    Path file(JsonNode img) {
        String type = img.path("type").asText("output");
        Path folder = switch (type) {
            case "temp" -> paths().tempDir();
            case "input" -> paths().inputDir();
            default -> paths().outputDir();
        };
        String sub = img.path("subfolder").asText("");
        String name = img.path("filename").asText();
        return ModelPaths.within(folder, sub.isEmpty() ? name : sub + "/" + name);
    }

    /** Stores a request image in input/ under a fresh name (as PNG, which LoadImage reads) and returns the name. */
    String saveInput(BufferedImage image, String prefix) throws IOException {
        String name = prefix + "-" + UUID.randomUUID() + ".png";
        Path target = ModelPaths.within(paths().inputDir(), name);
        Files.createDirectories(target.getParent());
        ImageIO.write(image, "png", target.toFile());
        return name;
    }

    /** A base64 image (a data: URL prefix allowed), decoded within the pixel limit; 400 naming the field. */
    BufferedImage decodeBase64(String data, String what) throws IOException {
        if (data == null || data.isBlank()) {
            throw ApiError.status(400, what + " is empty");
        }
        return FileRoutes.decode(base64(data, what), what, server.config().maxPixels());
    }

    static byte[] base64(String data, String what) {
        String b64 = data.startsWith("data:") ? data.substring(data.indexOf(',') + 1) : data;
        try {
            return Base64.getMimeDecoder().decode(b64);
        } catch (IllegalArgumentException e) {
            throw ApiError.status(400, what + " is not valid base64");
        }
    }

    BufferedImage decode(byte[] bytes, String what) throws IOException {
        return FileRoutes.decode(bytes, what, server.config().maxPixels());
    }

    /** The SHA-256 of a model file, hex; computed once per (path, size, modification time). */
    String sha256(Path file) {
        try {
            String key = file.toAbsolutePath() + "|" + Files.size(file) + "|" + Files.getLastModifiedTime(file);
            String[] cached = hashes.get(file.toString());
            if (cached != null && cached[0].equals(key)) {
                return cached[1];
            }
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            try (InputStream in = Files.newInputStream(file)) {
                byte[] buf = new byte[1 << 20];
                for (int n; (n = in.read(buf)) > 0;) {
                    md.update(buf, 0, n);
                }
            }
            String hex = HexFormat.of().formatHex(md.digest());
            hashes.put(file.toString(), new String[] {key, hex});
            return hex;
        } catch (IOException | NoSuchAlgorithmException e) {
            return null;
        }
    }
}
