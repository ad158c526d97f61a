package jdiffusion.server;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.http.Context;

/** An HTTP error with its JSON body; the server's exception handler writes it. */
final class ApiError extends RuntimeException {
    final int status;
    final transient JsonNode body;

    ApiError(int status, JsonNode body) {
        super(body.path("error").isTextual() ? body.path("error").asText() : body.toString(), null, false, false);
        this.status = status;
        this.body = body;
    }

    /** {error: message}. */
    static ObjectNode body(String message) {
        ObjectNode o = PromptStore.JSON.createObjectNode();
        o.put("error", message);
        return o;
    }

    static ApiError status(int status, String message) {
        return new ApiError(status, body(message));
    }

    /** ComfyUI's invalid_prompt: {error: {type, message, details, extra_info}, node_errors: {}}. */
    static ApiError invalidPrompt(String message, String details) {
        return promptError("invalid_prompt", message, details);
    }

    /** ComfyUI's {error: {type, message, details, extra_info}, node_errors: {}} with the given type. */
    static ApiError promptError(String type, String message, String details) {
        ObjectNode o = PromptStore.JSON.createObjectNode();
        ObjectNode e = o.putObject("error");
        e.put("type", type);
        e.put("message", message);
        e.put("details", details);
        e.putObject("extra_info");
        o.putObject("node_errors");
        return new ApiError(400, o);
    }

    /** The body as a JSON object; 400 naming the problem when it is not one. */
    static JsonNode readJson(Context ctx) {
        String text = ctx.body();
        try {
            JsonNode n = PromptStore.JSON.readTree(text);
            if (n == null || !n.isObject()) {
                throw status(400, "the request body must be a JSON object");
            }
            return n;
        } catch (JsonProcessingException e) {
            throw status(400, "the request body is not valid JSON: " + e.getOriginalMessage().replace('\n', ' '));
        }
    }
}
