package jdiffusion.text;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import jdiffusion.io.Container;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.TensorInfo;

/**
 * Textual-inversion embeddings in one or more folders ({@code models/embeddings}), found and read as ComfyUI's
 * {@code load_embed} does:
 * <ul>
 * <li>{@code embedding:NAME} looks for {@code NAME}, {@code NAME.safetensors}, {@code NAME.pt}, {@code NAME.bin} in
 * each folder in order (subfolders by '/'); a name that leaves its folder is not looked up.</li>
 * <li>Which tensor holds the vectors: A1111's {@code string_to_param} (its first entry); else the tensor named after
 * the text encoder ({@code clip_l}, {@code clip_g}, {@code clip_h}: SDXL files hold one per encoder); else the first
 * tensor ({@code emb_params} of A1111's safetensors; safetensors names in sorted order, as safetensors' load_file
 * gives them). A tensor of any rank is read as rows of its last dimension.</li>
 * <li>PyTorch {@code .pt/.bin} files go through the safe pickle reader (nothing in them is executed).</li>
 * </ul>
 * A1111 writes embeddings by their bare file name in prompts; {@link #a1111Names(boolean)} makes
 * {@link #rewriteA1111(String)} turn such names into {@code embedding:NAME} first (library level: the A1111 API
 * sets it).
 */
public final class Embeddings {
    /** What {@link #list} reports per file: for the server's {@code /embeddings}. */
    public record Info(String name, Path file, int vectors, String family, Map<String, Integer> widths) {
    }

    /** One file's candidate tensors, in ComfyUI's order of preference, as float rows. */
    private record Loaded(Map<String, float[][]> tensors, String a1111Param) {
    }

    private static final List<String> EXTENSIONS = List.of(".safetensors", ".pt", ".bin");
    /** An embedding has a few tensors of a few vectors; a file beyond these is something else (a checkpoint). */
    private static final int MAX_TENSORS = 64;
    private static final long MAX_VALUES = 16L << 20;
    private static final Embeddings NONE = new Embeddings(List.of(), false, new ConcurrentHashMap<>());

    private final List<Path> folders;
    private final boolean a1111Names;
    private final Map<Path, Loaded> cache;

    private Embeddings(List<Path> folders, boolean a1111Names, Map<Path, Loaded> cache) {
        this.folders = folders;
        this.a1111Names = a1111Names;
        this.cache = cache;
    }

    /** No embeddings: {@code embedding:name} stays prompt text. */
    public static Embeddings none() {
        return NONE;
    }

    /** The embeddings in these folders, searched in order (missing folders are skipped). */
    public static Embeddings folders(List<Path> folders) {
        List<Path> abs = folders.stream().map(p -> p.toAbsolutePath().normalize()).toList();
        return new Embeddings(abs, false, new ConcurrentHashMap<>());
    }

    public static Embeddings folder(Path folder) {
        return folders(List.of(folder));
    }

    /** True when there is no folder to look in ({@link #none()}). */
    public boolean isNone() {
        return folders.isEmpty();
    }

    public List<Path> folderList() {
        return folders;
    }

    /** These embeddings with A1111's bare-name matching on or off (files already read stay cached). */
    public Embeddings a1111Names(boolean on) {
        return new Embeddings(folders, on, cache);
    }

    public boolean a1111Names() {
        return a1111Names;
    }

    /** The file {@code embedding:name} refers to, or null (ComfyUI's search, confined to each folder). */
    public Path find(String name) {
        for (Path dir : folders) {
            Path p = dir.resolve(name).toAbsolutePath().normalize();
            if (!p.startsWith(dir) || p.equals(dir)) {
                continue;
            }
            if (Files.isRegularFile(p)) {
                return p;
            }
            for (String ext : EXTENSIONS) {
                Path q = p.resolveSibling(p.getFileName() + ext);
                if (Files.isRegularFile(q)) {
                    return q;
                }
            }
        }
        return null;
    }

    /**
     * The vectors of embedding name for the text encoder called encoderName (clip_l, clip_h, clip_g), or null when
     * there is no such file. A file that cannot be read (corrupt, refused pickle, no tensor) is a one-line
     * {@link IllegalArgumentException} naming it.
     */
    public float[][] vectors(String name, String encoderName) {
        Path file = find(name);
        if (file == null) {
            return null;
        }
        Loaded l = load(file);
        if (l.a1111Param() != null) {
            return l.tensors().get(l.a1111Param());
        }
        float[][] keyed = l.tensors().get(encoderName);
        return keyed != null ? keyed : l.tensors().values().iterator().next();
    }

    /** The lookup one text encoder's tokenizer uses. */
    public ClipTokenizer.EmbeddingLookup lookup(String encoderName) {
        return isNone() ? null : name -> vectors(name, encoderName);
    }

    private Loaded load(Path file) {
        Loaded l = cache.get(file);
        if (l == null) {
            try {
                l = read(file);
            } catch (ModelFormatException e) {
                throw new IllegalArgumentException("embedding " + e.getMessage(), e);
            }
            cache.put(file, l);
        }
        return l;
    }

