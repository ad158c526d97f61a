package jdiffusion.server;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.Javalin;
import io.javalin.http.Context;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.model.TextConditioner;
import jdiffusion.model.mmdit.Sd3Config;
import jdiffusion.model.upscale.UpscaleModel;
import jdiffusion.workflow.ModelPaths;

/**
 * What the web page needs to know about the model files that {@code /object_info} does not say:
 * {@code GET /jdiffusion/models} answers each checkpoint's family (SD1, SD2, SDXL, SD3; read from the tensor names
 * in the file's header, null when unreadable) and each upscale model's scale and architecture (read from its tensors
 * as the loader does), so the page can build the SD3 workflow for an SD3 / SD3.5 checkpoint and size an upscale.
 * Results are cached by path, size and modification time.
 *
 * <pre>
 *   {"checkpoints": [{"name": "sd3.5_medium.safetensors", "family": "SD3"}],
 *    "upscale_models": [{"name": "4x-UltraSharp.pth", "scale": 4, "architecture": "ESRGAN"}]}
 * </pre>
 */
final class PageModelRoutes {
    private final JDiffusionServer server;
    private final Map<String, ObjectNode> cache = new ConcurrentHashMap<>();

    PageModelRoutes(JDiffusionServer server) {
        this.server = server;
    }

    void register(Javalin app) {
        app.get("/jdiffusion/models", this::models);
    }

    private void models(Context ctx) {
        ModelPaths paths = server.paths();
        ObjectNode body = PromptStore.JSON.createObjectNode();
        ArrayNode checkpoints = body.putArray("checkpoints");
        for (String name : paths.list("checkpoints")) {
            checkpoints.add(describe(paths, "checkpoints", name));
        }
        ArrayNode upscalers = body.putArray("upscale_models");
        for (String name : paths.list("upscale_models")) {
            upscalers.add(describe(paths, "upscale_models", name));
        }
        JDiffusionServer.json(ctx, body);
    }

    private ObjectNode describe(ModelPaths paths, String kind, String name) {
        Path file;
        String key;
        try {
            file = paths.resolve(kind, name);
            key = kind + "/" + file + "/" + Files.size(file) + "/" + Files.getLastModifiedTime(file).toMillis();
        } catch (IOException | RuntimeException e) {
            return unreadable(kind, name, "cannot read " + name);
        }
        return cache.computeIfAbsent(key, k -> kind.equals("checkpoints") ? checkpoint(file, name)
                : upscaler(file, name)).deepCopy();
    }

    private static ObjectNode checkpoint(Path file, String name) {
        ObjectNode o = PromptStore.JSON.createObjectNode();
        o.put("name", name);
        try (SafeTensors f = SafeTensors.open(file)) {
            o.put("family", Sd3Config.isSd3(f) ? "SD3" : TextConditioner.detect(f).name());
        } catch (ModelFormatException | RuntimeException e) {
            o.putNull("family");
            o.put("error", message(e, file, name));
        }
        return o;
    }

    private static ObjectNode upscaler(Path file, String name) {
        ObjectNode o = PromptStore.JSON.createObjectNode();
        o.put("name", name);
        try {
            UpscaleModel m = UpscaleModel.open(file);
            o.put("scale", m.scale());
            o.put("architecture", m.architecture());
        } catch (ModelFormatException | RuntimeException e) {
            o.putNull("scale");
            o.put("error", message(e, file, name));
        }
        return o;
    }

    /** The error's first line, the model's name in place of its path (the server's folders are not shown). */
    private static String message(Exception e, Path file, String name) {
        String m = String.valueOf(e.getMessage()).replace(file.toString(), name);
        int nl = m.indexOf('\n');
        return nl < 0 ? m : m.substring(0, nl);
    }

    private static ObjectNode unreadable(String kind, String name, String message) {
        ObjectNode o = PromptStore.JSON.createObjectNode();
        o.put("name", name);
        o.putNull(kind.equals("checkpoints") ? "family" : "scale");
        o.put("error", String.valueOf(message));
        return o;
    }
}
