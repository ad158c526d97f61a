package jdiffusion.workflow;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;

/**
 * Runs API-format prompts as ComfyUI does: validate, then run only the output nodes that validated and their
 * ancestors, in dependency order. A node whose signature (class, literal inputs, the files its combos name, and
 * the signatures upstream) matches one of the previous prompt's is not re-run: its outputs are reused, so a new seed
 * re-runs the KSampler and what follows, not the loaders or the text encoders. Loaded models live in a
 * {@link ModelCache} shared by all prompts. One prompt runs at a time per engine.
 *
 * <pre>
 *   try (WorkflowEngine engine = new WorkflowEngine(ModelPaths.of(baseDir), 8L << 30)) {
 *       ExecutionResult r = engine.execute(Prompt.read(file), null, null, listener);
 *   }
 * </pre>
 */
public final class WorkflowEngine implements AutoCloseable {
    /** How a prompt ended. */
    public enum Status { SUCCESS, ERROR, INTERRUPTED, INVALID }

    /**
     * The outcome of one prompt.
     *
     * @param outputs   ui outputs of the output nodes by node id (images: [{filename, subfolder, type}])
     * @param values    every node's output values by node id (executed or cached), for library callers and tests
     * @param executed  nodes run, in order
     * @param cached    nodes taken from the cache
     * @param errorNode the failing node (ERROR, INTERRUPTED), else null
     * @param message   the one-line error (ERROR, INVALID), else null
     */
    public record ExecutionResult(String promptId, Status status, PromptValidator.Result validation,
            Map<String, Map<String, Object>> outputs, Map<String, List<Object>> values, List<String> executed,
            List<String> cached, String errorNode, String message) {
    }

    private record CachedNode(List<Object> outputs, Map<String, Object> ui) {
    }

    private final ModelPaths paths;
    private final ModelCache models;
    private final NodeContext.Interrupt interrupt = new NodeContext.Interrupt();
    private Map<String, CachedNode> outputCache = new HashMap<>();

    public WorkflowEngine(ModelPaths paths, long modelBudgetBytes) {
        this.paths = paths;
        this.models = new ModelCache(modelBudgetBytes);
    }

    public ModelPaths paths() {
        return paths;
    }

    public ModelCache models() {
        return models;
    }

    /** Asks the running prompt to stop at its next check (between sampler steps, before each node). */
    public void interrupt() {
        interrupt.request();
    }

    public PromptValidator.Result validate(Prompt prompt) {
        return PromptValidator.validate(prompt, paths);
    }

    /** Forgets cached node outputs and unloads every model (the server's /free). */
    public synchronized void free() {
        outputCache = new HashMap<>();
        models.clear();
    }

    /**
     * Validates and runs a prompt. Never throws for a bad prompt or a failing node: the result says what happened
     * and the listener heard it.
     *
     * @param promptId     null for a fresh random id
     * @param extraPngInfo stored by SaveImage as extra PNG text chunks (ComfyUI's extra_data.extra_pnginfo), or null
     */
    public synchronized ExecutionResult execute(Prompt prompt, String promptId, JsonNode extraPngInfo,
            ExecutionListener listener) {
        String id = promptId != null ? promptId : UUID.randomUUID().toString();
        PromptValidator.Result validation = validate(prompt);
        if (!validation.ok()) {
            return new ExecutionResult(id, Status.INVALID, validation, Map.of(), Map.of(), List.of(), List.of(),
                    null, validation.describe());
        }
        interrupt.clear();
        List<String> order = executionOrder(prompt, validation.goodOutputs());
        Map<String, String> signatures = signatures(prompt, order);
        Map<String, CachedNode> previous = outputCache;
        Map<String, CachedNode> current = new HashMap<>();
        List<String> cached = order.stream().filter(n -> previous.containsKey(signatures.get(n))).toList();
        listener.executionStart(id);
        listener.executionCached(id, cached);
        Map<String, List<Object>> values = new LinkedHashMap<>();
        Map<String, Map<String, Object>> uiOutputs = new LinkedHashMap<>();
        List<String> executed = new ArrayList<>();
        String running = null;
        try {
            for (String nodeId : order) {
                running = nodeId;
                String sig = signatures.get(nodeId);
                CachedNode hit = previous.get(sig);
                if (hit == null) {
                    interrupt.check();
                    listener.executing(id, nodeId);
                    String node = nodeId;
                    // interrupt checked inside the kernels too (each attention block, convolution tile)
                    hit = jdiffusion.tensor.Parallel.cancellable(interrupt::check,
                            () -> run(prompt, node, values, id, extraPngInfo, listener));
                    executed.add(nodeId);
                }
                current.put(sig, hit);
                values.put(nodeId, hit.outputs());
                if (hit.ui() != null) {
                    uiOutputs.put(nodeId, hit.ui());
                    listener.executed(id, nodeId, hit.ui());
                }
            }
        } catch (NodeContext.InterruptedExecution e) {
            keep(previous, current);
            listener.executionInterrupted(id, running, prompt.nodes().get(running).classType(), executed);
            listener.executing(id, null);
            return new ExecutionResult(id, Status.INTERRUPTED, validation, uiOutputs, values, executed, cached,
                    running, "interrupted");
        } catch (RuntimeException | OutOfMemoryError e) {
            keep(previous, current);
            String msg = message(e);
            String type = e instanceof WorkflowException ? "WorkflowException" : e.getClass().getSimpleName();
            listener.executionError(id, running, prompt.nodes().get(running).classType(), executed, msg, type);
            listener.executing(id, null);
            return new ExecutionResult(id, Status.ERROR, validation, uiOutputs, values, executed, cached, running,
                    "node " + running + " (" + prompt.nodes().get(running).classType() + "): " + msg);
        }
        outputCache = current;
        listener.executionSuccess(id);
        listener.executing(id, null);
        return new ExecutionResult(id, Status.SUCCESS, validation, uiOutputs, values, executed, cached, null, null);
    }

