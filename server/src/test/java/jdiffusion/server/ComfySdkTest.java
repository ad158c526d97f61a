package jdiffusion.server;

import static jdiffusion.server.ServerFixture.JSON;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.net.http.HttpRequest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * The ComfyUI SDKs from the npm registry, {@code @saintno/comfyui-sdk} and {@code @stable-canvas/comfyui-client}
 * (pinned with their lock file in test resources clients/comfyui-sdk), against a server with a token and previews
 * on. Every route their shipped code calls is read out of the installed dist files and called here (ComfyUI's own
 * routes answer, ComfyUI-Manager's and Crystools' answer the plain 404 the SDK takes for "extension not installed"),
 * and the first SDK is driven as its README shows: ComfyApi with a bearer token over HTTP and the websocket, lists,
 * node definitions, users, settings, user data, uploads, PromptBuilder + CallWrapper with progress and previews, the
 * image, history, queue, interrupt and free; the second as its README's Quick Start shows (a BasePipe text to
 * image, whose image comes back as a SaveImageWebsocket frame). Skipped when node / npm or the registry is not there.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ComfySdkTest {
    private static final String TOKEN = "sdk-token";
    /** The dist files whose route calls are checked. */
    private static final List<String> DISTS = List.of("@saintno/comfyui-sdk/build/index.esm.js",
            "@stable-canvas/comfyui-client/dist/main.modern.mjs");
    /** The SDKs' calls: fetchApi("/route..."), fetchApi(`/route${..}`), postApi("route"), internalURL("/route"). */
    private static final Pattern CALL = Pattern.compile(
            "(fetchApi|postApi|internalURL)\\(\\s*[\"`]([^\"`$?]*)");
    /** Routes of ComfyUI extensions the SDK probes for (ComfyUI-Manager, Crystools): not ComfyUI's own. */
    private static final List<String> EXTENSIONS = List.of("/manager/", "/customnode/", "/api/crystools/",
            "/model/install", "/comfyui_manager/");

    @TempDir
    static Path tmp;

    private Path sdk;
    private JDiffusionServer server;
    private ServerFixture.Client client;

    @BeforeAll
    void start() throws Exception {
        sdk = NpmClients.install("comfyui-sdk", "comfyui-sdk-client.mjs", "stable-canvas-client.mjs");
        Path base = ServerFixture.baseDir(tmp);
        server = JDiffusionServer.start(ServerFixture.config(base).withAuthToken(TOKEN),
                new ServeOptions(null, "auto"));
        client = new ServerFixture.Client(server.port(), TOKEN);
    }

    @AfterAll
    void stop() {
        if (server != null) {
            server.close();
        }
    }

    /** Each route prefix the SDKs call, and how to call it here (status expected). */
    private Map<String, Function<ServerFixture.Client, Integer>> probes() {
        Map<String, Function<ServerFixture.Client, Integer>> p = new java.util.HashMap<>();
        for (String get : List.of("/embeddings", "/experiment/models", "/extensions", "/features", "/history",
                "/internal/logs/raw", "/models", "/prompt", "/queue", "/settings", "/system_stats", "/users",
                "/workflow_templates", "/object_info", "/internal/logs", "/logs", "/logs/raw")) {
            String path = get.startsWith("/logs") ? "/internal" + get : get; // internalURL("/logs")
            p.put(get, c -> c.get(path).status());
        }
        p.put("/experiment/models/", c -> c.get("/experiment/models/checkpoints").status());
        p.put("/models/", c -> c.get("/models/checkpoints").status());
        p.put("/history/", c -> c.get("/history/no-such-prompt").status());
        p.put("/settings/", c -> c.get("/settings/Comfy.Probe").status());
        p.put("/view_metadata/", c -> c.get("/view_metadata/checkpoints?filename=" + ServerFixture.SD1).status());
        p.put("/v2/userdata", c -> c.get("/v2/userdata?dir=").status());
        p.put("/userdata/", c -> c.post("/userdata/workflows%2Fprobe.json?overwrite=true", "{}").status());
        p.put("/userdata", c -> {
            c.post("/userdata/workflows%2Fprobe.json?overwrite=true", "{}");
            return c.get("/userdata?dir=workflows&recurse=true").status();
        });
        p.put("/view", c -> {
            c.multipart("/upload/image", List.of(), "image", "probe.png", png(), null);
            return c.get("/view?filename=probe.png&type=input&subfolder=").status();
        });
        p.put("/upload/image", c -> c.multipart("/upload/image", List.of(), "image", "probe.png", png(), null)
                .status());
        p.put("/upload/mask", c -> {
            c.multipart("/upload/image", List.of(), "image", "probe.png", png(), null);
            return c.multipart("/upload/mask", List.<String[]>of(new String[] {"original_ref",
                    "{\"filename\":\"probe.png\",\"subfolder\":\"\",\"type\":\"input\"}"}), "image", "mask.png",
                    png(), null).status();
        });
        p.put("/internal/logs/subscribe", c -> c.send(c.request("/internal/logs/subscribe")
                .method("PATCH", HttpRequest.BodyPublishers.ofString("{\"clientId\":\"probe\",\"enabled\":true}"))
                .build()).status());
        p.put("/free", c -> c.post("/free", "{\"unload_models\":true,\"free_memory\":true}").status());
        p.put("/interrupt", c -> c.post("/interrupt", "").status());
        p.put("free", p.get("/free")); // postApi("free")
        p.put("interrupt", p.get("/interrupt"));
        p.put("/", c -> c.get("/").status()); // fetchApi("/" + name): POST /queue, /history, /free, /interrupt
        return p;
    }

    private static byte[] png() {
        try {
            var out = new java.io.ByteArrayOutputStream();
            ImageIO.write(new BufferedImage(8, 8, BufferedImage.TYPE_INT_RGB), "png", out);
            return out.toByteArray();
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void everyRouteTheSdksCallAnswers() throws IOException {
        Map<String, Function<ServerFixture.Client, Integer>> probes = probes();
        TreeSet<String> seen = new TreeSet<>();
        for (String dist : DISTS) {
            String code = Files.readString(sdk.resolve("node_modules").resolve(dist));
            Matcher m = CALL.matcher(code);
            while (m.find()) {
                seen.add(m.group(2));
            }
        }
        assertTrue(seen.size() > 25, "the route calls were found in the SDKs' code: " + seen);
        List<String> failed = new ArrayList<>();
        for (String route : seen) {
            if (EXTENSIONS.stream().anyMatch(route::startsWith)) {
                // an extension's route: a plain 404 tells the SDK the extension is not there
                String path = route.endsWith("/") ? route + "probe" : route;
                ServerFixture.Response r = client.get(path);
                if (r.status() != 404) {
                    failed.add(route + " (extension) -> " + r.status());
                }
                continue;
            }
            Function<ServerFixture.Client, Integer> probe = probes.get(route);
            if (probe == null) {
                fail("an SDK calls " + route + ", which this test does not know: add a probe for it (" + seen + ")");
            }
            int status = probe.apply(client);
            if (status < 200 || status >= 300) {
                failed.add(route + " -> " + status);
            }
        }
        assertEquals(List.of(), failed, "routes the SDKs call: " + seen);
        // and the websocket both connect to, at /ws?clientId=
        ServerFixture.Ws ws = client.websocket("probe");
        try {
            assertTrue(ws.next("status", java.time.Duration.ofSeconds(20)).path("data").has("sid"));
        } finally {
            ws.close();
        }
    }

    @Test
    void theSaintnoSdkRunsItsReadmeExample() throws Exception {
        Path work = Files.createDirectories(tmp.resolve("sdk-work"));
        Path init = work.resolve("init.png");
        Files.write(init, png());
        JsonNode seen = JSON.readTree(NpmClients.node(sdk, "comfyui-sdk-client.mjs", work, 600,
                "http://127.0.0.1:" + server.port(), TOKEN, ServerFixture.SD1, init.toString()));

        assertTrue(seen.path("ready").asBoolean());
        assertEquals("posix", seen.path("os").asText());
        assertEquals(List.of(ServerFixture.SD1), JSON.convertValue(seen.path("checkpoints"), List.class));
        assertEquals(List.of(ServerFixture.SD1_LORA), JSON.convertValue(seen.path("loras"), List.class));
        assertTrue(JSON.convertValue(seen.path("samplers"), List.class).containsAll(List.of("euler", "dpmpp_2m")));
        assertTrue(JSON.convertValue(seen.path("schedulers"), List.class).containsAll(List.of("normal", "karras")));
        assertTrue(JSON.convertValue(seen.path("ksamplerInputs"), List.class).containsAll(
                List.of("model", "seed", "steps", "cfg", "sampler_name", "scheduler", "denoise")));
        assertTrue(seen.path("nodeCount").asInt() > 20);
        assertTrue(seen.path("features").path("max_upload_size").asLong() > 0, seen.path("features").toString());
        assertTrue(JSON.convertValue(seen.path("modelTypes"), List.class).contains("checkpoints"));
        assertEquals(List.of(ServerFixture.SD1), JSON.convertValue(seen.path("checkpointFiles"), List.class));
        assertEquals(List.of(ServerFixture.SD1), JSON.convertValue(seen.path("modelFiles"), List.class));
        assertTrue(seen.path("metadata").isObject(), seen.path("metadata").toString());
        assertEquals("{}", seen.path("templates").toString());
        assertEquals("server", seen.path("users").path("storage").asText());
        assertEquals(42, seen.path("setting").asInt());
        assertEquals("x", seen.path("settings").path("Sdk.Other").asText());
        assertEquals("[\"sdk.json\"]", seen.path("listed").toString());
        assertEquals("{\"nodes\":[]}", seen.path("userData").toString());
        assertEquals("[\"sdk2.json\"]", seen.path("moved").toString());
        assertEquals(404, seen.path("afterDelete").asInt());
        assertEquals("sdk-init.png", seen.path("uploaded").path("filename").asText());
        assertEquals("input", seen.path("uploaded").path("type").asText());
        assertTrue(seen.path("uploadedUrl").asText().contains("/view?filename=sdk-init.png"));
        assertEquals("input", seen.path("mask").path("type").asText(), seen.path("mask").toString());

        JsonNode run = seen.path("run");
        assertFalse(run.path("pending").asText().isEmpty(), run.toString());
        assertEquals(run.path("pending").asText(), run.path("started").asText());
        assertTrue(run.path("failed").isNull(), run.toString());
        assertEquals("[[1,3,\"3\"],[2,3,\"3\"],[3,3,\"3\"]]", run.path("progress").toString(),
                "KSampler's steps over the websocket");
        assertTrue(run.path("previews").asInt() >= 1, "binary preview frames (server --preview-method auto)");
        assertEquals(1, seen.path("images").size(), seen.toString());
        assertEquals("output", seen.path("images").get(0).path("type").asText());
        assertTrue(seen.path("pngMagic").asBoolean() && seen.path("imageBytes").asInt() > 100, seen.toString());
        assertEquals("success", seen.path("history").path("status_str").asText());
        assertTrue(seen.path("histories").asBoolean());
        assertEquals(0, seen.path("queue").path("queue_running").size());

        JsonNode interrupt = seen.path("interrupt");
        assertTrue(interrupt.path("sent").asBoolean(), interrupt.toString());
        assertFalse(interrupt.path("result").asBoolean(), "the interrupted run gives no output");
        assertTrue(interrupt.path("failed").asText().toLowerCase().contains("interrupt"), interrupt.toString());
        assertTrue(seen.path("free").asBoolean());
    }

    @Test
    void theStableCanvasClientRunsItsQuickStart() throws Exception {
        Path work = Files.createDirectories(tmp.resolve("stable-canvas-work"));
        JsonNode seen = JSON.readTree(NpmClients.node(sdk, "stable-canvas-client.mjs", work, 600,
                "127.0.0.1:" + server.port(), TOKEN, ServerFixture.SD1));
        assertEquals("posix", seen.path("os").asText());
        assertTrue(seen.path("connected").asBoolean());
        // the SaveImageWebsocket PNG comes last; before it, the binary frames of the previews (the server runs with
        // --preview-method auto), which the pipe collects as well (JPEG: the client labels every frame image/png)
        JsonNode images = seen.path("images");
        assertTrue(images.size() >= 1, seen.toString());
        JsonNode img = images.get(images.size() - 1);
        assertTrue(img.path("png").asBoolean() && img.path("bytes").asInt() > 100, img.toString());
        for (int i = 0; i < images.size() - 1; i++) {
            assertTrue(images.get(i).path("jpeg").asBoolean(), "a preview frame: " + images.get(i));
        }
        assertTrue(seen.path("nodeDefs").asInt() > 20);
        assertEquals(0, seen.path("queue").path("Running").size());
        assertTrue(seen.path("history").asInt() >= 1);
        assertTrue(seen.path("freed").asBoolean());
    }
}
