package jdiffusion.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Map;

/**
 * The server's own bounds on a prompt, on top of the node classes' ranges: steps, batch and latent size. A prompt
 * past them is refused like a validation error, in ComfyUI's node_errors shape, before it is queued.
 */
final class Limits {
    private final ServerConfig config;

    Limits(ServerConfig config) {
        this.config = config;
    }

    /** null when the prompt is within bounds, else the 400 body {error, node_errors}. */
    ObjectNode check(JsonNode prompt) {
        ObjectNode nodeErrors = PromptStore.JSON.createObjectNode();
        for (Map.Entry<String, JsonNode> node : prompt.properties()) {
            JsonNode in = node.getValue().path("inputs");
            long w = in.path("width").asLong(0);
            long h = in.path("height").asLong(0);
            over(nodeErrors, node, "steps", in.path("steps"), config.maxSteps());
            over(nodeErrors, node, "batch_size", in.path("batch_size"), config.maxBatch());
            if (in.path("width").isNumber() && in.path("height").isNumber() && w * h > config.maxPixels()) {
                add(nodeErrors, node, "width", "width x height " + w + "x" + h + " is over this server's limit of "
                        + config.maxPixels() + " pixels");
            }
        }
        if (nodeErrors.isEmpty()) {
            return null;
        }
        ObjectNode body = PromptStore.JSON.createObjectNode();
        ObjectNode error = body.putObject("error");
        error.put("type", "prompt_outputs_failed_validation");
        error.put("message", "Prompt outputs failed validation");
        error.put("details", "");
        error.putObject("extra_info");
        body.set("node_errors", nodeErrors);
        return body;
    }

    private static void over(ObjectNode errors, Map.Entry<String, JsonNode> node, String input, JsonNode v,
            long max) {
        if (v.isNumber() && v.asLong() > max) {
            add(errors, node, input, input + " " + v.asLong() + " is over this server's limit of " + max);
        }
    }

    private static void add(ObjectNode errors, Map.Entry<String, JsonNode> node, String input, String details) {
        ObjectNode ne = (ObjectNode) errors.get(node.getKey());
        if (ne == null) {
            ne = errors.putObject(node.getKey());
            ne.putArray("errors");
            ne.putArray("dependent_outputs");
            ne.put("class_type", node.getValue().path("class_type").asText());
        }
        ObjectNode e = ((com.fasterxml.jackson.databind.node.ArrayNode) ne.get("errors")).addObject();
        e.put("type", "value_bigger_than_max");
        e.put("message", "Value bigger than max of server limit");
        e.put("details", details);
        e.putObject("extra_info").put("input_name", input);
    }
}
