package jdiffusion.server;

import static jdiffusion.server.ServerFixture.JSON;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import javax.imageio.ImageIO;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.workflow.ExecutionListener;
import jdiffusion.workflow.ModelPaths;
import jdiffusion.workflow.Prompt;
import jdiffusion.workflow.WorkflowEngine;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * ComfyUI's API over real HTTP and websocket on loopback, with the tiny SD1 checkpoint: images equal the engine's
 * for the same workflow (txt2img, LoRA, img2img), the /ws event sequence is ComfyUI's, a seed-only change re-runs
 * only the sampler and what follows, validation errors come back as node_errors, interrupt stops a prompt between
 * steps, the queue and history routes, and the Stability endpoint (AUTOMATIC1111's: {@link A1111ApiTest}).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ComfyApiTest {
    private static final Duration WAIT = Duration.ofMinutes(3);
    private static final String CLIENT = "test-client";

    @TempDir
    static Path tmp;

    private JDiffusionServer server;
    private ServerFixture.Client client;
    private ServerFixture.Ws ws;
    private WorkflowEngine reference;
    private Path referenceBase;

    @BeforeAll
    void start() throws IOException {
        Path base = ServerFixture.baseDir(tmp);
        server = JDiffusionServer.start(ServerFixture.config(base));
        client = new ServerFixture.Client(server.port(), null);
        ws = client.websocket(CLIENT);
        JsonNode hello = ws.next("status", Duration.ofSeconds(10));
        assertEquals(CLIENT, hello.path("data").path("sid").asText(), hello.toString());
        assertTrue(hello.path("data").path("status").path("exec_info").has("queue_remaining"), hello.toString());
        referenceBase = Files.createDirectories(tmp.resolve("reference"));
        Files.createDirectories(referenceBase.resolve("models"));
        copyTree(base.resolve("models"), referenceBase.resolve("models"));
        reference = new WorkflowEngine(ModelPaths.of(referenceBase), 2L << 30);
    }

    @AfterAll
    void stop() {
        if (ws != null) {
            ws.close();
        }
        if (server != null) {
            server.close();
        }
        if (reference != null) {
            reference.close();
        }
    }

    @Test
    @Order(1)
    void txt2imgEventsAreComfyUisAndPixelsEqualTheEngines() throws IOException {
        ObjectNode prompt = ServerFixture.txt2img(11, 2, 32);
        String id = client.queue(prompt, CLIENT, "auto"); // previews only when asked, as ComfyUI
        List<Object> events = ws.until(id, WAIT);
        List<String> types = ServerFixture.types(events);
        types.removeIf(t -> t.equals("status"));
        // ComfyUI's order: start, cached, then per node executing (+ progress / previews, executed), success, done
        assertEquals("execution_start", types.getFirst(), types.toString());
        assertEquals("execution_cached", types.get(1), types.toString());
        assertEquals("executing", types.getLast());
        assertEquals("execution_success", types.get(types.size() - 2), types.toString());
        List<String> executing = executingNodes(events, id);
        assertEquals(Set.of("3", "4", "5", "6", "7", "8", "9"), new HashSet<>(executing));
        assertTrue(executing.indexOf("4") < executing.indexOf("6") && executing.indexOf("3") < executing.indexOf("8")
                && executing.indexOf("8") < executing.indexOf("9"), executing.toString());
        List<JsonNode> progress = ofType(events, "progress");
        assertEquals(2, progress.size(), types.toString());
        for (int i = 0; i < progress.size(); i++) {
            JsonNode d = progress.get(i).get("data");
            assertEquals(i + 1, d.get("value").asInt());
            assertEquals(2, d.get("max").asInt());
            assertEquals("3", d.get("node").asText());
            assertEquals(id, d.get("prompt_id").asText());
        }
        checkPreviews(events);
        JsonNode executed = ofType(events, "executed").getFirst().get("data");
        assertEquals("9", executed.get("node").asText());
        JsonNode image = executed.path("output").path("images").get(0);
        assertEquals("output", image.get("type").asText());

        JsonNode history = client.waitHistory(id, WAIT);
        assertEquals("success", history.path("status").path("status_str").asText());
        assertTrue(history.path("status").path("completed").asBoolean());
        assertEquals(image, history.path("outputs").path("9").path("images").get(0));
        assertEquals(id, history.path("prompt").get(1).asText());
        assertPixelsEqualEngine(prompt, viewPng(image));
    }

    @Test
    @Order(2)
    void seedOnlyChangeReRunsOnlyTheSamplerAndWhatFollows() {
        String id = client.queue(ServerFixture.txt2img(12, 2, 32), CLIENT);
        List<Object> events = ws.until(id, WAIT);
        JsonNode cached = ofType(events, "execution_cached").getFirst().get("data");
        Set<String> cachedNodes = new HashSet<>();
        cached.get("nodes").forEach(n -> cachedNodes.add(n.asText()));
        assertEquals(Set.of("4", "5", "6", "7"), cachedNodes);
        assertEquals(List.of("3", "8", "9"), executingNodes(events, id));
        assertEquals("success", client.waitHistory(id, WAIT).path("status").path("status_str").asText());
    }

    @Test
    @Order(3)
    void loraWorkflowEqualsTheEngine() throws IOException {
        ObjectNode prompt = ServerFixture.lora(11, 2, 32, 0.8);
        String id = client.queue(prompt, CLIENT);
        ws.until(id, WAIT);
        JsonNode history = client.waitHistory(id, WAIT);
        assertEquals("success", history.path("status").path("status_str").asText(), history.toString());
        PngImage withLora = viewPng(history.path("outputs").path("9").path("images").get(0));
        assertPixelsEqualEngine(prompt, withLora);
    }

    @Test
    @Order(4)
    void img2imgWithAnUploadedImageEqualsTheEngine() throws IOException {
        byte[] input = Files.readAllBytes(ServerFixture.golden().resolve("pipe_sd1_img2img_euler.input.png"));
        ServerFixture.Response up = client.multipart("/upload/image", List.<String[]>of(new String[] {"overwrite", "true"}),
                "image", "cat.png", input, null);
        assertEquals(200, up.status(), up.body());
        assertEquals("cat.png", up.json().get("name").asText());
        assertEquals("input", up.json().get("type").asText());
        Files.write(referenceBase.resolve("input/cat.png"), input);
        ObjectNode prompt = ServerFixture.img2img("cat.png", 5, 2, 0.6);
        String id = client.queue(prompt, CLIENT);
        ws.until(id, WAIT);
        JsonNode history = client.waitHistory(id, WAIT);
        assertEquals("success", history.path("status").path("status_str").asText(), history.toString());
        assertPixelsEqualEngine(prompt, viewPng(history.path("outputs").path("9").path("images").get(0)));
    }

    @Test
    @Order(5)
    void validationErrorsComeBackAsNodeErrors() {
        ObjectNode missing = ServerFixture.txt2img(1, 2, 32);
        ((ObjectNode) missing.get("3").get("inputs")).remove("positive");
        ServerFixture.Response r = post(missing);
        assertEquals(400, r.status(), r.body());
        assertEquals("prompt_outputs_failed_validation", r.json().path("error").path("type").asText());
        assertEquals("required_input_missing",
                r.json().path("node_errors").path("3").path("errors").get(0).path("type").asText(), r.body());
        assertEquals("KSampler", r.json().path("node_errors").path("3").path("class_type").asText());

        ObjectNode badFile = ServerFixture.txt2img(1, 2, 32);
        ((ObjectNode) badFile.get("4").get("inputs")).put("ckpt_name", "nope.safetensors");
        r = post(badFile);
        assertEquals(400, r.status());
        assertEquals("value_not_in_list",
                r.json().path("node_errors").path("4").path("errors").get(0).path("type").asText(), r.body());

        ObjectNode unknown = ServerFixture.txt2img(1, 2, 32);
        ((ObjectNode) unknown.get("8")).put("class_type", "RunPython");
        r = post(unknown);
        assertEquals(400, r.status());
        assertEquals("invalid_prompt", r.json().path("error").path("type").asText(), r.body());

        ObjectNode tooManySteps = ServerFixture.txt2img(1, server.config().maxSteps() + 1, 32);
        r = post(tooManySteps);
        assertEquals(400, r.status());
        assertTrue(r.json().path("node_errors").has("3"), r.body());

        assertEquals(400, client.post("/prompt", "{not json").status());
        assertEquals(0, client.get("/queue").json().path("queue_pending").size(), "nothing was queued");
    }

    @Test
    @Order(6)
    void interruptStopsARunningPromptBetweenStepsAndTheQueueCanBeEdited() {
        String longId = client.queue(ServerFixture.txt2img(21, 200, 32), CLIENT);
        String pending = client.queue(ServerFixture.txt2img(22, 2, 32), CLIENT);
        JsonNode firstStep = ws.next("progress", WAIT);
        assertEquals(longId, firstStep.path("data").path("prompt_id").asText());
        JsonNode queue = client.get("/queue").json();
        assertEquals(longId, queue.path("queue_running").get(0).get(1).asText(), queue.toString());
        assertEquals(pending, queue.path("queue_pending").get(0).get(1).asText(), queue.toString());
        assertEquals(2, client.get("/prompt").json().path("exec_info").path("queue_remaining").asInt());
        assertEquals(200, client.post("/queue", "{\"delete\": [\"" + pending + "\"]}").status());
        assertEquals(0, client.get("/queue").json().path("queue_pending").size());
        String back = client.queue(ServerFixture.txt2img(23, 2, 32), CLIENT);
        ObjectNode frontBody = JSON.createObjectNode();
        frontBody.set("prompt", ServerFixture.txt2img(24, 2, 32));
        frontBody.put("front", true);
        frontBody.put("prompt_id", "my-own-id");
        ServerFixture.Response front = client.post("/prompt", frontBody);
        assertEquals("my-own-id", front.json().path("prompt_id").asText(), front.body());
        assertTrue(front.json().path("number").asLong() < 0, "front of the queue: " + front.body());
        JsonNode order = client.get("/queue").json().path("queue_pending");
        assertEquals(List.of("my-own-id", back), List.of(order.get(0).get(1).asText(), order.get(1).get(1).asText()));
        assertEquals(400, client.post("/prompt", frontBody).status(), "a prompt_id is used once");
        assertEquals(200, client.post("/queue", "{\"clear\": true}").status());
        assertEquals(0, client.get("/queue").json().path("queue_pending").size());
        assertEquals(1, client.get("/queue").json().path("queue_running").size(), "clear leaves the running one");

        assertEquals(200, client.post("/interrupt", "{\"prompt_id\": \"" + longId + "\"}").status());
        List<Object> events = ws.until(longId, WAIT);
        JsonNode interrupted = ofType(events, "execution_interrupted").getFirst().get("data");
        assertEquals("3", interrupted.get("node_id").asText());
        assertEquals("KSampler", interrupted.get("node_type").asText());
        int lastStep = ofType(events, "progress").stream().mapToInt(p -> p.path("data").path("value").asInt())
                .max().orElse(1);
        assertTrue(lastStep < 200, "stopped at step " + lastStep);
        JsonNode history = client.waitHistory(longId, WAIT);
        assertEquals("error", history.path("status").path("status_str").asText());
        assertTrue(history.path("status").path("messages").toString().contains("execution_interrupted"));
        assertFalse(client.get("/history").json().has(pending), "a deleted prompt never runs");
    }

    @Test
    @Order(8)
    void stabilityEndpoint() throws IOException {
        List<String[]> form = List.of(new String[] {"prompt", "a lighthouse"}, new String[] {"seed", "42"},
                new String[] {"output_format", "png"}, new String[] {"aspect_ratio", "1:1"});
        ServerFixture.Response r = client.multipart("/v2beta/stable-image/generate/sd3", form, null, null, null,
                "image/*");
        assertEquals(200, r.status(), r.body());
        assertEquals("42", r.headers().firstValue("seed").orElse(null));
        assertEquals("SUCCESS", r.headers().firstValue("finish-reason").orElse(null));
        assertEquals("image/png", r.headers().firstValue("content-type").orElse("").split(";")[0]);
        BufferedImage img = ImageIO.read(new ByteArrayInputStream(r.bytes()));
        assertEquals(32, img.getWidth());

        List<String[]> jpeg = List.of(new String[] {"prompt", "a lighthouse"}, new String[] {"seed", "42"},
                new String[] {"output_format", "jpeg"}, new String[] {"mode", "image-to-image"},
                new String[] {"strength", "0.5"});
        r = client.multipart("/v2beta/stable-image/generate/sd3", jpeg, "image", "in.png",
                pngOf(img), "application/json");
        assertEquals(200, r.status(), r.body());
        assertEquals("SUCCESS", r.json().path("finish_reason").asText());
        assertEquals(42, r.json().path("seed").asLong());
        byte[] jpg = Base64.getDecoder().decode(r.json().path("image").asText());
        assertEquals(0xFF, jpg[0] & 255);
        assertEquals(0xD8, jpg[1] & 255);

        ServerFixture.Response bad = client.multipart("/v2beta/stable-image/generate/sd3",
                List.of(new String[] {"prompt", "x"}, new String[] {"aspect_ratio", "7:3"}), null, null, null,
                "application/json");
        assertEquals(400, bad.status(), bad.body());
    }

    @Test
    @Order(9)
    void infoRoutesAndHistoryEditing() {
        JsonNode info = client.get("/object_info").json();
        assertTrue(info.has("KSampler") && info.has("CheckpointLoaderSimple") && info.has("LoraLoader"));
        JsonNode ckpts = info.path("CheckpointLoaderSimple").path("input").path("required").path("ckpt_name").get(0);
        assertEquals(ServerFixture.SD1, ckpts.get(0).asText());
        assertTrue(client.get("/api/object_info/KSampler").json().has("KSampler"));
        assertEquals(0, client.get("/object_info/NoSuchNode").json().size());
        assertEquals("cpu", client.get("/system_stats").json().path("devices").get(0).path("type").asText());
        assertEquals(ServerFixture.SD1_LORA, client.get("/models/loras").json().get(0).asText());
        assertTrue(client.get("/models").json().toString().contains("checkpoints"));
        assertEquals(404, client.get("/models/nope").status());
        assertTrue(client.get("/embeddings").json().isArray());
        assertTrue(client.get("/extensions").json().isArray());

        JsonNode all = client.get("/history").json();
        assertTrue(all.size() >= 5, all.size() + " history entries");
        assertEquals(2, client.get("/history?max_items=2").json().size());
        String first = all.fieldNames().next();
        assertEquals(200, client.post("/history", "{\"delete\": [\"" + first + "\"]}").status());
        assertFalse(client.get("/history").json().has(first));
        assertEquals(0, client.get("/history/" + first).json().size());
        assertEquals(200, client.post("/free", "{\"unload_models\": true}").status());
    }

    // ---- helpers ----

    private ServerFixture.Response post(ObjectNode prompt) {
        ObjectNode body = JSON.createObjectNode();
        body.set("prompt", prompt);
        body.put("client_id", CLIENT);
        return client.post("/prompt", body);
    }

    private static List<String> executingNodes(List<Object> events, String id) {
        List<String> nodes = new ArrayList<>();
        for (JsonNode e : ofType(events, "executing")) {
            if (!e.path("data").path("node").isNull() && e.path("data").path("prompt_id").asText().equals(id)) {
                nodes.add(e.path("data").path("node").asText());
            }
        }
        return nodes;
    }

    private static List<JsonNode> ofType(List<Object> events, String type) {
        List<JsonNode> out = new ArrayList<>();
        for (Object o : events) {
            if (o instanceof JsonNode j && j.path("type").asText().equals(type)) {
                out.add(j);
            }
        }
        return out;
    }

    /** Each step sends a binary frame: event 1 (preview), image type 1 (JPEG), then a decodable JPEG. */
    private static void checkPreviews(List<Object> events) throws IOException {
        int frames = 0;
        for (Object o : events) {
            if (o instanceof byte[] b) {
                ByteBuffer buf = ByteBuffer.wrap(b);
                assertEquals(LatentPreview.PREVIEW_IMAGE, buf.getInt());
                assertEquals(LatentPreview.JPEG, buf.getInt());
                BufferedImage img = ImageIO.read(new ByteArrayInputStream(b, 8, b.length - 8));
                assertNotNull(img, "preview frame is not a JPEG");
                assertTrue(img.getWidth() >= 4);
                frames++;
            }
        }
        assertEquals(2, frames, "one preview per step");
    }

    private PngImage viewPng(JsonNode image) throws IOException {
        String q = "/view?filename=" + image.get("filename").asText() + "&subfolder="
                + image.get("subfolder").asText() + "&type=" + image.get("type").asText();
        ServerFixture.Response r = client.get(q);
        assertEquals(200, r.status(), r.body());
        Path f = Files.createTempFile(tmp, "view", ".png");
        Files.write(f, r.bytes());
        return PngReader.read(f);
    }

    /** Runs the same prompt on an engine of its own (no server) and compares every pixel. */
    private void assertPixelsEqualEngine(ObjectNode prompt, PngImage served) throws IOException {
        WorkflowEngine.ExecutionResult r = reference.execute(Prompt.parse(prompt.deepCopy()), null, null,
                ExecutionListener.NONE);
        assertEquals(WorkflowEngine.Status.SUCCESS, r.status(), r.message());
        @SuppressWarnings("unchecked")
        List<java.util.Map<String, Object>> images = (List<java.util.Map<String, Object>>) r.outputs().get("9")
                .get("images");
        PngImage expected = PngReader.read(referenceBase.resolve("output").resolve((String) images.getFirst()
                .get("filename")));
        assertEquals(expected.width(), served.width());
        assertEquals(expected.height(), served.height());
        assertArrayEquals(expected.rgb(), served.rgb(), "served image differs from the engine's");
    }

    private static byte[] pngOf(BufferedImage img) throws IOException {
        var out = new java.io.ByteArrayOutputStream();
        ImageIO.write(img, "png", out);
        return out.toByteArray();
    }

    private static void copyTree(Path from, Path to) throws IOException {
        try (var s = Files.walk(from)) {
            for (Path p : s.toList()) {
                Path t = to.resolve(from.relativize(p).toString());
                if (Files.isDirectory(p)) {
                    Files.createDirectories(t);
                } else {
                    Files.copy(p, t);
                }
            }
        }
    }
}
