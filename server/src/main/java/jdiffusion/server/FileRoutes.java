package jdiffusion.server;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.http.Context;
import io.javalin.http.UploadedFile;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Locale;
import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.stream.ImageInputStream;
import jdiffusion.workflow.ModelPaths;
import jdiffusion.workflow.WorkflowException;

/**
 * /view and /upload/image. Names are relative to the input, output or temp folder: {@code ..}, absolute paths and
 * links leading out of the folder are refused (400) by {@link ModelPaths#within}; an upload must be a PNG or JPEG
 * within the pixel limit, is stored as PNG (what LoadImage reads) and written to a temporary file first, then moved
 * over the name, so a link at the target is replaced rather than followed.
 */
final class FileRoutes {
    private final ModelPaths paths;
    private final ServerConfig config;

    FileRoutes(ModelPaths paths, ServerConfig config) {
        this.paths = paths;
        this.config = config;
    }

    private Path folder(String type) {
        return switch (type == null || type.isEmpty() ? "output" : type) {
            case "output" -> paths.outputDir();
            case "input" -> paths.inputDir();
            case "temp" -> paths.tempDir();
            default -> throw ApiError.status(400, "type must be output, input or temp, not '" + type + "'");
        };
    }

    /** folder/subfolder/name, refusing names that leave the folder. */
    private static Path inside(Path folder, String subfolder, String name) {
        String rel = subfolder == null || subfolder.isEmpty() ? name : subfolder + "/" + name;
        try {
            if (subfolder != null && !subfolder.isEmpty()) {
                ModelPaths.within(folder, subfolder);
            }
            return ModelPaths.within(folder, rel);
        } catch (WorkflowException e) {
            throw ApiError.status(400, e.getMessage());
        }
    }

    void view(Context ctx) throws IOException {
        String name = ctx.queryParam("filename");
        if (name == null || name.isEmpty()) {
            throw ApiError.status(400, "filename is required");
        }
        Path file = inside(folder(ctx.queryParam("type")), ctx.queryParam("subfolder"), name);
        if (!Files.isRegularFile(file)) {
            throw ApiError.status(404, "no file '" + name + "'");
        }
        ctx.contentType(contentType(file));
        ctx.header("Content-Disposition", "filename=\"" + file.getFileName().toString().replace("\"", "") + "\"");
        ctx.result(Files.readAllBytes(file));
    }

    static String contentType(Path file) {
        String n = file.getFileName().toString().toLowerCase(Locale.ROOT);
        if (n.endsWith(".png")) {
            return "image/png";
        }
        if (n.endsWith(".jpg") || n.endsWith(".jpeg")) {
            return "image/jpeg";
        }
        if (n.endsWith(".webp")) {
            return "image/webp";
        }
        return "application/octet-stream";
    }

    void upload(Context ctx) throws IOException {
        UploadedFile image = ctx.uploadedFile("image");
        if (image == null) {
            throw ApiError.status(400, "the form needs an 'image' file");
        }
        String type = ctx.formParam("type");
        Path folder = folder(type == null ? "input" : type);
        String subfolder = ctx.formParam("subfolder");
        boolean overwrite = "true".equalsIgnoreCase(ctx.formParam("overwrite")) || "1".equals(ctx.formParam("overwrite"));
        String name = image.filename();
        if (name == null || name.isBlank() || name.contains("/") || name.contains("\\")) {
            throw ApiError.status(400, "bad image file name '" + name + "': a plain name, no folders");
        }
        if (name.chars().anyMatch(c -> c < 32 || c == 127)) {
            throw ApiError.status(400, "bad image file name: it holds control characters");
        }
        if (name.replaceFirst("\\.[^.]*$", "").replace(".", "").isBlank()) {
            throw ApiError.status(400, "bad image file name '" + name + "': it needs a name before the extension");
        }
        byte[] bytes;
        try (InputStream in = image.content()) {
            bytes = in.readAllBytes();
        }
        byte[] png = asPng(bytes, name);
        if (!name.toLowerCase(Locale.ROOT).endsWith(".png")) {
            name = name.replaceFirst("\\.[^.]*$", "") + ".png";
        }
        Path target = inside(folder, subfolder, name);
        if (!overwrite) {
            target = freeName(folder, subfolder, name);
        }
        write(target, png);
        ObjectNode out = PromptStore.JSON.createObjectNode();
        out.put("name", target.getFileName().toString());
        out.put("subfolder", subfolder == null ? "" : subfolder);
        out.put("type", type == null ? "input" : type);
        JDiffusionServer.json(ctx, out);
    }

    /** ComfyUI's "name (1).png" when a file of that name exists. */
    private static Path freeName(Path folder, String subfolder, String name) {
        Path p = inside(folder, subfolder, name);
        String stem = name.replaceFirst("\\.png$", "");
        for (int i = 1; Files.exists(p, java.nio.file.LinkOption.NOFOLLOW_LINKS); i++) {
            p = inside(folder, subfolder, stem + " (" + i + ").png");
        }
        return p;
    }

    private static void write(Path target, byte[] bytes) throws IOException {
        Files.createDirectories(target.getParent());
        Path tmp = Files.createTempFile(target.getParent(), ".upload-", ".tmp");
        try {
            Files.write(tmp, bytes);
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    /** Decodes the upload (checking its size from the header before decoding) and encodes it as PNG. */
    private byte[] asPng(byte[] bytes, String name) throws IOException {
        BufferedImage img = decode(bytes, name, config.maxPixels());
        if (isPng(bytes)) {
            return bytes; // already what LoadImage reads: keep the exact pixels
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ImageIO.write(img, "png", out);
        return out.toByteArray();
    }

    static boolean isPng(byte[] b) {
        return b.length > 8 && (b[0] & 255) == 0x89 && b[1] == 'P' && b[2] == 'N' && b[3] == 'G';
    }

    static BufferedImage decode(byte[] bytes, String name, long maxPixels) throws IOException {
        try (ImageInputStream in = ImageIO.createImageInputStream(new ByteArrayInputStream(bytes))) {
            var readers = ImageIO.getImageReaders(in);
            if (in == null || !readers.hasNext()) {
                throw ApiError.status(400, "'" + name + "' is not a PNG or JPEG image");
            }
            ImageReader r = readers.next();
            try {
                r.setInput(in);
                long pixels = (long) r.getWidth(0) * r.getHeight(0);
                if (pixels > maxPixels) {
                    throw ApiError.status(413, "'" + name + "' is " + r.getWidth(0) + "x" + r.getHeight(0)
                            + ", over this server's limit of " + maxPixels + " pixels");
                }
                return r.read(0);
            } catch (IOException | RuntimeException e) {
                if (e instanceof ApiError a) {
                    throw a;
                }
                throw ApiError.status(400, "'" + name + "' cannot be decoded: " + e.getMessage());
            } finally {
                r.dispose();
            }
        }
    }
}
