package jdiffusion.workflow;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * ComfyUI's validate_prompt: every node has a known class; there is at least one output node; each output node's
 * inputs (recursively through its links) are present, of the linked type, convertible, in range and, for combos,
 * one of the allowed values (a model file that is not in its folder fails here). Errors come in ComfyUI's shape:
 * {@code {error: {type, message, details, extra_info}, node_errors: {id: {errors, dependent_outputs, class_type}}}}.
 * As in ComfyUI, outputs that validate run even when others fail; the failed ones are listed in node_errors.
 */
public final class PromptValidator {
    private static final JsonNodeFactory F = JsonNodeFactory.instance;

    /** The most nodes a prompt may have (real workflows have tens to a few hundred). */
    public static final int MAX_NODES = 10_000;

    /** The longest chain of linked nodes from an output back to a source. */
    public static final int MAX_DEPTH = 2_000;

    /**
     * @param error       null when at least one output can run
     * @param goodOutputs the output nodes that passed, in prompt order
     */
    public record Result(ObjectNode error, List<String> goodOutputs, ObjectNode nodeErrors) {
        public boolean ok() {
            return error == null;
        }

        /** The body ComfyUI answers a rejected /prompt with: {error, node_errors}. */
        public ObjectNode toJson() {
            ObjectNode o = F.objectNode();
            if (error != null) {
                o.set("error", error);
            }
            o.set("node_errors", nodeErrors);
            return o;
        }

        /** One line per problem, for a terminal. */
        public String describe() {
            StringBuilder sb = new StringBuilder();
            if (error != null) {
                sb.append(error.path("message").asText());
                String details = error.path("details").asText();
                if (!details.isEmpty() && nodeErrors.isEmpty()) {
                    sb.append(": ").append(details);
                }
            }
            for (var e : nodeErrors.properties()) {
                for (JsonNode err : e.getValue().path("errors")) {
                    if (!sb.isEmpty()) {
                        sb.append('\n');
                    }
                    sb.append("node ").append(e.getKey()).append(" (")
                            .append(e.getValue().path("class_type").asText()).append("): ")
                            .append(err.path("message").asText());
                    String d = err.path("details").asText();
                    if (!d.isEmpty()) {
                        sb.append(": ").append(d);
                    }
                }
            }
            return sb.toString();
        }
    }

    private final Prompt prompt;
    private final ModelPaths paths;
    private final Map<String, List<ObjectNode>> errors = new HashMap<>();
    private final Map<String, Boolean> validated = new HashMap<>();
    private final Set<String> visiting = new HashSet<>();

    private PromptValidator(Prompt prompt, ModelPaths paths) {
        this.prompt = prompt;
        this.paths = paths;
    }

    public static Result validate(Prompt prompt, ModelPaths paths) {
        return new PromptValidator(prompt, paths).run();
    }