    private static Loaded read(Path file) throws ModelFormatException {
        try (SafeTensors st = SafeTensors.open(file, "")) {
            List<String> names = new ArrayList<>(st.names());
            if (st.container() == Container.SAFETENSORS) {
                names.sort(Comparator.naturalOrder());
            }
            long values = 0;
            for (String n : names) {
                values += st.info(n).numel();
            }
            if (names.size() > MAX_TENSORS || values > MAX_VALUES) {
                throw new ModelFormatException(file + ": " + names.size() + " tensors of " + values
                        + " values in all, too large for an embedding");
            }
            Map<String, float[][]> tensors = new LinkedHashMap<>();
            String a1111 = null;
            for (String n : names) {
                TensorInfo info = st.info(n);
                if (!info.dtype().isFloat() || info.rank() == 0 || info.numel() == 0) {
                    continue;
                }
                tensors.put(n, rows(st.floats(n), info));
                if (a1111 == null && n.startsWith("string_to_param.")) {
                    a1111 = n;
                }
            }
            if (tensors.isEmpty()) {
                throw new ModelFormatException(file + ": no float tensor, not an embedding");
            }
            return new Loaded(tensors, a1111);
        }
    }

    private static float[][] rows(float[] v, TensorInfo info) {
        int width = Math.toIntExact(info.shape()[info.rank() - 1]);
        int n = v.length / width;
        float[][] out = new float[n][];
        for (int i = 0; i < n; i++) {
            out[i] = java.util.Arrays.copyOfRange(v, i * width, (i + 1) * width);
        }
        return out;
    }

    /**
     * A1111's bare names: every whole-word occurrence of an embedding's file name (without extension, matched
     * case-insensitively as A1111 matches tokens of its lower-cased prompt) that is not already written
     * {@code embedding:NAME} becomes {@code embedding:NAME}. Longer names win over their prefixes. Unchanged when
     * {@link #a1111Names()} is off.
     */
    public String rewriteA1111(String prompt) {
        if (!a1111Names || isNone() || prompt.isEmpty()) {
            return prompt;
        }
        List<String> names = new ArrayList<>();
        for (Path dir : folders) {
            for (Info i : list(dir)) {
                if (!i.name().contains("/") && i.name().chars().noneMatch(Character::isWhitespace)
                        && !names.contains(i.name())) {
                    names.add(i.name());
                }
            }
        }
        if (names.isEmpty()) {
            return prompt;
        }
        names.sort(Comparator.comparingInt(String::length).reversed());
        StringBuilder alt = new StringBuilder();
        for (String n : names) {
            alt.append(alt.isEmpty() ? "" : "|").append(Pattern.quote(n));
        }
        Pattern p = Pattern.compile("(?<![\\p{L}\\p{N}_:])(" + alt + ")(?![\\p{L}\\p{N}_])",
                Pattern.CASE_INSENSITIVE | Pattern.UNICODE_CASE);
        Matcher m = p.matcher(prompt);
        StringBuilder out = new StringBuilder();
        while (m.find()) {
            String found = m.group(1);
            String canonical = names.stream().filter(n -> n.equalsIgnoreCase(found)).findFirst().orElse(found);
            boolean spaceBefore = m.start() == 0 || prompt.charAt(m.start() - 1) == ' ' || prompt.charAt(m.start() - 1) == '\n';
            // ComfyUI recognises embedding: only at a piece start or after a space or newline
            m.appendReplacement(out, Matcher.quoteReplacement((spaceBefore ? "" : " ") + "embedding:" + canonical));
        }
        m.appendTail(out);
        return out.toString();
    }

    /**
     * The embeddings in a folder (recursively; names relative, '/'-separated, without extension; sorted): vector
     * count, the target family read from the widths (768 CLIP-L: SD1, 1024 OpenCLIP-H: SD2, clip_l + clip_g: SDXL,
     * else "unknown") and each candidate tensor's width. Unreadable files are left out.
     */
    public static List<Info> list(Path folder) {
        if (!Files.isDirectory(folder)) {
            return List.of();
        }
        List<Info> out = new ArrayList<>();
        try (Stream<Path> files = Files.walk(folder, 8)) {
            for (Path f : files.filter(Files::isRegularFile).sorted().toList()) {
                String rel = folder.relativize(f).toString().replace('\\', '/');
                String lower = rel.toLowerCase(Locale.ROOT);
                String ext = EXTENSIONS.stream().filter(lower::endsWith).findFirst().orElse(null);
                if (ext == null && !lower.endsWith(".pth") && !lower.endsWith(".ckpt")) {
                    continue;
                }
                try {
                    Loaded l = read(f);
                    Map<String, Integer> widths = new LinkedHashMap<>();
                    l.tensors().forEach((k, v) -> widths.put(k, v[0].length));
                    float[][] main = l.a1111Param() != null ? l.tensors().get(l.a1111Param()) : l.tensors().values().iterator().next();
                    String name = ext == null ? rel : rel.substring(0, rel.length() - ext.length());
                    out.add(new Info(name, f, main.length, family(l, widths), widths));
                } catch (ModelFormatException | RuntimeException e) {
                    // not an embedding: left out of the list
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out;
    }

    private static String family(Loaded l, Map<String, Integer> widths) {
        if (widths.containsKey("clip_l") && widths.containsKey("clip_g")) {
            return "SDXL";
        }
        int w = l.a1111Param() != null ? widths.get(l.a1111Param()) : widths.values().iterator().next();
        return switch (w) {
            case 768 -> "SD1";
            case 1024 -> "SD2";
            case 1280 -> "SDXL";
            default -> "unknown";
        };
    }
}
