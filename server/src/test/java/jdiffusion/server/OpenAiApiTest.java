package jdiffusion.server;

import static jdiffusion.server.ServerFixture.JSON;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.TimeUnit;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * OpenAI's image API over real HTTP with the tiny SD1 checkpoint (server with a token, which OpenAI clients send as
 * their API key): generations (b64_json and url, n, size, ignored quality / style), edits (multipart image + mask),
 * models, errors in OpenAI's shape; and the official {@code openai} npm client driving it, when node and npm are
 * there (skipped with a message otherwise).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class OpenAiApiTest {
    private static final String KEY = "sk-jdiffusion-test";
    /** The official client, pinned (6.x runs on node 18+; 7.x needs node 22). */
    private static final String OPENAI_NPM = "openai@6.30.1";

    @TempDir
    static Path tmp;

    private JDiffusionServer server;
    private ServerFixture.Client client;

    @BeforeAll
    void start() throws IOException {
        Path base = ServerFixture.baseDir(tmp);
        server = JDiffusionServer.start(ServerFixture.config(base).withAuthToken(KEY));
        client = new ServerFixture.Client(server.port(), KEY);
    }

    @AfterAll
    void stop() {
        if (server != null) {
            server.close();
        }
    }

    @Test
    void modelsListsTheCheckpoints() {
        ServerFixture.Response r = client.get("/v1/models");
        assertEquals(200, r.status(), r.body());
        assertEquals("list", r.json().path("object").asText());
        JsonNode m = r.json().path("data").get(0);
        assertEquals(ServerFixture.SD1, m.path("id").asText());
        assertEquals("model", m.path("object").asText());
        assertTrue(m.path("created").asLong() > 0);
        assertEquals(200, client.get("/v1/models/tiny-sd1-fp16").status());
        ServerFixture.Response missing = client.get("/v1/models/dall-e-3");
        assertEquals(404, missing.status());
        assertEquals("model_not_found", missing.json().path("error").path("code").asText());
        assertEquals(401, new ServerFixture.Client(server.port(), null).get("/v1/models").status());
    }

    @Test
    void generationsReturnB64OrAViewUrl() throws IOException {
        ObjectNode req = JSON.createObjectNode();
        req.put("model", ServerFixture.SD1);
        req.put("prompt", "a lighthouse");
        req.put("n", 2);
        req.put("size", "32x48");
        req.put("quality", "hd");
        req.put("style", "natural");
        ServerFixture.Response r = client.post("/v1/images/generations", req);
        assertEquals(200, r.status(), r.body());
        assertTrue(Math.abs(r.json().path("created").asLong() - System.currentTimeMillis() / 1000) < 600);
        JsonNode data = r.json().path("data");
        assertEquals(2, data.size());
        BufferedImage img = ImageIO.read(new ByteArrayInputStream(Base64.getDecoder().decode(
                data.get(0).path("b64_json").asText())));
        assertEquals(32, img.getWidth());
        assertEquals(48, img.getHeight());
        assertEquals("a lighthouse", data.get(0).path("revised_prompt").asText());

        req.put("response_format", "url");
        req.put("n", 1);
        r = client.post("/v1/images/generations", req);
        assertEquals(200, r.status(), r.body());
        String url = r.json().path("data").get(0).path("url").asText();
        assertTrue(url.startsWith("http://127.0.0.1:" + server.port() + "/view?filename="), url);
        ServerFixture.Response view = client.get(url.substring(url.indexOf("/view")));
        assertEquals(200, view.status());
        assertEquals(48, ImageIO.read(new ByteArrayInputStream(view.bytes())).getHeight());
    }

    @Test
    void editsTakeAMultipartImageAndMask() throws IOException {
        byte[] image = png(new BufferedImage(32, 32, BufferedImage.TYPE_INT_RGB));
        BufferedImage maskImg = new BufferedImage(32, 32, BufferedImage.TYPE_INT_ARGB);
        for (int y = 0; y < 32; y++) {
            for (int x = 0; x < 32; x++) {
                maskImg.setRGB(x, y, x < 16 ? 0x00000000 : 0xFF000000); // left half transparent: repaint it
            }
        }
        ServerFixture.Response r = multipart(List.<String[]>of(new String[] {"prompt", "a red door"}),
                List.of(new Object[] {"image", "image.png", image}, new Object[] {"mask", "mask.png", png(maskImg)}));
        assertEquals(200, r.status(), r.body());
        BufferedImage out = ImageIO.read(new ByteArrayInputStream(Base64.getDecoder().decode(
                r.json().path("data").get(0).path("b64_json").asText())));
        assertEquals(32, out.getWidth(), "the edit keeps the image's size");
        assertKeptAndRepainted(out, 0x000000);
        assertEquals(jdiffusion.workflow.Nodes.get("SetLatentNoiseMask") == null,
                r.headers().firstValue("X-JDiffusion-Mask").isPresent(),
                "the mask is applied by the inpainting node when the engine has it, and said to be ignored otherwise");

        ServerFixture.Response noImage = multipart(List.<String[]>of(new String[] {"prompt", "x"}), List.of());
        assertEquals(400, noImage.status());
        assertEquals("image", noImage.json().path("error").path("param").asText());
        ServerFixture.Response badMask = multipart(List.<String[]>of(new String[] {"prompt", "x"}),
                List.of(new Object[] {"image", "image.png", image},
                        new Object[] {"mask", "mask.png", png(new BufferedImage(8, 8, BufferedImage.TYPE_INT_ARGB))}));
        assertEquals(400, badMask.status());
        assertEquals("mask", badMask.json().path("error").path("param").asText());
        ServerFixture.Response notImage = multipart(List.<String[]>of(new String[] {"prompt", "x"}),
                List.<Object[]>of(new Object[] {"image", "image.png", "hello".getBytes(StandardCharsets.UTF_8)}));
        assertEquals(400, notImage.status());
        assertEquals("invalid_image", notImage.json().path("error").path("code").asText());
    }

    @Test
    void errorsAreOpenAisShape() {
        for (String[] c : List.of(new String[] {"{\"prompt\":\"x\",\"size\":\"big\"}", "size"},
                new String[] {"{\"prompt\":\"\"}", "prompt"}, new String[] {"{\"prompt\":\"x\",\"n\":0}", "n"},
                new String[] {"{\"prompt\":\"x\",\"n\":\"two\"}", "n"},
                new String[] {"{\"prompt\":\"x\",\"response_format\":\"jpeg\"}", "response_format"},
                new String[] {"{\"prompt\":\"x\",\"size\":\"33x33\"}", "size"})) {
            ServerFixture.Response r = client.post("/v1/images/generations", c[0]);
            assertEquals(400, r.status(), c[0] + " -> " + r.body());
            JsonNode e = r.json().path("error");
            assertEquals("invalid_request_error", e.path("type").asText(), r.body());
            assertEquals(c[1], e.path("param").asText(), r.body());
            assertFalse(e.path("message").asText().isBlank());
            assertTrue(e.has("code"));
        }
        ServerFixture.Response notJson = client.post("/v1/images/generations", "{nope");
        assertEquals(400, notJson.status());
        assertTrue(notJson.json().path("error").isObject());
    }

    /** The official npm client, as its README shows: models.list, images.generate, images.edit, an error. */
    @Test
    void theOfficialOpenAiNodeClientWorks() throws Exception {
        Path dir = Path.of("target/openai-node").toAbsolutePath();
        Assumptions.assumeTrue(runs("node", "--version"), "node is not installed: skipping the openai npm client");
        Files.createDirectories(dir);
        if (!Files.isDirectory(dir.resolve("node_modules/openai"))) {
            Assumptions.assumeTrue(runs("npm", "--version"), "npm is not installed: skipping the openai npm client");
            Files.writeString(dir.resolve("package.json"), "{\"name\":\"jdiffusion-openai-test\",\"private\":true}");
            Process p = new ProcessBuilder("npm", "install", "--no-audit", "--no-fund", "--silent", OPENAI_NPM)
                    .directory(dir.toFile()).redirectErrorStream(true).start();
            String log = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            boolean done = p.waitFor(180, TimeUnit.SECONDS);
            Assumptions.assumeTrue(done && p.exitValue() == 0 && Files.isDirectory(dir.resolve("node_modules/openai")),
                    "npm could not install " + OPENAI_NPM + " (offline?): skipping the client test. " + log);
        }
        Path script = dir.resolve("openai-client.mjs");
        try (var in = getClass().getResourceAsStream("/clients/openai-client.mjs")) {
            Files.copy(in, script, StandardCopyOption.REPLACE_EXISTING);
        }
        Path image = tmp.resolve("edit-image.png");
        Files.write(image, png(new BufferedImage(32, 32, BufferedImage.TYPE_INT_RGB)));
        BufferedImage maskImg = new BufferedImage(32, 32, BufferedImage.TYPE_INT_ARGB);
        for (int y = 0; y < 32; y++) {
            for (int x = 16; x < 32; x++) {
                maskImg.setRGB(x, y, 0xFF000000); // the right half opaque: kept
            }
        }
        Path mask = tmp.resolve("edit-mask.png");
        Files.write(mask, png(maskImg));
        Process p = new ProcessBuilder("node", script.toString(), "http://127.0.0.1:" + server.port() + "/v1", KEY,
                ServerFixture.SD1, image.toString(), mask.toString()).directory(dir.toFile()).start();
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(300, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), "node client failed: " + err + out);
        JsonNode seen = JSON.readTree(out.strip().lines().reduce((a, b) -> b).orElse("{}"));
        assertEquals(List.of(ServerFixture.SD1), JSON.convertValue(seen.path("models"), List.class));
        assertEquals(2, seen.path("generated").size());
        assertTrue(seen.path("generated").get(0).asInt() > 100);
        assertEquals("a lighthouse at dusk", seen.path("revised").asText());
        assertTrue(seen.path("url").asText().contains("/view?filename="), seen.toString());
        BufferedImage edited = ImageIO.read(new ByteArrayInputStream(Base64.getDecoder().decode(
                seen.path("edited").asText())));
        assertEquals(32, edited.getWidth());
        assertKeptAndRepainted(edited, 0x000000);
        assertEquals(ServerFixture.SD1, seen.path("retrieved").asText());
        assertEquals(400, seen.path("error").path("status").asInt(), seen.toString());
        assertEquals("invalid_request_error", seen.path("error").path("type").asText());
        assertEquals("size", seen.path("error").path("param").asText());
    }

    /** The opaque right half of the mask kept the image's colour exactly, the transparent left half was redrawn. */
    private static void assertKeptAndRepainted(BufferedImage out, int imageRgb) {
        double kept = 0;
        double redrawn = 0;
        for (int y = 0; y < 32; y++) {
            for (int x = 0; x < 16; x++) {
                for (int s = 0; s <= 16; s += 8) {
                    kept += Math.abs(((out.getRGB(x + 16, y) >> s) & 255) - ((imageRgb >> s) & 255));
                    redrawn += Math.abs(((out.getRGB(x, y) >> s) & 255) - ((imageRgb >> s) & 255));
                }
            }
        }
        assertEquals(0.0, kept, "the opaque part of the mask is the image, untouched");
        assertTrue(redrawn / (32 * 16 * 3) > 5, "the transparent part is redrawn: " + redrawn / (32 * 16 * 3));
    }

    private static boolean runs(String... cmd) {
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            p.getInputStream().readAllBytes();
            return p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    private static byte[] png(BufferedImage img) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ImageIO.write(img, "png", out);
        return out.toByteArray();
    }

    /** multipart/form-data with text fields and several files ({name, filename, bytes}). */
    private ServerFixture.Response multipart(List<String[]> fields, List<Object[]> files) throws IOException {
        String boundary = "----oa" + System.nanoTime();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (String[] f : fields) {
            out.write(("--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + f[0] + "\"\r\n\r\n" + f[1]
                    + "\r\n").getBytes(StandardCharsets.UTF_8));
        }
        for (Object[] f : files) {
            out.write(("--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + f[0] + "\"; filename=\""
                    + f[1] + "\"\r\nContent-Type: image/png\r\n\r\n").getBytes(StandardCharsets.UTF_8));
            out.write((byte[]) f[2]);
            out.write("\r\n".getBytes(StandardCharsets.UTF_8));
        }
        out.write(("--" + boundary + "--\r\n").getBytes(StandardCharsets.UTF_8));
        return client.send(client.request("/v1/images/edits")
                .header("Content-Type", "multipart/form-data; boundary=" + boundary)
                .POST(java.net.http.HttpRequest.BodyPublishers.ofByteArray(out.toByteArray())).build());
    }
}
