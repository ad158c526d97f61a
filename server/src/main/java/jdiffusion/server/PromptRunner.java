package jdiffusion.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import jdiffusion.workflow.ExecutionListener;
import jdiffusion.workflow.Prompt;
import jdiffusion.workflow.WorkflowEngine;

/**
 * The one worker thread: takes the first pending prompt from the store, runs it on the engine (one prompt at a time),
 * forwards the engine's events to the websocket clients in ComfyUI's shapes, and writes the outcome to the history.
 */
final class PromptRunner implements Runnable {
    private static final ObjectMapper JSON = PromptStore.JSON;

    private final PromptStore store;
    private final WorkflowEngine engine;
    private final Hub hub;
    private final PreviewFormats previews;
    /** The running prompt's progress (AUTOMATIC1111's /progress reads it). */
    final ProgressState progress = new ProgressState();
    /** The server's --preview-method: none, auto, latent2rgb or taesd; a prompt's extra_data may ask otherwise. */
    private final TaesdPreview taesdPreview;
    volatile String previewMethod = "none";
    /** Server log lines (/internal/logs); null in tests that build a runner alone. */
    volatile ServerLog log;
    private final Map<String, CompletableFuture<PromptStore.Entry>> waiters = new ConcurrentHashMap<>();
    private final Object signal = new Object();
    private volatile boolean stopping;
    private volatile boolean freeRequested;
    private volatile String runningId;
    private Thread thread;

    PromptRunner(PromptStore store, WorkflowEngine engine, Hub hub) {
        this.store = store;
        this.engine = engine;
        this.hub = hub;
        this.previews = new PreviewFormats(engine.paths());
        this.taesdPreview = new TaesdPreview(engine.paths());
    }

    void start() {
        thread = Thread.ofPlatform().name("jdiffusion-prompt-runner").daemon().start(this);
    }

    /** A new prompt is queued (or memory should be freed): wake the worker. */
    void wake() {
        synchronized (signal) {
            signal.notifyAll();
        }
    }

    String runningId() {
        return runningId;
    }

    /** Interrupts the running prompt (only the given one when promptId is not null). */
    boolean interrupt(String promptId) {
        String running = runningId;
        if (running == null || (promptId != null && !promptId.equals(running))) {
            return false;
        }
        store.markStopped(running, "interrupted"); // durable first: a crash from here on does not re-run it
        engine.interrupt();
        return true;
    }

    /** /free: done between prompts, as ComfyUI does. */
    void requestFree() {
        freeRequested = true;
        wake();
    }

    /** A future completed when the prompt is in the history (for the synchronous A1111 / Stability endpoints). */
    CompletableFuture<PromptStore.Entry> completion(String promptId) {
        CompletableFuture<PromptStore.Entry> f = waiters.computeIfAbsent(promptId, k -> new CompletableFuture<>());
        PromptStore.Entry e = store.get(promptId);
        if (e != null && "done".equals(e.state())) {
            waiters.remove(promptId);
            f.complete(e);
        }
        return f;
    }

