package jdiffusion.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import jdiffusion.io.DType;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 16 on the server: the body limit on bytes actually read (1), malformed multipart and bad upload names (5,
 * 14), one runner per queue (7), strict A1111 fields (9), the durable record of a deliberate stop (12) and a
 * non-finite model output named by stage through the APIs (6).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class HardeningServerTest {
    private static final Duration WAIT = Duration.ofMinutes(3);
    private static final String POISONED = "poisoned-unet.safetensors";

    @TempDir
    static Path tmp;
    Path base;
    JDiffusionServer server;
    ServerFixture.Client c;
    long limit;

    @BeforeAll
    void start() throws Exception {
        base = ServerFixture.baseDir(tmp);
        try (SafeTensors src = SafeTensors.open(base.resolve("models/checkpoints").resolve(ServerFixture.SD1))) {
            SafeTensorsWriter w = SafeTensorsWriter.to(base.resolve("models/checkpoints").resolve(POISONED))
                    .metadata(src.metadata());
            for (String n : src.names()) {
                if (n.equals("model.diffusion_model.out.2.bias")) {
                    float[] v = new float[(int) src.info(n).numel()];
                    Arrays.fill(v, Float.NaN);
                    w.add(n, DType.F16, src.info(n).shape(), v);
                } else {
                    w.addFrom(src, n, n, DType.F16);
                }
            }
            w.write();
        }
        ServerConfig config = ServerFixture.config(base);
        limit = 1L << 20;
        config = config.withLimits(config.maxQueue(), limit, config.maxPixels(), config.maxSteps(),
                config.maxBatch());
        server = JDiffusionServer.start(config);
        c = new ServerFixture.Client(server.port(), null);
    }

    @AfterAll
    void stop() {
        server.close();
    }

    /** Raw HTTP: the request head, then body bytes written on another thread (ignoring a closed connection). */
    private String raw(String head, byte[][] chunks) throws Exception {
        try (Socket s = new Socket("127.0.0.1", server.port())) {
            s.setSoTimeout(20_000);
            OutputStream out = s.getOutputStream();
            out.write(head.getBytes(StandardCharsets.ISO_8859_1));
            out.flush();
            Thread writer = Thread.ofPlatform().daemon().start(() -> {
                try {
                    for (byte[] chunk : chunks) {
                        out.write(chunk);
                    }
                    out.flush();
                } catch (IOException closed) {
                    // the server stopped reading: expected past the limit
                }
            });
            InputStream in = s.getInputStream();
            ByteArrayOutputStream got = new ByteArrayOutputStream();
            byte[] buf = new byte[8192];
            try {
                for (int n; (n = in.read(buf)) > 0; ) {
                    got.write(buf, 0, n);
                    if (got.toString(StandardCharsets.ISO_8859_1).contains("}")) {
                        break;
                    }
                }
            } catch (IOException reset) {
                // a reset after the answer was read
            }
            writer.join(20_000);
            return got.toString(StandardCharsets.ISO_8859_1);
        }
    }

    private static byte[][] chunked(long total) {
        int piece = 64 << 10;
        int n = (int) ((total + piece - 1) / piece);
        byte[][] chunks = new byte[n + 1][];
        byte[] data = new byte[piece];
        Arrays.fill(data, (byte) ' ');
        byte[] framed = new byte[piece + 16];
        String hex = Integer.toHexString(piece) + "\r\n";
        System.arraycopy(hex.getBytes(StandardCharsets.ISO_8859_1), 0, framed, 0, hex.length());
        System.arraycopy(data, 0, framed, hex.length(), piece);
        framed[hex.length() + piece] = '\r';
        framed[hex.length() + piece + 1] = '\n';
        byte[] one = Arrays.copyOf(framed, hex.length() + piece + 2);
        for (int i = 0; i < n; i++) {
            chunks[i] = one;
        }
        chunks[n] = "0\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1);
        return chunks;
    }

    @Test
    void chunkedBodyOverTheLimitIs413OnEveryRoute() throws Exception {
        for (String path : List.of("/prompt", "/api/prompt", "/sdapi/v1/txt2img", "/queue", "/upload/image",
                "/v2beta/stable-image/generate/sd3")) {
            String type = path.contains("upload") || path.contains("v2beta")
                    ? "multipart/form-data; boundary=XYZ" : "application/json";
            String answer = assertTimeoutPreemptively(Duration.ofSeconds(60), () -> raw("POST " + path
                    + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + type
                    + "\r\nTransfer-Encoding: chunked\r\n\r\n", chunked(limit * 3)));
            assertTrue(answer.startsWith("HTTP/1.1 413"), path + ": " + answer);
        }
        // a small chunked body is still read
        String ok = raw("POST /interrupt HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                + "Connection: close\r\n\r\n", new byte[][] {"2\r\n{}\r\n0\r\n\r\n".getBytes()});
        assertTrue(ok.startsWith("HTTP/1.1 200"), ok);
    }

    @Test
    void hugeContentLengthIs413AtOnce() throws Exception {
        for (String length : List.of("99999999999999", Long.toString(limit + 1))) {
            String answer = assertTimeoutPreemptively(Duration.ofSeconds(20), () -> raw("POST /prompt HTTP/1.1\r\n"
                    + "Host: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " + length + "\r\n\r\n",
                    new byte[][] {"{\"prompt\":".getBytes()}));
            assertTrue(answer.startsWith("HTTP/1.1 413"), answer);
            assertTrue(answer.contains("over this server's limit"), answer);
        }
    }

    @Test
    void malformedMultipartIs400() {
        for (String path : List.of("/upload/image", "/v2beta/stable-image/generate/sd3")) {
            ServerFixture.Response r = c.send(c.request(path).header("Content-Type",
                    "multipart/form-data; boundary=XYZ").POST(java.net.http.HttpRequest.BodyPublishers.ofString(
                    "this is not multipart at all")).build());
            assertEquals(400, r.status(), path + ": " + r.body());
            assertTrue(r.json().path("error").asText().contains("multipart"), r.body());
        }
        byte[] png = pngBytes();
        for (String name : List.of("a\u0000b.png", ".", "..", ".png")) {
            ServerFixture.Response r = c.multipart("/upload/image", List.of(), "image", name, png, null);
            assertEquals(400, r.status(), name + ": " + r.body());
            String error = r.json().path("error").asText();
            assertTrue(error.contains("file name") || error.contains("malformed multipart body: Illegal character"),
                    r.body());
        }
        assertTrue(!Files.exists(base.resolve("input/.png")) && !Files.exists(base.resolve("input/..png")));
        ServerFixture.Response good = c.multipart("/upload/image", List.of(), "image", "fine.png", png, null);
        assertEquals(200, good.status(), good.body());
    }

    private static byte[] pngBytes() {
        try {
            var img = new java.awt.image.BufferedImage(8, 8, java.awt.image.BufferedImage.TYPE_INT_RGB);
            var out = new ByteArrayOutputStream();
            javax.imageio.ImageIO.write(img, "png", out);
            return out.toByteArray();
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void secondServerOnTheSameBaseDirIsRefused() {
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> JDiffusionServer.start(ServerFixture.config(base)));
        assertTrue(e.getMessage().contains("another jdiffusion server is already running"), e.getMessage());
        // the first one still serves
        assertEquals(200, c.get("/queue").status());
    }

    @Test
    void a1111RefusesBadTypesAndRanges() {
        ServerFixture.Response r = c.post("/sdapi/v1/txt2img", "{\"prompt\":{\"a\":1},\"width\":\"abc\",\"steps\":[1]}");
        assertEquals(422, r.status(), r.body());
        JsonNode j = r.json();
        assertEquals("RequestValidationError", j.path("error").asText());
        assertEquals(3, j.path("detail").size(), r.body());
        assertEquals("abc", j.path("body").path("width").asText());
        assertTrue(j.path("errors").asText().contains("prompt: str type expected"), r.body());
        for (String body : List.of("{\"width\":4294967360}", "{\"steps\":4294967297}", "{\"height\":64.5}",
                "{\"cfg_scale\":\"7\"}", "{\"seed\":18446744073709551616}", "{\"batch_size\":0}",
                "{\"denoising_strength\":2}", "{\"override_settings\":[]}", "{\"sampler_name\":5}")) {
            ServerFixture.Response bad = c.post("/sdapi/v1/txt2img", body);
            assertEquals(422, bad.status(), body + " -> " + bad.body());
        }
        ServerFixture.Response img = c.post("/sdapi/v1/img2img", "{\"init_images\":[1]}");
        assertEquals(422, img.status(), img.body());
        assertEquals(0, c.get("/queue").json().path("queue_pending").size(), "nothing was queued");
    }

    @Test
    void nonFiniteModelOutputNamesTheStageThroughTheApis() {
        ObjectNode body = JSON_NODE("{\"prompt\":\"a cat\",\"width\":32,\"height\":32,\"steps\":2,"
                + "\"override_settings\":{\"sd_model_checkpoint\":\"" + POISONED + "\"}}");
        ServerFixture.Response r = c.post("/sdapi/v1/txt2img", body);
        assertEquals(500, r.status(), r.body());
        assertTrue(r.body().contains("UNet at sampling step 1"), r.body());
        ObjectNode prompt = ServerFixture.txt2img(1, 2, 32);
        prompt.with("4").with("inputs").put("ckpt_name", POISONED);
        String id = c.queue(prompt, "x");
        JsonNode h = c.waitHistory(id, WAIT);
        assertEquals("error", h.path("status").path("status_str").asText());
        assertTrue(h.path("status").path("messages").toString().contains("UNet at sampling step 1"), h.toString());
    }

    private static ObjectNode JSON_NODE(String s) {
        try {
            return (ObjectNode) ServerFixture.JSON.readTree(s);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void aDeliberatelyStoppedPromptIsNotRunAgain() throws Exception {
        Path db = tmp.resolve("store.sqlite");
        try (PromptStore s = PromptStore.open(db)) {
            s.enqueue("stopped", ServerFixture.JSON.createObjectNode(), ServerFixture.JSON.createObjectNode(),
                    ServerFixture.JSON.createArrayNode(), null, false);
            s.enqueue("crashed", ServerFixture.JSON.createObjectNode(), ServerFixture.JSON.createObjectNode(),
                    ServerFixture.JSON.createArrayNode(), null, false);
            assertEquals("stopped", s.takeNext().promptId());
            s.markStopped("stopped", "interrupted");
            // a second runner takes "crashed" as well, in this test only (a real store runs one at a time)
            assertEquals("crashed", s.takeNext().promptId());
        }
        try (PromptStore s = PromptStore.open(db)) {
            assertEquals(List.of("crashed"), s.recover(), "only the crashed prompt runs again");
            PromptStore.Entry e = s.get("stopped");
            assertEquals("done", e.state());
            assertTrue(e.status().path("messages").toString().contains("execution_interrupted"), e.toString());
        }
    }
}
