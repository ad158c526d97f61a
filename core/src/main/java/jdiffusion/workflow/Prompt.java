package jdiffusion.workflow;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * An API-format prompt: node id to {@code {class_type, inputs}}; an input is a literal or a link
 * {@code [source_id, output_index]}. Only the JSON shape is checked here; {@link PromptValidator} checks the rest.
 */
public record Prompt(ObjectNode json, Map<String, Node> nodes) {

    /** One node as written; classType null when absent. */
    public record Node(String id, String classType, Map<String, JsonNode> inputs) {
    }

    /** A link input: the source node and its output slot. */
    public record Link(String sourceId, int outputIndex) {
    }

    private static final ObjectMapper MAPPER = new ObjectMapper();

    public static Prompt read(Path file) {
        String bad = jdiffusion.io.RegularFiles.problem(file);
        if (bad != null) {
            throw new WorkflowException("cannot read workflow " + file + ": " + bad);
        }
        try {
            return parse(MAPPER.readTree(Files.readString(file)));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new WorkflowException("workflow " + file + " is not valid JSON: " + oneLine(e));
        } catch (IOException e) {
            throw new WorkflowException("cannot read workflow " + file + ": " + oneLine(e));
        }
    }

    public static Prompt parse(String json) {
        try {
            return parse(MAPPER.readTree(json));
        } catch (IOException e) {
            throw new WorkflowException("workflow is not valid JSON: " + oneLine(e));
        }
    }

    /**
     * Accepts the prompt object itself, or an object with a "prompt" member (a /prompt request body). A UI-format
     * workflow (with "nodes" and "links" arrays) is refused with a hint.
     */
    public static Prompt parse(JsonNode root) {
        if (root == null || !root.isObject()) {
            throw new WorkflowException("workflow must be a JSON object of node id -> {class_type, inputs}");
        }
        if (root.has("prompt") && root.get("prompt").isObject()) {
            root = root.get("prompt");
        }
        if (root.has("nodes") && root.get("nodes").isArray() && root.has("links")) {
            throw new WorkflowException("this is a UI-format workflow; export it in API format"
                    + " (ComfyUI: Workflow > Export (API))");
        }
        Map<String, Node> nodes = new LinkedHashMap<>();
        for (var e : root.properties()) {
            JsonNode n = e.getValue();
            if (!n.isObject()) {
                throw new WorkflowException("node " + e.getKey() + " must be an object with class_type and inputs");
            }
            JsonNode ct = n.get("class_type");
            Map<String, JsonNode> inputs = new LinkedHashMap<>();
            JsonNode in = n.get("inputs");
            if (in != null && in.isObject()) {
                for (var i : in.properties()) {
                    inputs.put(i.getKey(), i.getValue());
                }
            } else if (in != null && !in.isNull()) {
                throw new WorkflowException("node " + e.getKey() + ": inputs must be an object");
            }
            nodes.put(e.getKey(), new Node(e.getKey(), ct != null && ct.isTextual() ? ct.asText() : null,
                    Collections.unmodifiableMap(inputs)));
        }
        return new Prompt((ObjectNode) root, Collections.unmodifiableMap(nodes));
    }

    /** A link when the value is an array (ComfyUI's rule); null for a literal. Throws for a malformed link. */
    static Link linkOf(JsonNode value) {
        if (value == null || !value.isArray()) {
            return null;
        }
        if (value.size() != 2 || !(value.get(0).isTextual() || value.get(0).isIntegralNumber())
                || !value.get(1).isIntegralNumber()) {
            throw new IllegalArgumentException("Bad linked input, must be a length-2 list of [node_id, slot_index]");
        }
        if (!value.get(1).canConvertToInt()) {
            throw new IllegalArgumentException("Bad linked input, slot index " + value.get(1) + " is out of range");
        }
        return new Link(value.get(0).asText(), value.get(1).asInt());
    }

    private static String oneLine(IOException e) {
        String m = e instanceof com.fasterxml.jackson.core.JsonProcessingException j ? j.getOriginalMessage()
                : e.getMessage();
        return m == null ? e.toString() : m.replace('\n', ' ');
    }
}