    void stop() {
        stopping = true;
        String running = runningId;
        if (running != null) {
            try {
                store.markStopped(running, "the server was shut down while this prompt ran");
            } catch (RuntimeException e) {
                // the store is gone already: the prompt runs again after a restart, as after a crash
            }
        }
        engine.interrupt();
        wake();
        if (thread != null) {
            try {
                thread.join(10_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    @Override
    public void run() {
        while (!stopping) {
            if (freeRequested) {
                freeRequested = false;
                engine.free();
            }
            PromptStore.Entry next = store.takeNext();
            if (next == null) {
                synchronized (signal) {
                    try {
                        signal.wait(500);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
                continue;
            }
            try {
                runOne(next);
            } catch (Throwable t) {
                // the worker must outlive any one prompt: record the failure and go on with the queue
                String m = t.getMessage() == null ? t.toString() : t.getMessage();
                store.finish(next.promptId(), JSON.createObjectNode(), PromptStore.status("error", false,
                        List.of(PromptStore.message("execution_error", next.promptId(), m))));
                runningId = null;
                progress.end();
                if (log != null) {
                    log.error("prompt " + next.promptId() + " failed in the worker", t);
                }
                CompletableFuture<PromptStore.Entry> f = waiters.remove(next.promptId());
                if (f != null) {
                    f.complete(store.get(next.promptId()));
                }
            }
        }
    }

    private void runOne(PromptStore.Entry entry) {
        runningId = entry.promptId();
        progress.start(entry.promptId(), entry.prompt().size());
        broadcastStatus();
        Events events = new Events(entry);
        if (entry.restarts() > 0) {
            events.messages.add(PromptStore.message("execution_restarted", entry.promptId(),
                    "the server stopped while this prompt ran; it was run again (" + entry.restarts() + ")"));
        }
        ObjectNode outputs = JSON.createObjectNode();
        ObjectNode status;
        try {
            JsonNode pngInfo = entry.extraData().get("extra_pnginfo");
            WorkflowEngine.ExecutionResult r = engine.execute(Prompt.parse(entry.prompt()), entry.promptId(),
                    pngInfo, events);
            r.outputs().forEach((node, ui) -> outputs.set(node, JSON.valueToTree(ui)));
            status = switch (r.status()) {
                case SUCCESS -> PromptStore.status("success", true, events.messages);
                case INVALID -> PromptStore.status("error", false, withError(events, entry, r.message()));
                default -> PromptStore.status("error", false, events.messages);
            };
        } catch (RuntimeException e) {
            String m = e.getMessage() == null ? e.toString() : e.getMessage();
            status = PromptStore.status("error", false, withError(events, entry, m));
        }
        store.finish(entry.promptId(), outputs, status);
        // as ComfyUI: "executing null" (the prompt is done) only once the history has it, so a client that
        // fetches /history on that message finds the outputs
        events.done();
        progress.end();
        runningId = null;
        CompletableFuture<PromptStore.Entry> f = waiters.remove(entry.promptId());
        if (f != null) {
            f.complete(store.get(entry.promptId()));
        }
        broadcastStatus();
    }

    private static List<ArrayNode> withError(Events events, PromptStore.Entry entry, String message) {
        events.messages.add(PromptStore.message("execution_error", entry.promptId(), message));
        return events.messages;
    }

    /**
     * ComfyUI's rule: latent previews only when the server runs with --preview-method other than none, or when the
     * prompt's extra_data.preview_method asks for them ("default" means the server's).
     */
    static boolean previewsWanted(JsonNode extraData, String serverMethod) {
        String m = extraData == null ? null : extraData.path("preview_method").asText(null);
        if (m == null || m.isBlank() || m.equals("default")) {
            m = serverMethod;
        }
        return m != null && !m.equals("none");
    }

    /** {type: status, data: {status: {exec_info: {queue_remaining}}}} to every client. */
    void broadcastStatus() {
        hub.send("status", statusData(null), null);
    }

    ObjectNode statusData(String sid) {
        ObjectNode d = JSON.createObjectNode();
        d.putObject("status").putObject("exec_info").put("queue_remaining", store.remaining());
        if (sid != null) {
            d.put("sid", sid);
        }
        return d;
    }

    /** The engine's events as ComfyUI's websocket messages; the ones ComfyUI keeps go to the history too. */
    private final class Events implements ExecutionListener {
        private final PromptStore.Entry entry;
        private final String sid;
        private final boolean sendPreviews;
        private final boolean taesd;
        final List<ArrayNode> messages = new ArrayList<>();

        Events(PromptStore.Entry entry) {
            this.entry = entry;
            this.sid = entry.clientId();
            this.sendPreviews = previewsWanted(entry.extraData(), previewMethod);
            this.taesd = "taesd".equals(TaesdPreview.method(entry.extraData(), previewMethod));
        }

        private ObjectNode data() {
            ObjectNode d = JSON.createObjectNode();
            d.put("prompt_id", entry.promptId());
            return d;
        }

        private void sendKept(String type, ObjectNode d) {
            d.put("timestamp", System.currentTimeMillis());
            ArrayNode m = JSON.createArrayNode();
            m.add(type).add(d);
            messages.add(m);
            hub.send(type, d, sid);
        }

        @Override
        public void executionStart(String promptId) {
            sendKept("execution_start", data());
        }

        @Override
        public void executionCached(String promptId, List<String> nodeIds) {
            ObjectNode d = data();
            ArrayNode nodes = d.putArray("nodes");
            nodeIds.forEach(nodes::add);
            sendKept("execution_cached", d);
        }

        @Override
        public void executing(String promptId, String nodeId) {
            if (nodeId != null) {
                progress.node(nodeId);
                sendExecuting(nodeId);
            }
        }

        void done() {
            sendExecuting(null);
        }

        private void sendExecuting(String nodeId) {
            ObjectNode d = JSON.createObjectNode();
            d.put("node", nodeId);
            d.put("display_node", nodeId);
            d.put("prompt_id", entry.promptId());
            hub.send("executing", d, sid);
        }

        @Override
        public void progress(String promptId, String nodeId, int value, int max, float[] latent, int[] shape) {
            ObjectNode d = JSON.createObjectNode();
            d.put("value", value);
            d.put("max", max);
            d.put("prompt_id", entry.promptId());
            d.put("node", nodeId);
            hub.send("progress", d, sid);
            hub.send("progress_state", progressState(nodeId, value, max), sid);
            LatentPreview.Format f = null;
            if (latent != null && shape != null && shape.length == 4) {
                try {
                    f = previews.forNode(entry.prompt(), nodeId);
                    if (sendPreviews) {
                        jdiffusion.model.Taesd t = taesd ? taesdPreview.decoder(f) : null;
                        byte[] jpeg = t != null && t.latentChannels() == shape[1]
                                ? TaesdPreview.jpeg(t, latent, shape) : LatentPreview.jpeg(f, latent, shape);
                        hub.sendBinary(LatentPreview.frame(LatentPreview.JPEG, jpeg), sid);
                    }
                } catch (RuntimeException e) {
                    // a preview is a courtesy: never fail the prompt for it
                }
            }
            progress.step(nodeId, value, max, latent, shape, f);
        }

        /** ComfyUI's per-node progress for its new front end: {prompt_id, nodes: {id: {value, max, state...}}}. */
        private ObjectNode progressState(String nodeId, int value, int max) {
            ObjectNode d = JSON.createObjectNode();
            d.put("prompt_id", entry.promptId());
            ObjectNode n = d.putObject("nodes").putObject(nodeId);
            n.put("value", value);
            n.put("max", max);
            n.put("state", value >= max ? "finished" : "running");
            n.put("node_id", nodeId);
            n.put("prompt_id", entry.promptId());
            n.put("display_node_id", nodeId);
            n.putNull("parent_node_id");
            n.put("real_node_id", nodeId);
            return d;
        }

        @Override
        public void executed(String promptId, String nodeId, Map<String, Object> ui) {
            ObjectNode d = JSON.createObjectNode();
            d.put("node", nodeId);
            d.put("display_node", nodeId);
            d.set("output", JSON.valueToTree(ui));
            d.put("prompt_id", entry.promptId());
            hub.send("executed", d, sid);
        }

        /** SaveImageWebsocket: the PNG as a binary frame (event 1, image type 2), to the prompt's client. */
        @Override
        public void image(String promptId, String nodeId, byte[] png) {
            hub.sendBinary(LatentPreview.frame(LatentPreview.PNG, png), sid);
        }

        @Override
        public void executionSuccess(String promptId) {
            sendKept("execution_success", data());
        }

        @Override
        public void executionError(String promptId, String nodeId, String nodeType, List<String> executed,
                String exceptionMessage, String exceptionType) {
            ObjectNode d = data();
            d.put("node_id", nodeId);
            d.put("node_type", nodeType);
            ArrayNode ex = d.putArray("executed");
            executed.forEach(ex::add);
            d.put("exception_message", exceptionMessage);
            d.put("exception_type", exceptionType);
            d.putArray("traceback").add("node " + nodeId + " (" + nodeType + "): " + exceptionType + ": "
                    + exceptionMessage);
            if (log != null) {
                log.line("ERROR", "prompt " + entry.promptId() + ": node " + nodeId + " (" + nodeType + ") failed: "
                        + exceptionType + ": " + exceptionMessage);
            }
            d.putObject("current_inputs");
            d.putObject("current_outputs");
            sendKept("execution_error", d);
        }

        @Override
        public void executionInterrupted(String promptId, String nodeId, String nodeType, List<String> executed) {
            ObjectNode d = data();
            d.put("node_id", nodeId);
            d.put("node_type", nodeType);
            ArrayNode ex = d.putArray("executed");
            executed.forEach(ex::add);
            sendKept("execution_interrupted", d);
        }
    }
}
