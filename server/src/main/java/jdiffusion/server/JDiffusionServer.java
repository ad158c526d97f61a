package jdiffusion.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.Javalin;
import io.javalin.config.SizeUnit;
import io.javalin.http.Context;
import io.javalin.http.Handler;
import io.javalin.http.HandlerType;
import io.javalin.http.staticfiles.Location;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import jdiffusion.workflow.ModelPaths;
import jdiffusion.workflow.Nodes;
import jdiffusion.workflow.Prompt;
import jdiffusion.workflow.PromptValidator;
import jdiffusion.workflow.WorkflowEngine;
import jdiffusion.workflow.WorkflowException;

/**
 * ComfyUI's HTTP and websocket API over a {@link WorkflowEngine}, with a persistent queue ({@link PromptStore}),
 * AUTOMATIC1111 and Stability endpoints ({@link CompatRoutes}) and the web page (static files under
 * {@code jdiffusion/web}). Every ComfyUI route is served at {@code /x} and {@code /api/x}, as ComfyUI does.
 *
 * <pre>
 *   try (JDiffusionServer s = JDiffusionServer.start(ServerConfig.defaults(baseDir).withPort(0))) {
 *       int port = s.port();
 *   }
 * </pre>
 */
public final class JDiffusionServer implements AutoCloseable {
    static final String DB_FILE = "jdiffusion-queue.sqlite";

    private final ServerConfig config;
    private final ModelPaths paths;
    private final WorkflowEngine engine;
    private final PromptStore store;
    private final Hub hub = new Hub();
    private final PromptRunner runner;
    private final Limits limits;
    private final FileRoutes files;
    private final ServeOptions serve;
    private final ServerLog log = new ServerLog(hub, System.err);
    private final ApiJobs jobs;
    private final Javalin app;

    private JDiffusionServer(ServerConfig config, ServeOptions serve) {
        this.serve = serve;
        this.config = config;
        ModelPaths p = ModelPaths.of(config.baseDir());
        this.paths = config.extraModelPaths() == null ? p : p.withExtraPaths(config.extraModelPaths());
        this.engine = new WorkflowEngine(paths, config.modelBudgetBytes());
        this.store = PromptStore.open(paths.base().resolve(DB_FILE));
        this.runner = new PromptRunner(store, engine, hub);
        this.limits = new Limits(config);
        this.files = new FileRoutes(paths, config);
        this.jobs = new ApiJobs(this);
        runner.previewMethod = serve.previewMethod();
        runner.log = log;
        this.app = Javalin.create(cfg -> {
            cfg.requestLogger.http((ctx, ms) -> log.info(ctx.method() + " " + ctx.path() + " " + ctx.statusCode()
                    + " " + Math.round(ms) + " ms"));
            // ComfyUI's front end names user files with an encoded slash (/userdata/workflows%2Fa.json)
            cfg.jetty.modifyHttpConfiguration(h -> h.setUriCompliance(org.eclipse.jetty.http.UriCompliance.LEGACY));
            cfg.showJavalinBanner = false;
            cfg.http.maxRequestSize = config.maxBodyBytes();
            cfg.jetty.multipartConfig.maxFileSize(config.maxBodyBytes(), SizeUnit.BYTES);
            cfg.jetty.multipartConfig.maxTotalRequestSize(config.maxBodyBytes(), SizeUnit.BYTES);
            // the limit on the bytes actually read (chunked bodies too), before any route
            cfg.jetty.modifyServletContextHandler(h -> h.addFilter(new org.eclipse.jetty.servlet.FilterHolder(
                    new BodyLimit(config.maxBodyBytes())), "/*", java.util.EnumSet.of(
                    jakarta.servlet.DispatcherType.REQUEST)));
            cfg.staticFiles.add(sf -> {
                sf.hostedPath = "/";
                if (serve.frontEndRoot() != null) {
                    sf.directory = serve.frontEndRoot().toString();
                    sf.location = Location.EXTERNAL;
                } else {
                    sf.directory = "/jdiffusion/web";
                    sf.location = Location.CLASSPATH;
                }
            });
        });
        routes();
    }

    /**
     * Starts a server: checks the address and token, recovers the queue, starts the worker, binds.
     *
     * @throws IllegalArgumentException when it would listen beyond loopback without a token
     */
    public static JDiffusionServer start(ServerConfig config) {
        return start(config, ServeOptions.DEFAULT);
    }