    /** After a failure the nodes that did finish stay cached, as well as the previous prompt's. */
    private void keep(Map<String, CachedNode> previous, Map<String, CachedNode> current) {
        Map<String, CachedNode> merged = new HashMap<>(previous);
        merged.putAll(current);
        outputCache = merged;
    }

    private CachedNode run(Prompt prompt, String nodeId, Map<String, List<Object>> values, String promptId,
            JsonNode extraPngInfo, ExecutionListener listener) {
        Prompt.Node node = prompt.nodes().get(nodeId);
        NodeDefinition def = Nodes.get(node.classType());
        Map<String, Object> inputs = new LinkedHashMap<>();
        for (InputSpec spec : def.inputs()) {
            JsonNode raw = node.inputs().get(spec.name());
            if (raw == null || raw.isNull()) {
                continue;
            }
            Prompt.Link link = Prompt.linkOf(raw);
            if (link != null) {
                inputs.put(spec.name(), values.get(link.sourceId()).get(link.outputIndex()));
            } else {
                try {
                    inputs.put(spec.name(), PromptValidator.convert(spec, raw, paths));
                } catch (PromptValidator.InputError e) {
                    throw new WorkflowException(spec.name() + ": " + e.getMessage() + " (" + e.details + ")");
                }
            }
        }
        NodeContext ctx = new NodeContext(nodeId, promptId, paths, models, prompt.json(), extraPngInfo, listener,
                interrupt);
        NodeResult r = def.function().run(inputs, ctx);
        return new CachedNode(r.outputs(), r.ui());
    }

    /**
     * The ancestors of the outputs, each after everything it links to (depth-first post-order), with an explicit
     * stack: a long chain cannot overflow the thread's stack.
     */
    static List<String> executionOrder(Prompt prompt, List<String> outputs) {
        Set<String> done = new LinkedHashSet<>();
        Set<String> onPath = new HashSet<>();
        for (String out : outputs) {
            if (done.contains(out)) {
                continue;
            }
            // each entry: a node and the links it still has to visit
            List<Map.Entry<String, java.util.Iterator<JsonNode>>> stack = new ArrayList<>();
            onPath.add(out);
            stack.add(Map.entry(out, prompt.nodes().get(out).inputs().values().iterator()));
            while (!stack.isEmpty()) {
                var top = stack.getLast();
                if (!top.getValue().hasNext()) {
                    stack.removeLast();
                    onPath.remove(top.getKey());
                    done.add(top.getKey());
                    continue;
                }
                Prompt.Link l = Prompt.linkOf(top.getValue().next());
                if (l == null || done.contains(l.sourceId())) {
                    continue;
                }
                if (!onPath.add(l.sourceId())) {
                    throw new WorkflowException("dependency cycle through node " + l.sourceId());
                }
                stack.add(Map.entry(l.sourceId(), prompt.nodes().get(l.sourceId()).inputs().values().iterator()));
            }
        }
        return List.copyOf(done);
    }

    /**
     * Each node's cache key: a digest of its class, its literal inputs by name, the size and modification time of
     * the files its combos name (ComfyUI's IS_CHANGED for loaders and LoadImage), and its inputs' signatures.
     */
    private Map<String, String> signatures(Prompt prompt, List<String> order) {
        Map<String, String> sigs = new HashMap<>();
        for (String id : order) {
            Prompt.Node node = prompt.nodes().get(id);
            NodeDefinition def = Nodes.get(node.classType());
            StringBuilder sb = new StringBuilder(node.classType()).append('(');
            for (InputSpec spec : def.inputs()) {
                JsonNode raw = node.inputs().get(spec.name());
                sb.append(spec.name()).append('=');
                Prompt.Link link = raw == null ? null : Prompt.linkOf(raw);
                if (link != null) {
                    sb.append('@').append(sigs.get(link.sourceId())).append('#').append(link.outputIndex());
                } else {
                    sb.append(raw);
                    sb.append(fileStamp(spec, raw));
                }
                sb.append(';');
            }
            if (def.outputNode()) {
                // output nodes also depend on the prompt text they store (SaveImage's PNG chunk)
                sb.append("prompt=").append(digest(prompt.json().toString()));
            }
            sigs.put(id, digest(sb.append(')').toString()));
        }
        return sigs;
    }

    private String fileStamp(InputSpec spec, JsonNode raw) {
        Object folder = spec.extra().get("folder");
        boolean image = spec.extra().containsKey("image_upload");
        if ((folder == null && !image) || raw == null || !raw.isTextual()) {
            return "";
        }
        try {
            Path p = image ? paths.resolveInput(raw.asText()) : paths.resolve((String) folder, raw.asText());
            return "[" + Files.size(p) + "," + Files.getLastModifiedTime(p).toMillis() + "]";
        } catch (WorkflowException | IOException e) {
            return "[missing]";
        }
    }

    private static String digest(String s) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            return HexFormat.of().formatHex(md.digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static String message(Throwable e) {
        if (e instanceof OutOfMemoryError) {
            return "out of memory (raise -Xmx or lower the size or batch)";
        }
        String m = e.getMessage();
        if (m == null || m.isBlank()) {
            m = e.toString();
        }
        return m.replace('\n', ' ');
    }

    @Override
    public void close() {
        models.close();
    }
}
