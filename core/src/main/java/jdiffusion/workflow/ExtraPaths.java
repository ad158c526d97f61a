package jdiffusion.workflow;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * ComfyUI's {@code extra_model_paths.yaml}: named sections, each with a {@code base_path} and per-kind folders
 * relative to it (a block scalar {@code |} lists several). JSON with the same shape is accepted too. Only the subset
 * of YAML that file uses is read (nested maps by indentation, plain or quoted scalars, {@code |} blocks, comments),
 * so core needs no YAML library.
 */
final class ExtraPaths {
    private ExtraPaths() {
    }

    /** Kind to folders (absolute), in file order. */
    static Map<String, List<Path>> read(Path file) {
        String text;
        String bad = jdiffusion.io.RegularFiles.problem(file);
        if (bad != null) {
            throw new WorkflowException("cannot read extra paths file " + file + ": " + bad);
        }
        try {
            text = Files.readString(file);
        } catch (IOException e) {
            throw new WorkflowException("cannot read extra paths file " + file + ": " + e.getMessage());
        }
        Map<String, Map<String, String>> sections = text.stripLeading().startsWith("{")
                ? parseJson(file, text) : parseYaml(file, text);
        Path dir = file.toAbsolutePath().getParent();
        Map<String, List<Path>> out = new LinkedHashMap<>();
        for (var section : sections.entrySet()) {
            Map<String, String> s = section.getValue();
            Path base = s.containsKey("base_path") ? dir.resolve(expandHome(s.get("base_path"))) : dir;
            for (var e : s.entrySet()) {
                if (e.getKey().equals("base_path") || e.getKey().equals("is_default")) {
                    continue;
                }
                for (String line : e.getValue().split("\n")) {
                    String folder = line.strip();
                    if (!folder.isEmpty()) {
                        out.computeIfAbsent(e.getKey(), k -> new ArrayList<>())
                                .add(base.resolve(expandHome(folder)).normalize());
                    }
                }
            }
        }
        return out;
    }

    private static String expandHome(String p) {
        return p.startsWith("~/") ? System.getProperty("user.home") + p.substring(1) : p;
    }

    private static Map<String, Map<String, String>> parseJson(Path file, String text) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(text);
        } catch (IOException e) {
            throw new WorkflowException(file + ": not valid JSON: " + String.valueOf(e.getMessage()).replace('\n', ' '));
        }
        Map<String, Map<String, String>> out = new LinkedHashMap<>();
        for (var section : root.properties()) {
            if (!section.getValue().isObject()) {
                throw new WorkflowException(file + ": section '" + section.getKey() + "' must be an object");
            }
            Map<String, String> s = new LinkedHashMap<>();
            for (var e : section.getValue().properties()) {
                JsonNode v = e.getValue();
                s.put(e.getKey(), v.isArray() ? joinLines(v) : v.asText());
            }
            out.put(section.getKey(), s);
        }
        return out;
    }

    private static String joinLines(JsonNode array) {
        StringBuilder sb = new StringBuilder();
        array.forEach(n -> sb.append(n.asText()).append('\n'));
        return sb.toString();
    }

    /** Two levels: "section:" at indent 0, "key: value" or "key: |" + more-indented lines below it. */
    private static Map<String, Map<String, String>> parseYaml(Path file, String text) {
        Map<String, Map<String, String>> out = new LinkedHashMap<>();
        Map<String, String> section = null;
        String blockKey = null;
        int blockIndent = -1;
        StringBuilder block = new StringBuilder();
        String[] lines = text.split("\r?\n");
        for (int i = 0; i < lines.length; i++) {
            String raw = lines[i];
            int indent = indentOf(raw);
            String content = stripComment(raw).strip();
            if (blockKey != null) {
                if (content.isEmpty() || indent > blockIndent) {
                    block.append(content).append('\n');
                    continue;
                }
                section.put(blockKey, block.toString());
                blockKey = null;
                block.setLength(0);
            }
            if (content.isEmpty() || content.equals("---")) {
                continue;
            }
            int colon = content.indexOf(':');
            if (colon <= 0) {
                throw new WorkflowException(file + ":" + (i + 1) + ": expected 'key: value', got '" + content + "'");
            }
            String key = unquote(content.substring(0, colon).strip());
            String value = content.substring(colon + 1).strip();
            if (indent == 0) {
                if (!value.isEmpty()) {
                    throw new WorkflowException(file + ":" + (i + 1) + ": top-level '" + key
                            + "' must be a section (a map of folders)");
                }
                section = new LinkedHashMap<>();
                out.put(key, section);
            } else {
                if (section == null) {
                    throw new WorkflowException(file + ":" + (i + 1) + ": '" + key + "' is outside any section");
                }
                if (value.equals("|") || value.equals("|-") || value.equals(">")) {
                    blockKey = key;
                    blockIndent = indent;
                } else {
                    section.put(key, unquote(value));
                }
            }
        }
        if (blockKey != null) {
            section.put(blockKey, block.toString());
        }
        return out;
    }

    private static int indentOf(String line) {
        int n = 0;
        while (n < line.length() && (line.charAt(n) == ' ' || line.charAt(n) == '\t')) {
            n++;
        }
        return n;
    }

    /** Drops a '#' comment that starts a line or follows whitespace (a '#' inside a path stays). */
    private static String stripComment(String line) {
        for (int i = 0; i < line.length(); i++) {
            if (line.charAt(i) == '#' && (i == 0 || Character.isWhitespace(line.charAt(i - 1)))) {
                return line.substring(0, i);
            }
        }
        return line;
    }

    private static String unquote(String s) {
        if (s.length() >= 2 && (s.startsWith("\"") && s.endsWith("\"") || s.startsWith("'") && s.endsWith("'"))) {
            return s.substring(1, s.length() - 1);
        }
        return s;
    }
}