    /** {@link #start(ServerConfig)} with another front end and / or a preview method. */
    public static JDiffusionServer start(ServerConfig config, ServeOptions serve) {
        requireTokenBeyondLoopback(config);
        JDiffusionServer s = new JDiffusionServer(config, serve);
        List<String> again = s.store.recover();
        if (!again.isEmpty()) {
            System.err.println("jdiffusion: " + again.size() + " prompt(s) interrupted by the last stop will run again");
        }
        try {
            s.app.start(config.listen(), config.port());
        } catch (RuntimeException e) {
            s.store.close();
            s.engine.close();
            throw new IllegalStateException("cannot listen on " + config.listen() + ":" + config.port() + ": "
                    + (e.getMessage() == null ? e.toString() : e.getMessage()), e);
        }
        s.runner.start(); // after the bind: a server that cannot listen runs nothing from the queue
        return s;
    }

    static void requireTokenBeyondLoopback(ServerConfig config) {
        boolean loopback;
        try {
            loopback = InetAddress.getByName(config.listen()).isLoopbackAddress();
        } catch (UnknownHostException e) {
            throw new IllegalArgumentException("cannot resolve the listen address '" + config.listen() + "'");
        }
        if (!loopback && (config.authToken() == null || config.authToken().isBlank())) {
            throw new IllegalArgumentException("listening on " + config.listen() + " (beyond loopback) needs"
                    + " --auth-token or JDIFFUSION_AUTH_TOKEN");
        }
    }

    public int port() {
        return app.port();
    }

    public ModelPaths paths() {
        return paths;
    }

    public WorkflowEngine engine() {
        return engine;
    }

    @Override
    public void close() {
        app.stop();
        runner.stop();
        store.close();
        engine.close();
    }

    private void routes() {
        app.before(ctx -> Security.check(ctx, config, serve.frontEndRoot()));
        app.wsBeforeUpgrade("/ws", ctx -> Security.check(ctx, config));
        app.wsBeforeUpgrade("/api/ws", ctx -> Security.check(ctx, config));
        app.exception(ApiError.class, (e, ctx) -> {
            String m = e.body.path("detail").isTextual() ? e.body.path("detail").asText()
                    : e.body.path("error").path("message").isTextual() ? e.body.path("error").path("message").asText()
                    : e.body.path("errors").isTextual() ? e.body.path("errors").asText()
                    : e.getMessage();
            log.line(e.status >= 500 ? "ERROR" : "WARN", ctx.method() + " " + ctx.path() + " -> " + e.status + ": "
                    + String.valueOf(m).replace('\n', ' '));
            ctx.status(e.status).contentType("application/json").result(e.body.toString());
        });
        app.exception(WorkflowException.class, (e, ctx) -> {
            log.line("WARN", ctx.method() + " " + ctx.path() + " -> 400: " + e.getMessage());
            error(ctx, 400, e.getMessage());
        });
        app.exception(BodyLimit.TooLarge.class, (e, ctx) -> {
            log.line("WARN", ctx.method() + " " + ctx.path() + " -> 413: " + e.getMessage());
            ctx.header("Connection", "close");
            error(ctx, 413, e.getMessage());
        });
        app.exception(BodyLimit.BadMultipart.class, (e, ctx) -> {
            log.line("WARN", ctx.method() + " " + ctx.path() + " -> 400: " + e.getMessage());
            error(ctx, 400, e.getMessage());
        });
        app.exception(java.nio.file.InvalidPathException.class, (e, ctx) -> error(ctx, 400, "bad file name: "
                + e.getMessage().replace('\0', ' ')));
        app.exception(io.javalin.http.HttpResponseException.class, (e, ctx) -> error(ctx, e.getStatus(),
                e.getMessage()));
        app.exception(Exception.class, (e, ctx) -> {
            log.error(ctx.method() + " " + ctx.path() + " failed", e);
            error(ctx, 500, e.getMessage() == null ? e.toString() : e.getMessage().replace('\n', ' '));
        });
        ComfyExtraRoutes extras = new ComfyExtraRoutes(this);
        ws("/ws");
        ws("/api/ws");
        both(HandlerType.POST, "/prompt", this::postPrompt);
        both(HandlerType.GET, "/prompt", ctx -> json(ctx, runner.statusData(null).get("status")));
        both(HandlerType.GET, "/queue", this::getQueue);
        both(HandlerType.POST, "/queue", this::postQueue);
        both(HandlerType.POST, "/interrupt", this::postInterrupt);
        both(HandlerType.GET, "/history", this::getHistory);
        both(HandlerType.GET, "/history/{prompt_id}", this::getHistoryItem);
        both(HandlerType.POST, "/history", this::postHistory);
        both(HandlerType.GET, "/view", extras::view);
        both(HandlerType.POST, "/upload/image", files::upload);
        both(HandlerType.GET, "/object_info", ctx -> json(ctx, Nodes.objectInfo(paths)));
        both(HandlerType.GET, "/object_info/{node_class}", this::getObjectInfo);
        both(HandlerType.GET, "/system_stats", ctx -> json(ctx, SystemStats.json()));
        both(HandlerType.POST, "/free", ctx -> {
            runner.requestFree();
            ctx.status(200);
        });
        both(HandlerType.GET, "/embeddings", ctx -> json(ctx, PromptStore.JSON.createArrayNode()));
        both(HandlerType.GET, "/extensions", ctx -> json(ctx, PromptStore.JSON.createArrayNode()));
        both(HandlerType.GET, "/models", this::getModelKinds);
        both(HandlerType.GET, "/models/{folder}", this::getModels);
        new CompatRoutes(jobs).register(app);
        new A1111Routes(jobs).register(app);
        new OpenAiRoutes(jobs).register(app);
        new UpscaleRoutes(this).register(app);
        new PageModelRoutes(this).register(app);
        new ControlNetApi(this).register(app);
        extras.register();
    }

