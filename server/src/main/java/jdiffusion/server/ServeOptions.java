package jdiffusion.server;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * How the server presents itself, beside {@link ServerConfig}: another front end's static build to serve in place of
 * jdiffusion's page ({@code --front-end-root}, e.g. ComfyUI's own front end), and ComfyUI's {@code --preview-method}
 * (latent previews over the websocket: none unless asked, by this or by a prompt's extra_data).
 *
 * @param frontEndRoot  a folder with an index.html, or null for jdiffusion's page
 * @param previewMethod none, auto, latent2rgb or taesd
 */
public record ServeOptions(Path frontEndRoot, String previewMethod) {
    public static final List<String> PREVIEW_METHODS = List.of("none", "auto", "latent2rgb", "taesd");

    public static final ServeOptions DEFAULT = new ServeOptions(null, "none");

    public ServeOptions {
        if (previewMethod == null) {
            previewMethod = "none";
        }
        if (!PREVIEW_METHODS.contains(previewMethod)) {
            throw new IllegalArgumentException("--preview-method must be one of " + PREVIEW_METHODS + ", not '"
                    + previewMethod + "'");
        }
        if (frontEndRoot != null) {
            frontEndRoot = frontEndRoot.toAbsolutePath().normalize();
            if (!Files.isRegularFile(frontEndRoot.resolve("index.html"))) {
                throw new IllegalArgumentException("--front-end-root " + frontEndRoot + " has no index.html");
            }
            try {
                // the real folder: the static file handler refuses files reached through a symbolic link (an alias),
                // so a front end installed behind a linked folder would answer 404 for every file
                frontEndRoot = frontEndRoot.toRealPath();
            } catch (java.io.IOException e) {
                throw new IllegalArgumentException("--front-end-root " + frontEndRoot + ": " + e.getMessage());
            }
        }
    }
}
