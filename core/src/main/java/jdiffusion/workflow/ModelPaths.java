package jdiffusion.workflow;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeSet;
import java.util.stream.Stream;

/**
 * ComfyUI's folder layout under a base directory: {@code models/checkpoints}, {@code models/loras}, {@code models/vae},
 * {@code models/diffusion_models} (and the older {@code models/unet}), {@code models/text_encoders} (and the older
 * {@code models/clip}), {@code input/}, {@code output/}, {@code temp/},
 * plus extra model folders from an {@code extra_model_paths.yaml}-shaped file ({@link ExtraPaths}).
 *
 * <p>File names in node inputs are relative to those folders. A name with {@code ..}, an absolute path, or one that
 * resolves (through links) outside its folder is refused: a workflow names files, it cannot reach the disk.
 */
public final class ModelPaths {
    /** Model kinds a node can list, with their folders under {@code models/}. */
    public static final Map<String, List<String>> MODEL_KINDS = Map.of(
            "checkpoints", List.of("checkpoints"),
            "loras", List.of("loras"),
            "vae", List.of("vae"),
            "diffusion_models", List.of("diffusion_models", "unet"),
            "embeddings", List.of("embeddings"),
            "text_encoders", List.of("text_encoders", "clip"),
            "upscale_models", List.of("upscale_models"),
            "controlnet", List.of("controlnet", "t2i_adapter"),
            "vae_approx", List.of("vae_approx"));

    /** safetensors and PyTorch pickles (read by the safe pickle reader); the container is recognised by content. */
    private static final List<String> MODEL_EXTENSIONS = jdiffusion.io.Container.MODEL_EXTENSIONS;
    private static final List<String> IMAGE_EXTENSIONS = List.of(".png");

    private final Path base;
    private final Map<String, List<Path>> folders;

    private ModelPaths(Path base, Map<String, List<Path>> folders) {
        this.base = base;
        this.folders = folders;
    }

    /** The layout under {@code base}; creates {@code input}, {@code output}, {@code temp} and the model folders. */
    public static ModelPaths of(Path base) {
        Path b = base.toAbsolutePath().normalize();
        Map<String, List<Path>> folders = new LinkedHashMap<>();
        for (var e : MODEL_KINDS.entrySet()) {
            List<Path> list = new ArrayList<>();
            for (String sub : e.getValue()) {
                list.add(b.resolve("models").resolve(sub));
            }
            folders.put(e.getKey(), list);
        }
        ModelPaths p = new ModelPaths(b, folders);
        p.createFolders();
        return p;
    }

    /** This layout plus the folders of an extra-paths file (YAML or JSON, ComfyUI's shape). */
    public ModelPaths withExtraPaths(Path file) {
        Map<String, List<Path>> merged = new LinkedHashMap<>();
        folders.forEach((k, v) -> merged.put(k, new ArrayList<>(v)));
        for (var e : ExtraPaths.read(file).entrySet()) {
            String kind = e.getKey().equals("unet") ? "diffusion_models"
                    : e.getKey().equals("clip") ? "text_encoders" : e.getKey();
            if (merged.containsKey(kind)) {
                merged.get(kind).addAll(e.getValue());
            }
        }
        return new ModelPaths(base, merged);
    }

    private void createFolders() {
        try {
            for (Path p : List.of(inputDir(), outputDir(), tempDir())) {
                Files.createDirectories(p);
            }
            for (List<Path> list : folders.values()) {
                Files.createDirectories(list.getFirst());
            }
        } catch (IOException e) {
            throw new WorkflowException("cannot create the folders under " + base + ": " + e.getMessage());
        }
    }

    public Path base() {
        return base;
    }

    public Path inputDir() {
        return base.resolve("input");
    }

    public Path outputDir() {
        return base.resolve("output");
    }

    public Path tempDir() {
        return base.resolve("temp");
    }

    /** The folders searched for a model kind, in order. */
    public List<Path> folders(String kind) {
        List<Path> list = folders.get(kind);
        if (list == null) {
            throw new IllegalArgumentException("unknown model kind '" + kind + "'; known: " + folders.keySet());
        }
        return List.copyOf(list);
    }

    /** Model file names of a kind (relative, '/'-separated, sorted), as a combo input lists them. */
    public List<String> list(String kind) {
        return listFiles(folders(kind), MODEL_EXTENSIONS, false);
    }

    /** Image files in {@code input/} (LoadImage's list). */
    public List<String> inputImages() {
        return listFiles(List.of(inputDir()), IMAGE_EXTENSIONS, true);
    }