    private Result run() {
        if (prompt.nodes().size() > MAX_NODES) {
            return fail(error("prompt_too_large", "Prompt has too many nodes", prompt.nodes().size()
                    + " nodes; this server runs at most " + MAX_NODES));
        }
        for (Prompt.Node n : prompt.nodes().values()) {
            if (n.classType() == null) {
                return fail(error("invalid_prompt", "Cannot execute because a node is missing the class_type property.",
                        "Node ID '#" + n.id() + "'"));
            }
            if (Nodes.get(n.classType()) == null) {
                return fail(error("invalid_prompt", "Cannot execute because node " + n.classType()
                        + " does not exist.", "Node ID '#" + n.id() + "'"));
            }
        }
        List<String> outputs = new ArrayList<>();
        for (Prompt.Node n : prompt.nodes().values()) {
            if (Nodes.get(n.classType()).outputNode()) {
                outputs.add(n.id());
            }
        }
        if (outputs.isEmpty()) {
            return fail(error("prompt_no_outputs", "Prompt has no outputs", ""));
        }
        List<String> good = new ArrayList<>();
        List<String> failedOutputs = new ArrayList<>();
        for (String out : outputs) {
            (validateNode(out) ? good : failedOutputs).add(out);
        }
        Map<String, List<String>> dependentOutputs = new LinkedHashMap<>();
        for (String out : failedOutputs) {
            for (String n : ancestorsOf(out)) {
                if (errors.containsKey(n)) {
                    dependentOutputs.computeIfAbsent(n, k -> new ArrayList<>()).add(out);
                }
            }
        }
        ObjectNode nodeErrors = F.objectNode();
        for (var e : errors.entrySet()) {
            ObjectNode ne = nodeErrors.putObject(e.getKey());
            ArrayNode list = ne.putArray("errors");
            e.getValue().forEach(list::add);
            ArrayNode deps = ne.putArray("dependent_outputs");
            dependentOutputs.getOrDefault(e.getKey(), List.of()).stream().distinct().forEach(deps::add);
            ne.put("class_type", prompt.nodes().get(e.getKey()).classType());
        }
        if (good.isEmpty()) {
            List<String> lines = new ArrayList<>();
            for (var e : errors.entrySet()) {
                for (ObjectNode err : e.getValue()) {
                    lines.add("* " + prompt.nodes().get(e.getKey()).classType() + " " + e.getKey() + ":\n  - "
                            + err.path("message").asText() + ": " + err.path("details").asText());
                }
            }
            return new Result(error("prompt_outputs_failed_validation", "Prompt outputs failed validation",
                    String.join("\n", lines)), List.of(), nodeErrors);
        }
        return new Result(null, List.copyOf(good), nodeErrors);
    }

    private Set<String> ancestorsOf(String id) {
        Set<String> seen = new HashSet<>();
        List<String> stack = new ArrayList<>(List.of(id));
        while (!stack.isEmpty()) {
            String n = stack.removeLast();
            if (!seen.add(n) || !prompt.nodes().containsKey(n)) {
                continue;
            }
            for (JsonNode v : prompt.nodes().get(n).inputs().values()) {
                try {
                    Prompt.Link l = Prompt.linkOf(v);
                    if (l != null) {
                        stack.add(l.sourceId());
                    }
                } catch (IllegalArgumentException ignored) {
                    // a malformed link has its own error
                }
            }
        }
        return seen;
    }

    private static Result fail(ObjectNode error) {
        return new Result(error, List.of(), F.objectNode());
    }

    /** One node being validated: its next input and whether all so far passed (an explicit stack, no recursion). */
    private static final class Frame {
        final String id;
        final List<InputSpec> specs;
        int next;
        boolean valid = true;
        boolean awaitingChild;

        Frame(String id, List<InputSpec> specs) {
            this.id = id;
            this.specs = specs;
        }
    }

    /**
     * Validates a node and, through its links, everything upstream, depth first with an explicit stack, so a chain
     * of any length cannot overflow the thread's stack; a chain deeper than {@link #MAX_DEPTH} is an error on the
     * node where it goes too deep.
     */
    private boolean validateNode(String root) {
        Boolean known = validated.get(root);
        if (known != null) {
            return known;
        }
        List<Frame> stack = new ArrayList<>();
        stack.add(frame(root));
        boolean childResult = true;
        while (!stack.isEmpty()) {
            Frame f = stack.getLast();
            if (f.awaitingChild) {
                f.valid &= childResult;
                f.awaitingChild = false;
            }
            if (f.next == f.specs.size()) {
                stack.removeLast();
                visiting.remove(f.id);
                validated.put(f.id, f.valid);
                childResult = f.valid;
                continue;
            }
            InputSpec spec = f.specs.get(f.next++);
            JsonNode value = prompt.nodes().get(f.id).inputs().get(spec.name());
            if (value == null || value.isNull()) {
                if (!spec.optional()) {
                    addError(f.id, inputError("required_input_missing", "Required input is missing", spec.name(),
                            spec.name()));
                    f.valid = false;
                }
                continue;
            }
            Prompt.Link link;
            try {
                link = Prompt.linkOf(value);
            } catch (IllegalArgumentException e) {
                addError(f.id, inputError("bad_linked_input", e.getMessage(), spec.name() + ", " + value,
                        spec.name()));
                f.valid = false;
                continue;
            }
            if (link == null) {
                f.valid &= validateLiteral(f.id, spec, value);
                continue;
            }
            if (!checkLink(f.id, spec, link)) {
                f.valid = false;
                continue;
            }
            Boolean done = validated.get(link.sourceId());
            if (done != null) {
                f.valid &= done;
                continue;
            }
            if (stack.size() >= MAX_DEPTH) {
                addError(f.id, inputError("prompt_too_deep", "Prompt is too deep", spec.name() + ": more than "
                        + MAX_DEPTH + " linked nodes in a chain (this server's limit)", spec.name()));
                f.valid = false;
                continue;
            }
            f.awaitingChild = true;
            stack.add(frame(link.sourceId()));
        }
        return validated.get(root);
    }

