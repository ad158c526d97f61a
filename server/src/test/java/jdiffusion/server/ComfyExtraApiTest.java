package jdiffusion.server;

import static jdiffusion.server.ServerFixture.JSON;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.http.HttpRequest;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * The rest of ComfyUI's API over real HTTP and websocket (CONTRACT.md of the shared front end build): features and the
 * feature_flags handshake on /api/ws, logs (and their websocket subscription), users, settings, user data confined to
 * the user's folder, the model library, folder paths, i18n / templates, /upload/mask, jobs, system_stats' os,
 * /view?preview=jpeg;Q, previews only when asked, SaveImageWebsocket frames, and execution_error naming the failing
 * node.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ComfyExtraApiTest {
    private static final Duration WAIT = Duration.ofMinutes(3);

    @TempDir
    static Path tmp;

    private Path base;
    private JDiffusionServer server;
    private ServerFixture.Client client;

    @BeforeAll
    void start() throws IOException {
        base = ServerFixture.baseDir(tmp);
        Files.write(base.resolve("models/loras/broken.safetensors"), "not a safetensors file".getBytes());
        server = JDiffusionServer.start(ServerFixture.config(base));
        client = new ServerFixture.Client(server.port(), null);
    }

    @AfterAll
    void stop() {
        if (server != null) {
            server.close();
        }
    }

    private static JsonNode ok(ServerFixture.Response r) {
        assertEquals(200, r.status(), r.body());
        return r.json();
    }

    @Test
    @Order(1)
    void featuresAndTheFeatureFlagsHandshakeOnApiWs() {
        JsonNode f = ok(client.get("/api/features"));
        assertTrue(f.has("supports_preview_metadata"));
        assertEquals(server.config().maxBodyBytes(), f.path("max_upload_size").asLong());
        assertEquals(f, ok(client.get("/features")));
        ServerFixture.Ws ws = new ServerFixture.Ws(client, "flags-client", "/api/ws");
        try {
            JsonNode status = ws.next("status", Duration.ofSeconds(10));
            assertEquals("flags-client", status.path("data").path("sid").asText());
            ws.socket.sendText("{\"type\":\"feature_flags\",\"data\":{\"supports_preview_metadata\":true}}", true)
                    .join();
            JsonNode flags = ws.next("feature_flags", Duration.ofSeconds(10));
            assertEquals(f, flags.path("data"));
        } finally {
            ws.close();
        }
        assertEquals("posix", ok(client.get("/api/system_stats")).path("system").path("os").asText());
    }

    @Test
    @Order(2)
    void logsRecordRequestsAndReachSubscribers() {
        client.get("/api/object_info/KSampler");
        String text = ok(client.get("/internal/logs")).asText();
        assertTrue(text.contains("GET /api/object_info/KSampler 200"), text);
        JsonNode raw = ok(client.get("/api/internal/logs/raw"));
        assertTrue(raw.path("entries").size() > 0 && raw.path("entries").get(0).has("t")
                && raw.path("entries").get(0).has("m"), raw.toString());
        assertTrue(raw.path("size").has("cols") && raw.path("size").has("rows"));

        ServerFixture.Ws ws = client.websocket("log-client");
        try {
            ws.next("status", Duration.ofSeconds(10));
            ServerFixture.Response sub = client.send(client.request("/internal/logs/subscribe")
                    .method("PATCH", HttpRequest.BodyPublishers.ofString(
                            "{\"clientId\":\"log-client\",\"enabled\":true}")).build());
            assertEquals(200, sub.status(), sub.body());
            client.get("/api/users");
            JsonNode logs = ws.next("logs", Duration.ofSeconds(10));
            assertTrue(logs.path("data").path("entries").get(0).path("m").asText().contains("/"), logs.toString());
        } finally {
            ws.close();
        }
        // a validation failure is logged with its reason
        ObjectNode bad = ServerFixture.txt2img(1, 2, 32);
        ((ObjectNode) bad.get("3").get("inputs")).put("sampler_name", "nope");
        ObjectNode body = JSON.createObjectNode();
        body.set("prompt", bad);
        assertEquals(400, client.post("/prompt", body).status());
        assertTrue(ok(client.get("/internal/logs")).asText().contains("invalid prompt"));
    }

    @Test
    @Order(3)
    void usersSettingsAndUserdataConfinedToTheUsersFolder() throws IOException {
        JsonNode users = ok(client.get("/api/users"));
        assertEquals("server", users.path("storage").asText());
        assertTrue(users.path("migrated").asBoolean());
        assertFalse(users.has("users"), "one user: the front end shows no user picker");

        assertEquals(JSON.createObjectNode(), ok(client.get("/api/settings")));
        ok200(client.post("/api/settings", "{\"Comfy.TutorialCompleted\":true,\"Comfy.Locale\":\"en\"}"));
        ok200(client.post("/api/settings/Comfy.InstalledVersion", "\"1.44.17\""));
        JsonNode s = ok(client.get("/api/settings"));
        assertTrue(s.path("Comfy.TutorialCompleted").asBoolean());
        assertEquals("1.44.17", s.path("Comfy.InstalledVersion").asText());
        assertEquals("en", ok(client.get("/api/settings/Comfy.Locale")).asText());
        assertTrue(Files.readString(base.resolve("user/default/comfy.settings.json")).contains("1.44.17"));

        // a workflow saved as the front end does: the name's slash encoded
        assertEquals(404, client.get("/api/userdata?dir=workflows&recurse=true&split=false&full_info=true")
                .status(), "no workflows folder yet: 404, which the front end reads as []");
        String wf = "{\"nodes\":[],\"links\":[]}";
        JsonNode saved = ok(client.post("/api/userdata/workflows%2Fmy%20flow.json?overwrite=true&full_info=true", wf));
        assertEquals("workflows/my flow.json", saved.path("path").asText());
        assertEquals(wf.length(), saved.path("size").asInt());
        assertTrue(saved.path("modified").asDouble() > 1e9);
        JsonNode list = ok(client.get("/api/userdata?dir=workflows&recurse=true&split=false&full_info=true"));
        assertEquals(1, list.size());
        assertEquals("my flow.json", list.get(0).path("path").asText());
        assertEquals("[\"my flow.json\"]", ok(client.get("/api/userdata?dir=workflows")).toString());
        assertEquals(wf, client.get("/api/userdata/workflows%2Fmy%20flow.json").body());
        assertEquals(409, client.post("/api/userdata/workflows%2Fmy%20flow.json?overwrite=false", wf).status());
        ok200(client.post("/api/userdata/workflows%2Fmy%20flow.json/move/workflows%2Frenamed.json", ""));
        assertEquals(404, client.get("/api/userdata/workflows%2Fmy%20flow.json").status());
        assertEquals(wf, client.get("/api/userdata/workflows%2Frenamed.json").body());
        JsonNode v2 = ok(client.get("/api/v2/userdata?path=workflows"));
        assertEquals("renamed.json", v2.get(0).path("name").asText());
        assertEquals("workflows/renamed.json", v2.get(0).path("path").asText());
        assertEquals("file", v2.get(0).path("type").asText());
        JsonNode root = ok(client.get("/api/v2/userdata"));
        assertTrue(root.toString().contains("{\"name\":\"workflows\",\"path\":\"workflows\",\"type\":\"directory\""),
                root.toString());
        assertEquals(204, client.send(client.request("/api/userdata/workflows%2Frenamed.json").DELETE().build())
                .status());
        assertFalse(Files.exists(base.resolve("user/default/workflows/renamed.json")));

        // out of the user's folder: refused, nothing written outside
        for (String escape : List.of("..%2F..%2Fescaped.json", "%2Fetc%2Fpasswd", "..%2Fother-user%2Fx.json")) {
            int st = client.post("/api/userdata/" + escape, "{}").status();
            assertTrue(st == 403 || st == 400, escape + " -> " + st);
            st = client.get("/api/userdata/" + escape).status();
            assertTrue(st == 403 || st == 400 || st == 404, escape + " -> " + st);
        }
        assertFalse(Files.exists(base.resolve("escaped.json")) || Files.exists(base.getParent().resolve("escaped.json")));
        assertEquals(403, client.get("/api/userdata?dir=..%2F..").status());
        Path outside = Files.writeString(tmp.resolve("secret.txt"), "secret");
        Files.createSymbolicLink(base.resolve("user/default/link.txt"), outside);
        int st = client.get("/api/userdata/link.txt").status();
        assertTrue(st == 403 || st == 404, "a link out of the folder is not followed: " + st);
        assertEquals(404, client.get("/api/userdata/comfy.templates.json").status());
    }

    private static ServerFixture.Response ok200(ServerFixture.Response r) {
        assertEquals(200, r.status(), r.body());
        return r;
    }

    @Test
    @Order(4)
    void modelLibraryFoldersAndEmptyAnswers() {
        JsonNode folders = ok(client.get("/api/experiment/models"));
        JsonNode ckpt = null;
        for (JsonNode f : folders) {
            if (f.path("name").asText().equals("checkpoints")) {
                ckpt = f;
            }
        }
        assertNotNull(ckpt, folders.toString());
        assertTrue(ckpt.path("folders").get(0).asText().endsWith("checkpoints"));
        JsonNode models = ok(client.get("/api/experiment/models/checkpoints"));
        assertEquals(ServerFixture.SD1, models.get(0).path("name").asText());
        assertEquals(0, models.get(0).path("pathIndex").asInt());
        assertEquals(404, client.get("/api/experiment/models/nope").status());

        JsonNode meta = ok(client.get("/api/view_metadata/loras?filename=" + ServerFixture.SD1_LORA));
        assertEquals("4", meta.path("ss_network_dim").asText(), meta.toString());
        assertEquals(404, client.get("/api/view_metadata/loras?filename=missing.safetensors").status());
        assertEquals(404, client.get("/api/view_metadata/loras?filename=..%2F..%2Fx.safetensors").status());

        JsonNode paths = ok(client.get("/internal/folder_paths"));
        assertTrue(paths.path("loras").get(0).asText().endsWith("loras"));
        assertEquals("{}", client.get("/api/workflow_templates").body());
        assertEquals("{}", client.get("/api/i18n").body());
        assertEquals("{}", client.get("/api/global_subgraphs").body());
        assertEquals(404, client.get("/api/no/such/route").status());
    }

    @Test
    @Order(5)
    void uploadMaskPutsTheMasksAlphaOnTheOriginal() throws IOException {
        BufferedImage red = new BufferedImage(8, 8, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < 8; y++) {
            for (int x = 0; x < 8; x++) {
                red.setRGB(x, y, 0xFF0000);
            }
        }
        JsonNode up = ok(client.multipart("/api/upload/image", List.of(), "image", "red.png", png(red), null));
        BufferedImage mask = new BufferedImage(8, 8, BufferedImage.TYPE_INT_ARGB);
        for (int y = 0; y < 8; y++) {
            for (int x = 0; x < 8; x++) {
                mask.setRGB(x, y, x < 4 ? 0x00000000 : 0xFF000000);
            }
        }
        String ref = "{\"filename\":\"" + up.path("name").asText() + "\",\"subfolder\":\"\",\"type\":\"input\"}";
        JsonNode m = ok(client.multipart("/api/upload/mask", List.<String[]>of(new String[] {"original_ref", ref},
                new String[] {"type", "input"}), "image", "clipspace-mask.png", png(mask), null));
        assertEquals("input", m.path("type").asText());
        BufferedImage out = ImageIO.read(base.resolve("input").resolve(m.path("name").asText()).toFile());
        assertEquals(0, out.getRGB(1, 1) >>> 24, "transparent where the mask is");
        assertEquals(255, out.getRGB(6, 1) >>> 24);
        assertEquals(0xFF0000, out.getRGB(6, 1) & 0xFFFFFF, "the original's colour");
        JsonNode files = ok(client.get("/internal/files/input"));
        assertTrue(files.toString().contains(m.path("name").asText()), files.toString());
        String bad = "{\"filename\":\"../../x.png\",\"type\":\"input\"}";
        assertEquals(400, client.multipart("/api/upload/mask", List.<String[]>of(new String[] {"original_ref", bad}),
                "image", "m.png", png(mask), null).status());
    }

    private static byte[] png(BufferedImage img) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ImageIO.write(img, "png", out);
        return out.toByteArray();
    }

    @Test
    @Order(6)
    void jobsPreviewsViewPreviewAndSaveImageWebsocket() throws IOException {
        ServerFixture.Ws ws = client.websocket("jobs-client");
        try {
            ws.next("status", Duration.ofSeconds(10));
            // no previews unless asked (the server runs with --preview-method none)
            String quiet = client.queue(ServerFixture.txt2img(31, 2, 32), "jobs-client");
            List<Object> events = ws.until(quiet, WAIT);
            assertEquals(0, events.stream().filter(o -> o instanceof byte[]).count(), "no preview frames");
            assertTrue(ServerFixture.types(events).contains("progress_state"), ServerFixture.types(events).toString());

            // SaveImageWebsocket: the image as a binary PNG frame (event 1, type 2), and previews when asked
            ObjectNode wsPrompt = ServerFixture.txt2img(32, 2, 32);
            ServerFixture.inputs(wsPrompt, "9", "SaveImageWebsocket");
            ServerFixture.link((ObjectNode) wsPrompt.get("9").get("inputs"), "images", "8", 0);
            String id = client.queue(wsPrompt, "jobs-client", "auto");
            events = ws.until(id, WAIT);
            List<byte[]> frames = new ArrayList<>();
            events.stream().filter(o -> o instanceof byte[]).forEach(o -> frames.add((byte[]) o));
            assertEquals(3, frames.size(), "two previews and the image");
            ByteBuffer last = ByteBuffer.wrap(frames.getLast());
            assertEquals(1, last.getInt());
            assertEquals(2, last.getInt());
            BufferedImage img = ImageIO.read(new ByteArrayInputStream(frames.getLast(), 8, frames.getLast().length - 8));
            assertEquals(32, img.getWidth());
        } finally {
            ws.close();
        }

        JsonNode jobs = ok(client.get("/api/jobs?status=completed,failed,cancelled&limit=64&offset=0"));
        assertEquals(2, jobs.path("jobs").size(), jobs.toString());
        JsonNode job = jobs.path("jobs").get(1); // newest first: the SaveImage one is second
        assertEquals("completed", job.path("status").asText());
        assertTrue(job.path("create_time").asLong() > 0);
        assertTrue(job.path("execution_end_time").asLong() >= job.path("execution_start_time").asLong());
        assertEquals(1, job.path("outputs_count").asInt());
        JsonNode preview = job.path("preview_output");
        assertEquals("9", preview.path("nodeId").asText());
        assertEquals("output", preview.path("type").asText());
        assertEquals("images", preview.path("mediaType").asText());
        JsonNode page = jobs.path("pagination");
        assertEquals(0, page.path("offset").asInt());
        assertEquals(64, page.path("limit").asInt());
        assertEquals(2, page.path("total").asInt());
        assertFalse(page.path("has_more").asBoolean());
        assertEquals(1, ok(client.get("/api/jobs?limit=1")).path("jobs").size());
        assertTrue(ok(client.get("/api/jobs?limit=1")).path("pagination").path("has_more").asBoolean());
        assertEquals(0, ok(client.get("/api/jobs?status=in_progress,pending")).path("jobs").size());
        assertEquals(400, client.get("/api/jobs?status=done").status());
        JsonNode full = ok(client.get("/api/jobs/" + job.path("id").asText()));
        assertTrue(full.path("outputs").has("9"));
        assertTrue(full.path("workflow").path("prompt").has("3"));
        assertEquals(404, client.get("/api/jobs/nope").status());

        String q = "/api/view?filename=" + preview.path("filename").asText() + "&type=output&subfolder=";
        ServerFixture.Response jpeg = client.get(q + "&preview=jpeg;50");
        assertEquals(200, jpeg.status());
        assertEquals("image/jpeg", jpeg.headers().firstValue("content-type").orElse("").split(";")[0]);
        assertEquals(32, ImageIO.read(new ByteArrayInputStream(jpeg.bytes())).getWidth());
        ServerFixture.Response png = client.get(q);
        assertEquals("image/png", png.headers().firstValue("content-type").orElse("").split(";")[0]);
    }

    @Test
    @Order(7)
    void executionErrorNamesTheFailingNode() {
        ServerFixture.Ws ws = client.websocket("error-client");
        try {
            ws.next("status", Duration.ofSeconds(10));
            ObjectNode p = ServerFixture.lora(40, 2, 32, 1.0);
            ((ObjectNode) p.get("10").get("inputs")).put("lora_name", "broken.safetensors");
            String id = client.queue(p, "error-client");
            List<Object> events = ws.until(id, WAIT);
            JsonNode err = null;
            for (Object o : events) {
                if (o instanceof JsonNode j && j.path("type").asText().equals("execution_error")) {
                    err = j.path("data");
                }
            }
            assertNotNull(err, ServerFixture.types(events).toString());
            assertEquals("10", err.path("node_id").asText());
            assertEquals("LoraLoader", err.path("node_type").asText());
            assertFalse(err.path("exception_message").asText().isBlank());
            assertTrue(err.path("traceback").size() > 0 && err.path("traceback").get(0).asText().contains("LoraLoader"));
            JsonNode job = ok(client.get("/api/jobs/" + id));
            assertEquals("failed", job.path("status").asText());
            assertEquals("LoraLoader", job.path("execution_error").path("node_type").asText());
            assertTrue(ok(client.get("/internal/logs")).asText().contains("(LoraLoader) failed"));
        } finally {
            ws.close();
        }
    }

    @Test
    void previewRule() {
        assertFalse(PromptRunner.previewsWanted(null, "none"));
        assertTrue(PromptRunner.previewsWanted(null, "auto"));
        assertTrue(PromptRunner.previewsWanted(JSON.createObjectNode().put("preview_method", "latent2rgb"), "none"));
        assertFalse(PromptRunner.previewsWanted(JSON.createObjectNode().put("preview_method", "none"), "auto"));
        assertTrue(PromptRunner.previewsWanted(JSON.createObjectNode().put("preview_method", "default"), "taesd"));
        assertEquals(StandardCharsets.UTF_8, StandardCharsets.UTF_8);
    }
}