    /**
     * The file a model name refers to; a one-line error when the name is unsafe or the file is not there. Unlike
     * input and output files, model files may be symbolic links: whoever set up the model folders put them there (a
     * shared model store is usually linked in), and a request can still name only what is listed in these folders.
     */
    public Path resolve(String kind, String name) {
        for (Path folder : folders(kind)) {
            Path p = nameWithin(folder, name);
            if (Files.isRegularFile(p)) {
                return p;
            }
        }
        throw new WorkflowException(kind + " file '" + name + "' not found in " + folders(kind));
    }

    /** An input image by name. */
    public Path resolveInput(String name) {
        Path p = within(inputDir(), name);
        if (!Files.isRegularFile(p)) {
            throw new WorkflowException("input image '" + name + "' not found in " + inputDir());
        }
        return p;
    }

    /**
     * folder/name after checking that name is relative, has no {@code ..}, and (following links) stays inside
     * folder. The file itself need not exist (SaveImage targets).
     */
    public static Path within(Path folder, String name) {
        Path p = nameWithin(folder, name);
        checkNoLinkOut(folder.toAbsolutePath().normalize(), p, name);
        return p;
    }

    /** folder/name after checking the name alone: relative, no {@code ..}, no NUL; links are not followed. */
    private static Path nameWithin(Path folder, String name) {
        if (name == null || name.isEmpty()) {
            throw new WorkflowException("empty file name");
        }
        if (name.indexOf('\0') >= 0) {
            throw new WorkflowException("file name contains a NUL character");
        }
        String unified = name.replace('\\', '/');
        if (unified.startsWith("/") || unified.matches("^[A-Za-z]:.*") || Path.of(name).isAbsolute()) {
            throw new WorkflowException("file name '" + name + "' is absolute; names are relative to " + folder);
        }
        for (String part : unified.split("/")) {
            if (part.equals("..")) {
                throw new WorkflowException("file name '" + name + "' contains '..'");
            }
        }
        Path root = folder.toAbsolutePath().normalize();
        Path p = root.resolve(unified).normalize();
        if (!p.startsWith(root)) {
            throw new WorkflowException("file name '" + name + "' leads out of " + folder);
        }
        return p;
    }

    /** The deepest existing ancestor of p (p itself when it exists), resolved through links, must stay in root. */
    private static void checkNoLinkOut(Path root, Path p, String name) {
        try {
            Path realRoot = Files.exists(root) ? root.toRealPath() : root;
            Path existing = p;
            while (existing != null && !Files.exists(existing, LinkOption.NOFOLLOW_LINKS)) {
                existing = existing.getParent();
            }
            if (existing == null || !existing.startsWith(root)) {
                return;
            }
            if (Files.isSymbolicLink(existing) && !Files.exists(existing)) {
                throw new WorkflowException("file name '" + name + "' is a dangling link");
            }
            if (!existing.toRealPath().startsWith(realRoot)) {
                throw new WorkflowException("file name '" + name + "' is a link leading out of " + root);
            }
        } catch (IOException e) {
            throw new WorkflowException("cannot read '" + name + "': " + e.getMessage());
        }
    }

    private static List<String> listFiles(List<Path> roots, List<String> extensions, boolean refuseLinksOut) {
        TreeSet<String> names = new TreeSet<>();
        for (Path root : roots) {
            if (!Files.isDirectory(root)) {
                continue;
            }
            Path start;
            try {
                start = root.toRealPath(); // a folder that is itself a link (a shared model store) is walked too
            } catch (IOException e) {
                continue;
            }
            try (Stream<Path> s = Files.walk(start)) {
                s.filter(Files::isRegularFile)
                        .filter(p -> hasExtension(p, extensions))
                        .map(p -> start.relativize(p).toString().replace('\\', '/'))
                        .filter(n -> isSafe(root, n, refuseLinksOut))
                        .forEach(names::add);
            } catch (IOException | java.io.UncheckedIOException e) {
                // an unreadable folder lists nothing; resolve() reports the file when a node asks for it
            }
        }
        return List.copyOf(names);
    }

    private static boolean isSafe(Path root, String name, boolean refuseLinksOut) {
        try {
            if (refuseLinksOut) {
                within(root, name);
            } else {
                nameWithin(root, name);
            }
            return true;
        } catch (WorkflowException e) {
            return false;
        }
    }

    private static boolean hasExtension(Path p, List<String> extensions) {
        String n = p.getFileName().toString().toLowerCase(Locale.ROOT);
        return extensions.stream().anyMatch(n::endsWith);
    }
}
