package jdiffusion.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.net.URI;
import java.net.http.WebSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletionException;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * Safety: the token on every request (header; ?token= only for /ws, /view and the page), no listening beyond
 * loopback without a token, /view and uploads refuse '..', absolute paths and links out of their folders (and write
 * nothing outside), body / image / steps limits, and the queue bound (429).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class SecurityTest {
    private static final String TOKEN = "s3cret-token";
    private static final long MAX_BODY = 200_000;

    @TempDir
    static Path tmp;

    private JDiffusionServer server;
    private ServerFixture.Client client;
    private ServerFixture.Client anonymous;
    private Path base;
    private Path outside;

    @BeforeAll
    void start() throws IOException {
        base = ServerFixture.baseDir(tmp);
        outside = Files.createDirectories(tmp.resolve("outside"));
        Files.writeString(outside.resolve("secret.txt"), "do not serve");
        ServerConfig config = ServerFixture.config(base).withAuthToken(TOKEN)
                .withLimits(1, MAX_BODY, 128 * 128, 300, 4);
        server = JDiffusionServer.start(config);
        client = new ServerFixture.Client(server.port(), TOKEN);
        anonymous = new ServerFixture.Client(server.port(), null);
    }

    @AfterAll
    void stop() {
        if (server != null) {
            server.close();
        }
    }

    @Test
    void everyRequestNeedsTheToken() {
        assertEquals(401, anonymous.get("/queue").status());
        assertEquals(401, anonymous.get("/object_info").status());
        assertEquals(401, anonymous.post("/prompt", "{}").status());
        assertEquals(401, anonymous.get("/").status());
        ServerFixture.Response wrong = anonymous.send(anonymous.request("/queue")
                .header("Authorization", "Bearer nope").GET().build());
        assertEquals(401, wrong.status());
        assertTrue(wrong.json().path("error").asText().contains("token"), wrong.body());
        assertEquals(200, client.get("/queue").status());
        // the query token is for what a browser cannot put a header on, not for the API
        assertEquals(401, anonymous.get("/queue?token=" + TOKEN).status());
        assertEquals(200, anonymous.get("/?token=" + TOKEN).status());
        assertEquals(404, anonymous.get("/view?filename=none.png&token=" + TOKEN).status());
    }

    /** A front end that knows nothing of the token (ComfyUI's) uses the page's cookie; other sites cannot. */
    @Test
    void thePagesCookieOpensTheApiToThatPageOnly() {
        ServerFixture.Response page = anonymous.get("/?token=" + TOKEN);
        assertEquals(200, page.status());
        String cookie = page.headers().firstValue("Set-Cookie").orElseThrow().split(";")[0];
        assertEquals(Security.COOKIE + "=" + TOKEN, cookie);
        assertFalse(anonymous.get("/?token=nope").headers().firstValue("Set-Cookie").isPresent());
        String own = "http://127.0.0.1:" + server.port();
        // the page's own fetches: the browser says same-origin (or, an older one, sends the page's Origin)
        for (String[] from : List.of(new String[] {"Sec-Fetch-Site", "same-origin"},
                new String[] {"Origin", own}, new String[] {"Sec-Fetch-Site", "none"})) {
            for (String path : List.of("/api/object_info", "/queue", "/app.js")) {
                assertEquals(200, anonymous.send(anonymous.request(path).header("Cookie", cookie)
                        .header(from[0], from[1]).GET().build()).status(), path + " with " + from[0]);
            }
            assertEquals(200, anonymous.send(anonymous.request("/api/interrupt").header("Cookie", cookie)
                    .header(from[0], from[1]).POST(java.net.http.HttpRequest.BodyPublishers.noBody()).build())
                    .status());
        }
        // another site, or another port of this host (same-site for the cookie), gets nothing with it
        for (String[] from : List.of(new String[] {"Sec-Fetch-Site", "cross-site"},
                new String[] {"Sec-Fetch-Site", "same-site"}, new String[] {"Origin", "http://127.0.0.1:1"},
                new String[] {"Origin", "https://evil.example"})) {
            assertEquals(401, anonymous.send(anonymous.request("/api/interrupt").header("Cookie", cookie)
                    .header(from[0], from[1]).POST(java.net.http.HttpRequest.BodyPublishers.noBody()).build())
                    .status(), "interrupt from " + from[1]);
            assertEquals(401, anonymous.send(anonymous.request("/").header("Cookie", cookie)
                    .header(from[0], from[1]).GET().build()).status(), "the page from " + from[1]);
        }
        assertEquals(401, anonymous.send(anonymous.request("/queue").header("Cookie", Security.COOKIE + "=nope")
                .header("Sec-Fetch-Site", "same-origin").GET().build()).status(), "a wrong cookie");
    }

    /** Another front end's build files are public (the manifest is fetched without cookies); its page and the API not. */
    @Test
    void aFrontEndsOwnFilesArePublicButNotItsPageNorTheApi() throws IOException {
        Path root = Files.createDirectories(tmp.resolve("front-end/assets"));
        Files.writeString(root.resolveSibling("index.html"), "<!doctype html><title>fe</title>");
        Files.writeString(root.resolve("app-1.js"), "console.log(1)");
        Files.writeString(root.resolve("manifest-1.json"), "{}");
        Files.createDirectories(root.resolve("dir.js"));
        try (JDiffusionServer fe = JDiffusionServer.start(ServerFixture.config(tmp.resolve("fe-base"))
                .withAuthToken(TOKEN), new ServeOptions(root.getParent(), null))) {
            ServerFixture.Client anon = new ServerFixture.Client(fe.port(), null);
            assertEquals(200, anon.get("/assets/app-1.js").status());
            assertEquals("{}", anon.get("/assets/manifest-1.json").body());
            for (String path : List.of("/", "/index.html", "/assets/missing.js", "/assets/dir.js", "/queue",
                    "/api/object_info", "/api/userdata/comfy.settings.json", "/assets/%2e%2e/index.html",
                    "/view?filename=x.png")) {
                assertEquals(401, anon.get(path).status(), path);
            }
            assertEquals(401, anon.post("/assets/app-1.js", "{}").status());
            assertEquals(200, new ServerFixture.Client(fe.port(), TOKEN).get("/").status());
        }
    }

    @Test
    void websocketNeedsTheToken() {
        var http = anonymous.http;
        String url = "ws://127.0.0.1:" + server.port() + "/ws?clientId=x";
        CompletionException e = assertThrows(CompletionException.class,
                () -> http.newWebSocketBuilder().buildAsync(URI.create(url), new WebSocket.Listener() { }).join());
        assertTrue(e.getCause() instanceof java.net.http.WebSocketHandshakeException, e.getCause().toString());
        assertEquals(401, ((java.net.http.WebSocketHandshakeException) e.getCause()).getResponse().statusCode());
        WebSocket ok = http.newWebSocketBuilder().buildAsync(URI.create(url + "&token=" + TOKEN),
                new WebSocket.Listener() { }).join();
        ok.sendClose(WebSocket.NORMAL_CLOSURE, "");
    }

    @Test
    void refusesToListenBeyondLoopbackWithoutAToken() {
        ServerConfig open = ServerFixture.config(tmp.resolve("other")).withListen("0.0.0.0");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> JDiffusionServer.requireTokenBeyondLoopback(open));
        assertTrue(e.getMessage().contains("--auth-token"), e.getMessage());
        JDiffusionServer.requireTokenBeyondLoopback(open.withAuthToken("t")); // allowed with a token
        JDiffusionServer.requireTokenBeyondLoopback(ServerFixture.config(tmp).withListen("::1"));
    }

    @Test
    void viewRefusesPathsOutOfItsFolders() throws IOException {
        Files.createSymbolicLink(base.resolve("output/link.txt"), outside.resolve("secret.txt"));
        Files.createSymbolicLink(base.resolve("output/linkdir"), outside);
        for (String q : List.of("filename=../jdiffusion-queue.sqlite", "filename=secret.txt&subfolder=../../outside",
                "filename=" + outside.resolve("secret.txt"), "filename=link.txt", "filename=secret.txt&subfolder=linkdir",
                "filename=x.png&type=models", "filename=..%2F..%2Foutside%2Fsecret.txt")) {
            ServerFixture.Response r = client.get("/view?" + q);
            assertTrue(r.status() == 400, q + " -> " + r.status() + " " + r.body());
            assertFalse(r.body().contains("do not serve"));
        }
    }

    @Test
    void uploadsRefusePathsOutOfTheirFoldersAndWriteNothingOutside() throws IOException {
        byte[] png = Files.readAllBytes(ServerFixture.golden().resolve("pipe_sd1_img2img_euler.input.png"));
        Set<Path> before = listing(tmp);
        Files.createSymbolicLink(base.resolve("input/escape"), outside);
        for (List<String[]> fields : List.of(List.<String[]>of(new String[] {"subfolder", "../../outside"}),
                List.<String[]>of(new String[] {"subfolder", outside.toString()}),
                List.<String[]>of(new String[] {"subfolder", "escape"}),
                List.<String[]>of(new String[] {"type", "../models"}))) {
            ServerFixture.Response r = client.multipart("/upload/image", fields, "image", "x.png", png, null);
            assertEquals(400, r.status(), fields.getFirst()[1] + ": " + r.body());
        }
        for (String name : List.of("../x.png", "../../outside/x.png", "/tmp/x.png", "a\\..\\..\\x.png")) {
            ServerFixture.Response r = client.multipart("/upload/image", List.of(), "image", name, png, null);
            assertEquals(400, r.status(), name + ": " + r.body());
        }
        ServerFixture.Response notImage = client.multipart("/upload/image", List.of(), "image", "x.png",
                "#!/bin/sh\nrm -rf /".getBytes(), null);
        assertEquals(400, notImage.status(), notImage.body());
        Set<Path> after = listing(tmp);
        after.remove(base.resolve("input/escape"));
        assertEquals(before, after, "nothing written by refused uploads");
        ServerFixture.Response ok = client.multipart("/upload/image", List.<String[]>of(
                new String[] {"subfolder", "mine"}), "image", "x.png", png, null);
        assertEquals(200, ok.status(), ok.body());
        assertTrue(Files.isRegularFile(base.resolve("input/mine/x.png")));
        ServerFixture.Response again = client.multipart("/upload/image", List.<String[]>of(
                new String[] {"subfolder", "mine"}), "image", "x.png", png, null);
        assertEquals("x (1).png", again.json().path("name").asText(), "no overwrite unless asked");
    }

    @Test
    void oversizedBodiesAndImagesAreRefused() {
        String big = "{\"prompt\": {}, \"pad\": \"" + "x".repeat((int) MAX_BODY) + "\"}";
        assertEquals(413, client.post("/prompt", big).status());
        ServerFixture.Response hugeUpload = client.multipart("/upload/image", List.of(), "image", "big.png",
                new byte[(int) MAX_BODY + 10], null);
        assertEquals(413, hugeUpload.status());
        // a 256x256 image is over this server's 128x128 pixel limit
        var img = new java.awt.image.BufferedImage(256, 256, java.awt.image.BufferedImage.TYPE_INT_RGB);
        var out = new java.io.ByteArrayOutputStream();
        try {
            javax.imageio.ImageIO.write(img, "png", out);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
        ServerFixture.Response tooLarge = client.multipart("/upload/image", List.of(), "image", "large.png",
                out.toByteArray(), null);
        assertEquals(413, tooLarge.status(), tooLarge.body());
        assertFalse(Files.exists(base.resolve("input/large.png")));
        ServerFixture.Response size = client.post("/prompt", "{\"prompt\": " + ServerFixture.txt2img(1, 2, 256)
                + "}");
        assertEquals(400, size.status());
        assertTrue(size.json().path("node_errors").has("5"), size.body());
        ServerFixture.Response batch = client.post("/prompt", "{\"prompt\": "
                + ServerFixture.txt2img(1, 2, 32).toString().replace("\"batch_size\":1", "\"batch_size\":64") + "}");
        assertEquals(400, batch.status(), batch.body());
    }

    @Test
    void theQueueIsBounded() {
        ObjectNode slow = ServerFixture.txt2img(3, 300, 32);
        String first = client.queue(slow, "sec");
        ServerFixture.Response second = client.post("/prompt", "{\"prompt\": " + ServerFixture.txt2img(4, 2, 32)
                + "}");
        assertEquals(429, second.status(), second.body());
        assertEquals(200, client.post("/interrupt", "").status());
        // the interrupt may land before the prompt starts: keep asking until it is in the history
        long end = System.nanoTime() + Duration.ofMinutes(3).toNanos();
        while (!client.get("/history/" + first).json().has(first) && System.nanoTime() < end) {
            client.post("/interrupt", "");
            ServerFixture.sleep(200);
        }
        assertTrue(client.get("/history/" + first).json().has(first));
    }

    private static Set<Path> listing(Path root) throws IOException {
        try (Stream<Path> s = Files.walk(root)) {
            return s.filter(p -> !p.getFileName().toString().startsWith("jdiffusion-queue.sqlite"))
                    .collect(Collectors.toSet());
        }
    }
}
