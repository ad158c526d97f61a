package jdiffusion.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * Test helpers: a temporary base dir with the tiny golden checkpoints copied in (copied, not linked: a link out of
 * the models folder is refused by design), HTTP over java.net.http, a websocket client that records every message,
 * and the SD1 workflows in API format.
 */
final class ServerFixture {
    static final ObjectMapper JSON = new ObjectMapper();
    static final String SD1 = "tiny-sd1-fp16.safetensors";
    static final String SD1_LORA = "tiny-sd1-lora-kohya.safetensors";

    private ServerFixture() {
    }

    static Path golden() {
        String env = System.getenv("JDIFFUSION_GOLDEN");
        Path p = env != null && !env.isBlank() ? Path.of(env)
                : Path.of(System.getProperty("jdiffusion.root", System.getProperty("user.dir") + "/.."))
                        .resolve("../shared/golden").normalize();
        assertTrue(Files.isDirectory(p), "golden folder not found: " + p + " (set JDIFFUSION_GOLDEN)");
        return p;
    }

    /** A base dir with models/checkpoints/tiny-sd1 and models/loras/tiny-sd1-lora. */
    static Path baseDir(Path tmp) throws IOException {
        Path base = tmp.resolve("base");
        Files.createDirectories(base.resolve("models/checkpoints"));
        Files.createDirectories(base.resolve("models/loras"));
        Files.copy(golden().resolve("models").resolve(SD1), base.resolve("models/checkpoints").resolve(SD1));
        Files.copy(golden().resolve("models").resolve(SD1_LORA), base.resolve("models/loras").resolve(SD1_LORA));
        return base;
    }

    /** Small limits and tiny sizes for the Stability endpoint, so tests stay fast. */
    static ServerConfig config(Path base) {
        return ServerConfig.defaults(base).withPort(0).withApiDefaults(32, 1);
    }

    // ---- HTTP ----

    record Response(int status, String body, byte[] bytes, java.net.http.HttpHeaders headers) {
        JsonNode json() {
            try {
                return JSON.readTree(body);
            } catch (IOException e) {
                throw new AssertionError("not JSON (" + status + "): " + body, e);
            }
        }
    }

    static final class Client {
        final String base;
        final String token;
        final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

        Client(int port, String token) {
            this.base = "http://127.0.0.1:" + port;
            this.token = token;
        }