    /**
     * ComfyUI's websocket: a client id (the one given, or a new one), the queue status with its sid on connect, and
     * the server's feature_flags in answer to the client's first feature_flags message.
     */
    private void ws(String path) {
        app.ws(path, ws -> {
            ws.onConnect(ctx -> {
                String id = ctx.queryParam("clientId");
                if (id == null || id.isBlank()) {
                    id = UUID.randomUUID().toString().replace("-", "");
                }
                ctx.attribute("sid", id);
                ctx.session.setIdleTimeout(java.time.Duration.ZERO);
                hub.add(id, ctx);
                hub.send("status", runner.statusData(id), id);
            });
            ws.onMessage(ctx -> {
                JsonNode m;
                try {
                    m = PromptStore.JSON.readTree(ctx.message());
                } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                    return;
                }
                if (m != null && "feature_flags".equals(m.path("type").asText())) {
                    hub.send("feature_flags", ComfyExtraRoutes.featureFlags(config), ctx.attribute("sid"));
                }
            });
            ws.onClose(ctx -> {
                hub.remove(ctx.attribute("sid"), ctx);
                log.subscribe(ctx.attribute("sid"), false);
            });
            ws.onError(ctx -> hub.remove(ctx.attribute("sid"), ctx));
        });
    }

    ApiJobs jobs() {
        return jobs;
    }

    ServerLog log() {
        return log;
    }

    Hub hub() {
        return hub;
    }

    FileRoutes files() {
        return files;
    }

    ServeOptions serveOptions() {
        return serve;
    }

    void both(HandlerType type, String path, Handler h) {
        app.addHttpHandler(type, path, h);
        app.addHttpHandler(type, "/api" + path, h);
    }

    /** The result of accepting a prompt: its id and queue number, and node_errors of outputs that will not run. */
    record Accepted(String promptId, long number, JsonNode nodeErrors) {
    }

    /**
     * Validates, checks the limits and the queue bound, stores the prompt and wakes the worker. Throws
     * {@link ApiError} with ComfyUI's 400 body, or 429 when the queue is full.
     */
    Accepted submit(JsonNode promptJson, String clientId, JsonNode extraData, boolean front, String promptId) {
        if (promptJson == null || !promptJson.isObject()) {
            throw ApiError.promptError("no_prompt", "No prompt provided",
                    "the body needs a \"prompt\" object (a workflow in API format)");
        }
        Prompt prompt;
        try {
            prompt = Prompt.parse(promptJson);
        } catch (WorkflowException e) {
            throw ApiError.invalidPrompt(e.getMessage(), "");
        }
        PromptValidator.Result v = engine.validate(prompt);
        if (!v.ok()) {
            log.line("WARN", "invalid prompt: " + v.toJson().path("error").path("message").asText() + " "
                    + v.toJson().path("node_errors"));
            throw new ApiError(400, v.toJson());
        }
        ObjectNode over = limits.check(prompt.json());
        if (over != null) {
            throw new ApiError(400, over);
        }
        synchronized (store) {
            if (store.remaining() >= config.maxQueue()) {
                throw new ApiError(429, ApiError.body("queue is full (" + config.maxQueue()
                        + " prompts); try again later"));
            }
            String id = promptId == null || promptId.isBlank() ? UUID.randomUUID().toString() : promptId;
            if (store.exists(id)) {
                throw ApiError.invalidPrompt("prompt_id " + id + " is already used", "");
            }
            ArrayNode good = PromptStore.JSON.createArrayNode();
            v.goodOutputs().forEach(good::add);
            ObjectNode extra = extraData != null && extraData.isObject() ? ((ObjectNode) extraData).deepCopy()
                    : PromptStore.JSON.createObjectNode();
            if (!extra.has("create_time")) {
                extra.put("create_time", System.currentTimeMillis()); // as ComfyUI: its /jobs list shows it
            }
            if (clientId != null) {
                extra.put("client_id", clientId);
            }
            PromptStore.Entry e = store.enqueue(id, prompt.json(), extra, good, clientId, front);
            runner.wake();
            runner.broadcastStatus();
            return new Accepted(id, e.number(), v.nodeErrors());
        }
    }

    PromptRunner runner() {
        return runner;
    }

    PromptStore store() {
        return store;
    }

    ServerConfig config() {
        return config;
    }

    private void postPrompt(Context ctx) {
        JsonNode body = ApiError.readJson(ctx);
        String clientId = body.path("client_id").isTextual() ? body.get("client_id").asText() : null;
        boolean front = body.path("front").asBoolean(false);
        String pid = body.path("prompt_id").isTextual() ? body.get("prompt_id").asText() : null;
        Accepted a = submit(body.get("prompt"), clientId, body.get("extra_data"), front, pid);
        ObjectNode out = PromptStore.JSON.createObjectNode();
        out.put("prompt_id", a.promptId());
        out.put("number", a.number());
        out.set("node_errors", a.nodeErrors());
        json(ctx, out);
    }

    private void getQueue(Context ctx) {
        ObjectNode out = PromptStore.JSON.createObjectNode();
        ArrayNode running = out.putArray("queue_running");
        store.running().forEach(e -> running.add(e.queueItem()));
        ArrayNode pending = out.putArray("queue_pending");
        store.pending().forEach(e -> pending.add(e.queueItem()));
        json(ctx, out);
    }

    private void postQueue(Context ctx) {
        JsonNode body = ApiError.readJson(ctx);
        if (body.path("clear").asBoolean(false)) {
            store.deletePending(null);
        }
        if (body.has("delete")) {
            store.deletePending(ids(body.get("delete")));
        }
        runner.broadcastStatus();
        ctx.status(200);
    }

    private void postInterrupt(Context ctx) {
        JsonNode body = ctx.body().isBlank() ? PromptStore.JSON.createObjectNode() : ApiError.readJson(ctx);
        String pid = body.path("prompt_id").isTextual() ? body.get("prompt_id").asText() : null;
        runner.interrupt(pid);
        ctx.status(200);
    }

    private void getHistory(Context ctx) {
        int max = 0;
        String m = ctx.queryParam("max_items");
        if (m != null) {
            try {
                max = Integer.parseInt(m);
            } catch (NumberFormatException e) {
                throw new ApiError(400, ApiError.body("max_items must be an integer, not '" + m + "'"));
            }
        }
        ObjectNode out = PromptStore.JSON.createObjectNode();
        store.history(max).forEach(e -> out.set(e.promptId(), e.historyItem()));
        json(ctx, out);
    }

    private void getHistoryItem(Context ctx) {
        String id = ctx.pathParam("prompt_id");
        PromptStore.Entry e = store.get(id);
        ObjectNode out = PromptStore.JSON.createObjectNode();
        if (e != null && "done".equals(e.state())) {
            out.set(id, e.historyItem());
        }
        json(ctx, out);
    }

    private void postHistory(Context ctx) {
        JsonNode body = ApiError.readJson(ctx);
        if (body.path("clear").asBoolean(false)) {
            store.deleteHistory(null);
        }
        if (body.has("delete")) {
            store.deleteHistory(ids(body.get("delete")));
        }
        ctx.status(200);
    }

    private void getObjectInfo(Context ctx) {
        String name = ctx.pathParam("node_class");
        ObjectNode out = PromptStore.JSON.createObjectNode();
        var def = Nodes.get(name);
        if (def != null) {
            out.set(name, Nodes.objectInfo(def, paths));
        }
        json(ctx, out);
    }

    private void getModelKinds(Context ctx) {
        ArrayNode out = PromptStore.JSON.createArrayNode();
        ModelPaths.MODEL_KINDS.keySet().stream().sorted().forEach(out::add);
        json(ctx, out);
    }

    private void getModels(Context ctx) {
        String folder = ctx.pathParam("folder");
        String kind = folder.equals("unet") ? "diffusion_models" : folder;
        if (!ModelPaths.MODEL_KINDS.containsKey(kind)) {
            throw new ApiError(404, ApiError.body("unknown model folder '" + folder + "'"));
        }
        ArrayNode out = PromptStore.JSON.createArrayNode();
        paths.list(kind).forEach(out::add);
        json(ctx, out);
    }

    private static List<String> ids(JsonNode list) {
        List<String> out = new ArrayList<>();
        if (list != null && list.isArray()) {
            list.forEach(n -> out.add(n.asText()));
        }
        return out;
    }

    static void json(Context ctx, JsonNode body) {
        ctx.contentType("application/json").result(body.toString());
    }

    private static void error(Context ctx, int status, String message) {
        ctx.status(status).contentType("application/json").result(ApiError.body(message).toString());
    }

    /** The file that holds the queue and the history under a base directory. */
    public static Path databaseFile(Path baseDir) {
        return baseDir.toAbsolutePath().normalize().resolve(DB_FILE);
    }
}