    private Frame frame(String id) {
        visiting.add(id);
        return new Frame(id, Nodes.get(prompt.nodes().get(id).classType()).inputs());
    }

    private boolean validateLiteral(String id, InputSpec spec, JsonNode value) {
        if (!spec.isWidget()) {
            ObjectNode err = inputError("invalid_input_type", "Input must be a link to a " + spec.type() + " output",
                    spec.name() + ", " + value, spec.name());
            addError(id, err);
            return false;
        }
        try {
            convert(spec, value, paths);
            return true;
        } catch (InputError e) {
            ObjectNode err = inputError(e.type, e.getMessage(), e.details, spec.name());
            ((ObjectNode) err.get("extra_info")).set("received_value", value);
            addError(id, err);
            return false;
        }
    }

    /** The link's own checks (source exists, slot exists, types match, no cycle); the source is validated after. */
    private boolean checkLink(String id, InputSpec spec, Prompt.Link link) {
        Prompt.Node source = prompt.nodes().get(link.sourceId());
        if (source == null) {
            addError(id, inputError("bad_linked_input", "Linked node does not exist",
                    spec.name() + ": node '" + link.sourceId() + "' is not in the prompt", spec.name()));
            return false;
        }
        List<String> sourceOutputs = Nodes.get(source.classType()).outputTypes();
        if (link.outputIndex() < 0 || link.outputIndex() >= sourceOutputs.size()) {
            addError(id, inputError("bad_linked_input", "Linked output slot does not exist",
                    spec.name() + ": " + source.classType() + " has " + sourceOutputs.size() + " output(s), slot "
                            + link.outputIndex() + " requested", spec.name()));
            return false;
        }
        String received = sourceOutputs.get(link.outputIndex());
        String expected = spec.type();
        if (!received.equals(expected)) {
            ObjectNode err = inputError("return_type_mismatch", "Return type mismatch between linked nodes",
                    spec.name() + ", received_type(" + received + ") mismatch input_type(" + expected + ")",
                    spec.name());
            ObjectNode extra = (ObjectNode) err.get("extra_info");
            extra.put("received_type", received);
            ArrayNode linked = extra.putArray("linked_node");
            linked.add(link.sourceId());
            linked.add(link.outputIndex());
            addError(id, err);
            return false;
        }
        if (visiting.contains(link.sourceId())) {
            addError(id, inputError("dependency_cycle", "Dependency cycle detected",
                    spec.name() + " links back to node " + link.sourceId(), spec.name()));
            return false;
        }
        return true;
    }

    /** A literal failing conversion, range or list checks. */
    static final class InputError extends Exception {
        final String type;
        final String details;

        InputError(String type, String message, String details) {
            super(message, null, false, false);
            this.type = type;
            this.details = details;
        }
    }