        HttpRequest.Builder request(String path) {
            HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path)).timeout(Duration.ofMinutes(3));
            if (token != null) {
                b.header("Authorization", "Bearer " + token);
            }
            return b;
        }

        Response send(HttpRequest r) {
            try {
                HttpResponse<byte[]> resp = http.send(r, HttpResponse.BodyHandlers.ofByteArray());
                return new Response(resp.statusCode(), new String(resp.body(), java.nio.charset.StandardCharsets.UTF_8),
                        resp.body(), resp.headers());
            } catch (IOException e) {
                throw new AssertionError("request " + r.uri() + " failed: " + e, e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError(e);
            }
        }

        Response get(String path) {
            return send(request(path).GET().build());
        }

        Response post(String path, String json) {
            return send(request(path).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(json)).build());
        }

        Response post(String path, JsonNode json) {
            return post(path, json.toString());
        }

        /** multipart/form-data with text fields and at most one file field. */
        Response multipart(String path, List<String[]> fields, String fileField, String fileName, byte[] file,
                String accept) {
            String boundary = "----jdiffusion" + System.nanoTime();
            var out = new java.io.ByteArrayOutputStream();
            try {
                for (String[] f : fields) {
                    out.write(("--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + f[0] + "\"\r\n\r\n"
                            + f[1] + "\r\n").getBytes(java.nio.charset.StandardCharsets.UTF_8));
                }
                if (fileField != null) {
                    out.write(("--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + fileField
                            + "\"; filename=\"" + fileName + "\"\r\nContent-Type: application/octet-stream\r\n\r\n")
                            .getBytes(java.nio.charset.StandardCharsets.UTF_8));
                    out.write(file);
                    out.write("\r\n".getBytes(java.nio.charset.StandardCharsets.UTF_8));
                }
                out.write(("--" + boundary + "--\r\n").getBytes(java.nio.charset.StandardCharsets.UTF_8));
            } catch (IOException e) {
                throw new AssertionError(e);
            }
            HttpRequest.Builder b = request(path).header("Content-Type", "multipart/form-data; boundary=" + boundary)
                    .POST(HttpRequest.BodyPublishers.ofByteArray(out.toByteArray()));
            if (accept != null) {
                b.header("Accept", accept);
            }
            return send(b.build());
        }

        /** POSTs {prompt, client_id} and returns the prompt id (asserting 200). */
        String queue(ObjectNode prompt, String clientId) {
            return queue(prompt, clientId, null);
        }

        /** {@link #queue(ObjectNode, String)} with extra_data.preview_method (null: none given). */
        String queue(ObjectNode prompt, String clientId, String previewMethod) {
            ObjectNode body = JSON.createObjectNode();
            body.set("prompt", prompt);
            body.put("client_id", clientId);
            if (previewMethod != null) {
                body.putObject("extra_data").put("preview_method", previewMethod);
            }
            Response r = post("/prompt", body);
            assertEquals(200, r.status(), r.body());
            return r.json().get("prompt_id").asText();
        }

        /** Polls /history/{id} until the prompt is there. */
        JsonNode waitHistory(String promptId, Duration max) {
            long end = System.nanoTime() + max.toNanos();
            while (System.nanoTime() < end) {
                JsonNode h = get("/history/" + promptId).json();
                if (h.has(promptId)) {
                    return h.get(promptId);
                }
                sleep(100);
            }
            throw new AssertionError("prompt " + promptId + " not in history after " + max);
        }

        Ws websocket(String clientId) {
            return new Ws(this, clientId);
        }
    }

    /** A websocket client recording text messages (as JSON) and binary frames in arrival order. */
    static final class Ws implements WebSocket.Listener {
        final LinkedBlockingQueue<Object> messages = new LinkedBlockingQueue<>();
        final WebSocket socket;
        private final StringBuilder text = new StringBuilder();
        private java.io.ByteArrayOutputStream binary = new java.io.ByteArrayOutputStream();

        Ws(Client c, String clientId) {
            this(c, clientId, "/ws");
        }

        /** A client of the websocket at path (/ws or /api/ws). */
        Ws(Client c, String clientId, String path) {
            WebSocket.Builder b = c.http.newWebSocketBuilder();
            if (c.token != null) {
                b.header("Authorization", "Bearer " + c.token);
            }
            socket = b.buildAsync(URI.create(c.base.replace("http", "ws") + path + "?clientId=" + clientId), this)
                    .join();
        }

        @Override
        public CompletionStage<?> onText(WebSocket ws, CharSequence data, boolean last) {
            text.append(data);
            if (last) {
                try {
                    messages.add(JSON.readTree(text.toString()));
                } catch (IOException e) {
                    messages.add(new AssertionError("bad JSON message " + text));
                }
                text.setLength(0);
            }
            ws.request(1);
            return null;
        }

        @Override
        public CompletionStage<?> onBinary(WebSocket ws, ByteBuffer data, boolean last) {
            byte[] b = new byte[data.remaining()];
            data.get(b);
            binary.writeBytes(b);
            if (last) {
                messages.add(binary.toByteArray());
                binary = new java.io.ByteArrayOutputStream();
            }
            ws.request(1);
            return null;
        }

        /** Messages until {type: executing, data: {node: null, prompt_id}} (included). */
        List<Object> until(String promptId, Duration max) {
            List<Object> got = new ArrayList<>();
            long end = System.nanoTime() + max.toNanos();
            try {
                while (System.nanoTime() < end) {
                    Object m = messages.poll(100, TimeUnit.MILLISECONDS);
                    if (m == null) {
                        continue;
                    }
                    got.add(m);
                    if (m instanceof JsonNode j && j.path("type").asText().equals("executing")
                            && j.path("data").path("node").isNull()
                            && j.path("data").path("prompt_id").asText().equals(promptId)) {
                        return got;
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            throw new AssertionError("prompt " + promptId + " did not finish on /ws in " + max + "; got " + types(got));
        }

        /** Waits for the first text message of a type. */
        JsonNode next(String type, Duration max) {
            long end = System.nanoTime() + max.toNanos();
            try {
                while (System.nanoTime() < end) {
                    Object m = messages.poll(100, TimeUnit.MILLISECONDS);
                    if (m instanceof JsonNode j && j.path("type").asText().equals(type)) {
                        return j;
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            throw new AssertionError("no " + type + " message in " + max);
        }

        void close() {
            socket.sendClose(WebSocket.NORMAL_CLOSURE, "bye");
        }
    }

    static List<String> types(List<Object> messages) {
        List<String> t = new ArrayList<>();
        for (Object m : messages) {
            t.add(m instanceof JsonNode j ? j.path("type").asText() : "<binary>");
        }
        return t;
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    // ---- workflows (API format) ----

    /** The txt2img workflow: 4 checkpoint, 6/7 text, 5 empty latent, 3 KSampler, 8 decode, 9 save. */
    static ObjectNode txt2img(long seed, int steps, int size) {
        ObjectNode p = JSON.createObjectNode();
        inputs(p, "4", "CheckpointLoaderSimple").put("ckpt_name", SD1);
        ObjectNode pos = inputs(p, "6", "CLIPTextEncode");
        pos.put("text", "a photo of a cat wearing a hat");
        link(pos, "clip", "4", 1);
        ObjectNode neg = inputs(p, "7", "CLIPTextEncode");
        neg.put("text", "lowres");
        link(neg, "clip", "4", 1);
        ObjectNode latent = inputs(p, "5", "EmptyLatentImage");
        latent.put("width", size);
        latent.put("height", size);
        latent.put("batch_size", 1);
        ObjectNode ks = inputs(p, "3", "KSampler");
        link(ks, "model", "4", 0);
        ks.put("seed", seed);
        ks.put("steps", steps);
        ks.put("cfg", 5.0);
        ks.put("sampler_name", "euler");
        ks.put("scheduler", "normal");
        link(ks, "positive", "6", 0);
        link(ks, "negative", "7", 0);
        link(ks, "latent_image", "5", 0);
        ks.put("denoise", 1.0);
        ObjectNode dec = inputs(p, "8", "VAEDecode");
        link(dec, "samples", "3", 0);
        link(dec, "vae", "4", 2);
        ObjectNode save = inputs(p, "9", "SaveImage");
        link(save, "images", "8", 0);
        save.put("filename_prefix", "test");
        return p;
    }

    /** txt2img with a LoraLoader (node 10) between the checkpoint and the sampler / text encoders. */
    static ObjectNode lora(long seed, int steps, int size, double strength) {
        ObjectNode p = txt2img(seed, steps, size);
        ObjectNode l = inputs(p, "10", "LoraLoader");
        link(l, "model", "4", 0);
        link(l, "clip", "4", 1);
        l.put("lora_name", SD1_LORA);
        l.put("strength_model", strength);
        l.put("strength_clip", strength);
        link((ObjectNode) p.get("3").get("inputs"), "model", "10", 0);
        link((ObjectNode) p.get("6").get("inputs"), "clip", "10", 1);
        link((ObjectNode) p.get("7").get("inputs"), "clip", "10", 1);
        return p;
    }

    /** img2img: 11 LoadImage(image) -> 12 VAEEncode -> KSampler with denoise. */
    static ObjectNode img2img(String image, long seed, int steps, double denoise) {
        ObjectNode p = txt2img(seed, steps, 64);
        p.remove("5");
        inputs(p, "11", "LoadImage").put("image", image);
        ObjectNode enc = inputs(p, "12", "VAEEncode");
        link(enc, "pixels", "11", 0);
        link(enc, "vae", "4", 2);
        ObjectNode ks = (ObjectNode) p.get("3").get("inputs");
        link(ks, "latent_image", "12", 0);
        ks.put("denoise", denoise);
        return p;
    }

    static ObjectNode inputs(ObjectNode prompt, String id, String classType) {
        ObjectNode n = prompt.putObject(id);
        n.put("class_type", classType);
        return n.putObject("inputs");
    }

    static void link(ObjectNode inputs, String name, String source, int slot) {
        ArrayNode a = inputs.putArray(name);
        a.add(source).add(slot);
    }
}