    /**
     * A literal input as the node receives it: INT as Long (a seed up to 2^64 - 1 keeps its 64 bits), FLOAT as
     * Double, STRING, BOOLEAN, and a combo value as String, after ComfyUI's checks.
     */
    static Object convert(InputSpec spec, JsonNode value, ModelPaths paths) throws InputError {
        String name = spec.name();
        return switch (spec.type()) {
            case "INT" -> {
                BigInteger v = toInteger(value, spec);
                checkRange(spec, new BigDecimal(v), value);
                yield v.longValue();
            }
            case "FLOAT" -> {
                double v = toDouble(value, spec);
                if (!Double.isFinite(v)) {
                    throw new InputError("invalid_input_type", "Failed to convert an input value to a FLOAT value",
                            name + ", " + value);
                }
                checkRange(spec, BigDecimal.valueOf(v), value);
                yield v;
            }
            case "STRING" -> {
                if (value.isContainerNode()) {
                    throw new InputError("invalid_input_type", "Failed to convert an input value to a STRING value",
                            name + ", " + value);
                }
                yield value.asText();
            }
            case "BOOLEAN" -> {
                if (value.isBoolean()) {
                    yield value.booleanValue();
                }
                if (value.isNumber()) {
                    yield value.asDouble() != 0;
                }
                if (value.isTextual() && List.of("true", "false").contains(value.asText().toLowerCase())) {
                    yield Boolean.parseBoolean(value.asText());
                }
                throw new InputError("invalid_input_type", "Failed to convert an input value to a BOOLEAN value",
                        name + ", " + value);
            }
            case "COMBO" -> {
                List<String> allowed = spec.choices().list(paths);
                String v = value.isValueNode() ? value.asText() : value.toString();
                if (!value.isValueNode() || !allowed.contains(v)) {
                    throw new InputError("value_not_in_list", "Value not in list",
                            name + ": '" + v + "' not in " + listInfo(allowed));
                }
                yield v;
            }
            default -> throw new InputError("invalid_input_type", "Input must be a link to a " + spec.type()
                    + " output", name + ", " + value);
        };
    }

    private static String listInfo(List<String> allowed) {
        if (allowed.size() > 20) {
            return "(list of length " + allowed.size() + ")";
        }
        return allowed.isEmpty() ? "[]" : "['" + String.join("', '", allowed) + "']";
    }

    private static BigInteger toInteger(JsonNode value, InputSpec spec) throws InputError {
        try {
            if (value.isIntegralNumber()) {
                return value.bigIntegerValue();
            }
            if (value.isNumber()) {
                return value.decimalValue().toBigInteger(); // int(5.7) == 5, as Python
            }
            if (value.isTextual()) {
                return new BigInteger(value.asText().strip());
            }
        } catch (NumberFormatException e) {
            // falls through to the error below
        }
        throw new InputError("invalid_input_type", "Failed to convert an input value to a INT value",
                spec.name() + ", " + value);
    }

    private static double toDouble(JsonNode value, InputSpec spec) throws InputError {
        try {
            if (value.isNumber()) {
                return value.asDouble();
            }
            if (value.isTextual()) {
                return Double.parseDouble(value.asText().strip());
            }
        } catch (NumberFormatException e) {
            // falls through to the error below
        }
        throw new InputError("invalid_input_type", "Failed to convert an input value to a FLOAT value",
                spec.name() + ", " + value);
    }

    private static void checkRange(InputSpec spec, BigDecimal v, JsonNode raw) throws InputError {
        if (spec.min() != null && v.compareTo(new BigDecimal(spec.min().toString())) < 0) {
            throw new InputError("value_smaller_than_min", "Value " + raw.asText() + " smaller than min of "
                    + spec.min(), spec.name());
        }
        if (spec.max() != null && v.compareTo(new BigDecimal(spec.max().toString())) > 0) {
            throw new InputError("value_bigger_than_max", "Value " + raw.asText() + " bigger than max of "
                    + spec.max(), spec.name());
        }
    }

    private void addError(String id, ObjectNode err) {
        errors.computeIfAbsent(id, k -> new ArrayList<>()).add(err);
    }

    private static ObjectNode error(String type, String message, String details) {
        ObjectNode e = F.objectNode();
        e.put("type", type);
        e.put("message", message);
        e.put("details", details);
        e.putObject("extra_info");
        return e;
    }

    private static ObjectNode inputError(String type, String message, String details, String inputName) {
        ObjectNode e = error(type, message, details);
        ((ObjectNode) e.get("extra_info")).put("input_name", inputName);
        return e;
    }
}
