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
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import javax.imageio.ImageIO;
import jdiffusion.io.PngReader;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * AUTOMATIC1111's API over real HTTP with the tiny SD1 checkpoint, checking the JSON shapes its clients parse
 * (SillyTavern, Open WebUI, Krita's plugin, sdwebuiapi): options and the model switch, the lists, txt2img with a
 * {@code <lora:..>} tag and CLIP skip giving the same pixels as the equivalent ComfyUI workflow, info / infotexts,
 * save_images / send_images, PNG info of a saved image, progress with a preview while a prompt runs, interrupt, and
 * errors in A1111's shape.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class A1111ApiTest {
    private static final Duration WAIT = Duration.ofMinutes(3);
    private static final String OTHER = "other-sd1.safetensors";

    @TempDir
    static Path tmp;

    private Path base;
    private JDiffusionServer server;
    private ServerFixture.Client client;

    @BeforeAll
    void start() throws IOException {
        base = ServerFixture.baseDir(tmp);
        Files.copy(base.resolve("models/checkpoints").resolve(ServerFixture.SD1),
                base.resolve("models/checkpoints").resolve(OTHER));
        Files.createDirectories(base.resolve("models/embeddings"));
        Files.copy(ServerFixture.golden().resolve("models/embeddings/tinyemb.safetensors"),
                base.resolve("models/embeddings/tinyemb.safetensors"));
        server = JDiffusionServer.start(ServerFixture.config(base));
        client = new ServerFixture.Client(server.port(), null);
    }

    @AfterAll
    void stop() {
        if (server != null) {
            server.close();
        }
    }

    private static String sha256(Path f) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(f)));
    }

    @Test
    @Order(1)
    void modelsOptionsAndTheCheckpointSwitch() throws Exception {
        JsonNode models = ok(client.get("/sdapi/v1/sd-models"));
        assertEquals(2, models.size(), models.toString());
        String sha = sha256(base.resolve("models/checkpoints").resolve(ServerFixture.SD1));
        JsonNode first = models.get(1).path("model_name").asText().equals("tiny-sd1-fp16") ? models.get(1)
                : models.get(0);
        assertEquals("tiny-sd1-fp16", first.path("model_name").asText());
        assertEquals(sha, first.path("sha256").asText());
        assertEquals(sha.substring(0, 10), first.path("hash").asText());
        assertEquals(ServerFixture.SD1 + " [" + sha.substring(0, 10) + "]", first.path("title").asText());
        assertTrue(Path.of(first.path("filename").asText()).isAbsolute());
        assertTrue(first.has("config"));

        JsonNode options = ok(client.get("/sdapi/v1/options"));
        assertTrue(options.path("sd_model_checkpoint").asText().startsWith(OTHER + " ["), options.toString());
        assertEquals("Automatic", options.path("sd_vae").asText());
        assertEquals(1, options.path("CLIP_stop_at_last_layers").asInt());

        // switch by title, as clients do after listing /sd-models
        ObjectNode set = JSON.createObjectNode();
        set.put("sd_model_checkpoint", first.path("title").asText());
        assertEquals("null", ok200(client.post("/sdapi/v1/options", set)).body());
        assertEquals(first.path("title").asText(), ok(client.get("/sdapi/v1/options")).path("sd_model_checkpoint")
                .asText());
        assertEquals(ServerFixture.SD1 + " [" + sha.substring(0, 10) + "]", ok(client.get("/sdapi/v1/options"))
                .path("sd_model_checkpoint").asText());
        assertTrue(Files.readString(base.resolve("jdiffusion-a1111-options.json")).contains(ServerFixture.SD1),
                "options are kept across restarts");

        set.put("sd_model_checkpoint", "no-such-model");
        ServerFixture.Response bad = client.post("/sdapi/v1/options", set);
        assertEquals(400, bad.status(), bad.body());
        assertEquals("HTTPException", bad.json().path("error").asText());
        assertTrue(bad.json().path("detail").asText().contains("no-such-model"), bad.body());

        ObjectNode skip = JSON.createObjectNode();
        skip.put("CLIP_stop_at_last_layers", 40);
        assertEquals(400, client.post("/sdapi/v1/options", skip).status());
        ObjectNode vae = JSON.createObjectNode();
        vae.put("sd_vae", "missing.safetensors");
        assertEquals(400, client.post("/sdapi/v1/options", vae).status());
        assertEquals(200, client.post("/sdapi/v1/refresh-checkpoints", "").status());
    }

    @Test
    @Order(2)
    void lists() {
        JsonNode samplers = ok(client.get("/sdapi/v1/samplers"));
        List<String> names = new ArrayList<>();
        samplers.forEach(s -> {
            names.add(s.path("name").asText());
            assertTrue(s.path("aliases").isArray() && s.path("options").isObject(), s.toString());
        });
        assertTrue(names.containsAll(List.of("Euler a", "Euler", "DPM++ 2M")), names.toString());
        JsonNode schedulers = ok(client.get("/sdapi/v1/schedulers"));
        List<String> labels = new ArrayList<>();
        schedulers.forEach(s -> labels.add(s.path("label").asText()));
        assertTrue(labels.containsAll(List.of("Automatic", "Karras", "Exponential")), labels.toString());
        assertEquals(7.0, find(schedulers, "name", "karras").path("default_rho").asDouble());

        JsonNode upscalers = ok(client.get("/sdapi/v1/upscalers"));
        assertEquals("None", upscalers.get(0).path("name").asText());
        assertTrue(upscalers.get(0).has("scale") && upscalers.get(0).has("model_path"));
        assertEquals("Latent", ok(client.get("/sdapi/v1/latent-upscale-modes")).get(0).path("name").asText());

        JsonNode loras = ok(client.get("/sdapi/v1/loras"));
        assertEquals(1, loras.size());
        assertEquals("tiny-sd1-lora-kohya", loras.get(0).path("name").asText());
        assertEquals("tiny-sd1-lora-kohya", loras.get(0).path("alias").asText());
        assertTrue(loras.get(0).path("path").asText().endsWith(ServerFixture.SD1_LORA));
        assertTrue(loras.get(0).path("metadata").isObject());
        assertEquals(200, client.post("/sdapi/v1/refresh-loras", "").status());

        JsonNode emb = ok(client.get("/sdapi/v1/embeddings"));
        assertTrue(emb.path("loaded").has("tinyemb"), emb.toString());
        assertTrue(emb.path("skipped").isObject());
        assertTrue(emb.path("loaded").path("tinyemb").path("vectors").asInt() >= 1, emb.toString());

        assertTrue(ok(client.get("/sdapi/v1/sd-vae")).isArray());
        JsonNode mem = ok(client.get("/sdapi/v1/memory"));
        assertTrue(mem.path("ram").path("total").asLong() > 0 && mem.path("ram").has("free")
                && mem.path("ram").has("used"), mem.toString());
        assertTrue(mem.path("cuda").has("error"));
        JsonNode flags = ok(client.get("/sdapi/v1/cmd-flags"));
        assertTrue(flags.path("api").asBoolean());
        assertTrue(flags.path("lora_dir").asText().endsWith("loras"));

        JsonNode idle = ok(client.get("/sdapi/v1/progress"));
        assertEquals(0.0, idle.path("progress").asDouble());
        assertTrue(idle.has("eta_relative") && idle.has("current_image") && idle.has("textinfo"));
        for (String k : List.of("skipped", "interrupted", "job", "job_count", "job_timestamp", "job_no",
                "sampling_step", "sampling_steps")) {
            assertTrue(idle.path("state").has(k), k + " in " + idle);
        }
    }

    private static JsonNode find(JsonNode array, String key, String value) {
        for (JsonNode n : array) {
            if (n.path(key).asText().equals(value)) {
                return n;
            }
        }
        throw new AssertionError(value + " not in " + array);
    }

    private ObjectNode request(String prompt, long seed) {
        ObjectNode req = JSON.createObjectNode();
        req.put("prompt", prompt);
        req.put("negative_prompt", "lowres");
        req.put("steps", 2);
        req.put("cfg_scale", 5.0);
        req.put("width", 32);
        req.put("height", 32);
        req.put("seed", seed);
        req.put("sampler_name", "Euler");
        req.put("scheduler", "Normal");
        return req;
    }

    /** The pixels a ComfyUI workflow gives on the same server (through /prompt and /history). */
    private BufferedImage comfy(ObjectNode prompt) throws IOException {
        String id = client.queue(prompt, "a1111-test");
        JsonNode h = client.waitHistory(id, WAIT);
        JsonNode img = h.path("outputs").path("9").path("images").get(0);
        ServerFixture.Response r = client.get("/view?filename=" + img.path("filename").asText() + "&type="
                + img.path("type").asText());
        return ImageIO.read(new ByteArrayInputStream(r.bytes()));
    }

    private static BufferedImage image(String b64) throws IOException {
        return ImageIO.read(new ByteArrayInputStream(Base64.getDecoder().decode(b64)));
    }

    private static int[] pixels(BufferedImage img) {
        return img.getRGB(0, 0, img.getWidth(), img.getHeight(), null, 0, img.getWidth());
    }

    @Test
    @Order(3)
    void txt2imgWithALoraTagEqualsTheLoraWorkflow() throws Exception {
        ServerFixture.Response r = client.post("/sdapi/v1/txt2img",
                request("a photo of a cat wearing a hat <lora:tiny-sd1-lora-kohya:0.5>", 11));
        JsonNode body = ok(r);
        assertEquals(1, body.path("images").size());
        BufferedImage got = image(body.path("images").get(0).asText());
        assertEquals(32, got.getWidth());
        assertArrayEquals(pixels(comfy(ServerFixture.lora(11, 2, 32, 0.5))), pixels(got),
                "<lora:name:0.5> is a LoraLoader at 0.5 for UNet and text encoder");
        BufferedImage plain = comfy(ServerFixture.txt2img(11, 2, 32));
        assertFalse(java.util.Arrays.equals(pixels(plain), pixels(got)), "the LoRA changed the image");

        JsonNode info = JSON.readTree(body.path("info").asText());
        assertEquals(11, info.path("seed").asLong());
        assertEquals(11, info.path("all_seeds").get(0).asLong());
        assertEquals("Euler", info.path("sampler_name").asText());
        assertEquals(32, info.path("width").asInt());
        assertEquals("tiny-sd1-fp16", info.path("sd_model_name").asText());
        assertEquals(sha256(base.resolve("models/checkpoints").resolve(ServerFixture.SD1)).substring(0, 10),
                info.path("sd_model_hash").asText());
        String infotext = info.path("infotexts").get(0).asText();
        assertTrue(infotext.startsWith("a photo of a cat wearing a hat <lora:tiny-sd1-lora-kohya:0.5>\n"
                + "Negative prompt: lowres\nSteps: 2, Sampler: Euler, Schedule type: Normal, CFG scale: 5, Seed: 11,"
                + " Size: 32x32, Model hash: "), infotext);
        assertTrue(infotext.contains("Lora hashes: \"tiny-sd1-lora-kohya: "), infotext);
        assertEquals(11, body.path("parameters").path("seed").asLong());

        // save_images false (A1111's default): nothing new in output/
        long outputs = countOutputs();
        ObjectNode noSend = request("a red fox", 5);
        noSend.put("send_images", false);
        JsonNode quiet = ok(client.post("/sdapi/v1/txt2img", noSend));
        assertEquals(0, quiet.path("images").size());
        assertEquals(outputs, countOutputs());

        // save_images true: saved with A1111's "parameters" chunk, which png-info reads back
        ObjectNode save = request("a red fox", 5);
        save.put("save_images", true);
        JsonNode saved = ok(client.post("/sdapi/v1/txt2img", save));
        assertEquals(outputs + 1, countOutputs());
        String text = JSON.readTree(saved.path("info").asText()).path("infotexts").get(0).asText();
        ObjectNode pi = JSON.createObjectNode();
        pi.put("image", "data:image/png;base64," + saved.path("images").get(0).asText());
        JsonNode png = ok(client.post("/sdapi/v1/png-info", pi));
        assertEquals(text, png.path("info").asText());
        assertEquals("a red fox", png.path("parameters").path("Prompt").asText());
        assertEquals("lowres", png.path("parameters").path("Negative prompt").asText());
        assertEquals("2", png.path("parameters").path("Steps").asText());
        assertEquals("5", png.path("parameters").path("Seed").asText());
        assertEquals("32", png.path("parameters").path("Size-1").asText());
        assertTrue(png.path("items").has("prompt"), "the ComfyUI workflow chunk is an item");
        Path file;
        try (var s = Files.list(base.resolve("output"))) {
            file = s.filter(p -> p.getFileName().toString().startsWith("sdapi")).findFirst().orElseThrow();
        }
        assertTrue(PngReader.text(file).containsKey("parameters"));
    }

    private long countOutputs() throws IOException {
        if (!Files.isDirectory(base.resolve("output"))) {
            return 0;
        }
        try (var s = Files.list(base.resolve("output"))) {
            return s.filter(p -> p.toString().endsWith(".png")).count();
        }
    }

    @Test
    @Order(4)
    void clipSkipOverrideAndCheckpointOverrideAndImg2img() throws Exception {
        ObjectNode req = request("a photo of a cat wearing a hat", 12);
        req.putObject("override_settings").put("CLIP_stop_at_last_layers", 2);
        BufferedImage got = image(ok(client.post("/sdapi/v1/txt2img", req)).path("images").get(0).asText());
        ObjectNode wf = ServerFixture.txt2img(12, 2, 32);
        ObjectNode skip = ServerFixture.inputs(wf, "20", "CLIPSetLastLayer");
        ServerFixture.link(skip, "clip", "4", 1);
        skip.put("stop_at_clip_layer", -2);
        ServerFixture.link((ObjectNode) wf.get("6").get("inputs"), "clip", "20", 0);
        ServerFixture.link((ObjectNode) wf.get("7").get("inputs"), "clip", "20", 0);
        assertArrayEquals(pixels(comfy(wf)), pixels(got), "CLIP skip 2 is CLIPSetLastLayer -2");

        ObjectNode other = request("a red fox", 3);
        other.putObject("override_settings").put("sd_model_checkpoint", "other-sd1");
        JsonNode info = JSON.readTree(ok(client.post("/sdapi/v1/txt2img", other)).path("info").asText());
        assertEquals("other-sd1", info.path("sd_model_name").asText());

        ObjectNode i2i = request("a red fox", -1);
        i2i.put("sampler_name", "DPM++ 2M Karras");
        i2i.put("denoising_strength", 0.5);
        i2i.remove("scheduler");
        ByteArrayOutputStreamHolder png = new ByteArrayOutputStreamHolder(got);
        i2i.putArray("init_images").add(png.base64());
        JsonNode r = ok(client.post("/sdapi/v1/img2img", i2i));
        info = JSON.readTree(r.path("info").asText());
        assertEquals("DPM++ 2M", info.path("sampler_name").asText());
        assertEquals("karras", info.path("scheduler").asText());
        assertTrue(info.path("seed").asLong() >= 0);
        assertEquals(0.5, info.path("denoising_strength").asDouble());
        assertTrue(info.path("infotexts").get(0).asText().contains("Schedule type: Karras"));
        assertEquals(32, image(r.path("images").get(0).asText()).getWidth());
    }

    /** A PNG of an image, as base64. */
    private record ByteArrayOutputStreamHolder(BufferedImage img) {
        String base64() throws IOException {
            var out = new java.io.ByteArrayOutputStream();
            ImageIO.write(img, "png", out);
            return Base64.getEncoder().encodeToString(out.toByteArray());
        }
    }

    /** The checkpoint's VAE as a file of its own, with the decoder's output bias raised (so it is told apart). */
    private void writeBrightVae(Path target) throws IOException {
        try (jdiffusion.io.SafeTensors st = jdiffusion.io.SafeTensors.open(
                base.resolve("models/checkpoints").resolve(ServerFixture.SD1))) {
            jdiffusion.io.SafeTensorsWriter w = jdiffusion.io.SafeTensorsWriter.to(target);
            String prefix = "first_stage_model.";
            for (String n : st.names()) {
                if (!n.startsWith(prefix)) {
                    continue;
                }
                String name = n.substring(prefix.length());
                if (name.equals("decoder.conv_out.bias")) {
                    float[] v = st.floats(n);
                    for (int i = 0; i < v.length; i++) {
                        v[i] += 0.5f;
                    }
                    w.add(name, jdiffusion.io.DType.F32, st.info(n).shape(), v);
                } else {
                    w.addFrom(st, n, name, jdiffusion.io.DType.F32);
                }
            }
            w.write();
        }
    }

    @Test
    @Order(5)
    void sdVaeOptionDecodesWithThatVae() throws Exception {
        Files.createDirectories(base.resolve("models/vae"));
        writeBrightVae(base.resolve("models/vae/bright.safetensors"));
        JsonNode vaes = ok(client.get("/sdapi/v1/sd-vae"));
        assertEquals("bright.safetensors", vaes.get(0).path("model_name").asText());
        ObjectNode set = JSON.createObjectNode();
        set.put("sd_vae", "bright.safetensors");
        ok200(client.post("/sdapi/v1/options", set));
        JsonNode r = ok(client.post("/sdapi/v1/txt2img", request("a photo of a cat wearing a hat", 13)));
        BufferedImage got = image(r.path("images").get(0).asText());
        assertEquals("bright", JSON.readTree(r.path("info").asText()).path("sd_vae_name").asText());
        ObjectNode wf = ServerFixture.txt2img(13, 2, 32);
        ServerFixture.inputs(wf, "20", "VAELoader").put("vae_name", "bright.safetensors");
        ServerFixture.link((ObjectNode) wf.get("8").get("inputs"), "vae", "20", 0);
        assertArrayEquals(pixels(comfy(wf)), pixels(got), "sd_vae is a VAELoader feeding the decoder");
        assertFalse(java.util.Arrays.equals(pixels(comfy(ServerFixture.txt2img(13, 2, 32))), pixels(got)));
        set.put("sd_vae", "Automatic");
        ok200(client.post("/sdapi/v1/options", set));
    }

    @Test
    @Order(6)
    void progressShowsThePreviewWhileRunningAndInterruptStopsIt() throws Exception {
        ObjectNode req = request("a long one", 9);
        req.put("steps", 400);
        CompletableFuture<ServerFixture.Response> running = CompletableFuture.supplyAsync(
                () -> client.post("/sdapi/v1/txt2img", req));
        JsonNode p = null;
        long end = System.nanoTime() + WAIT.toNanos();
        while (System.nanoTime() < end) {
            p = ok(client.get("/sdapi/v1/progress"));
            if (p.path("state").path("sampling_step").asInt() >= 2 && !p.path("current_image").isNull()) {
                break;
            }
            ServerFixture.sleep(50);
        }
        assertNotNull(p);
        assertEquals(400, p.path("state").path("sampling_steps").asInt(), p.toString());
        double progress = p.path("progress").asDouble();
        assertTrue(progress > 0 && progress < 1, p.toString());
        assertTrue(p.path("eta_relative").asDouble() > 0, p.toString());
        assertEquals(1, p.path("state").path("job_count").asInt());
        BufferedImage preview = image(p.path("current_image").asText());
        assertEquals(4, preview.getWidth(), "a latent-sized preview of the 32x32 image");
        assertTrue(p.path("textinfo").asText().contains("of 400"));
        assertNotNull(ok(client.get("/sdapi/v1/progress?skip_current_image=true")));
        assertTrue(ok(client.get("/sdapi/v1/progress?skip_current_image=true")).path("current_image").isNull());

        assertEquals(200, client.post("/sdapi/v1/interrupt", "").status());
        ServerFixture.Response r = running.get();
        assertEquals(500, r.status(), r.body());
        assertTrue(r.json().path("detail").asText().contains("interrupted"), r.body());
        assertEquals(0.0, ok(client.get("/sdapi/v1/progress")).path("progress").asDouble());
    }

    @Test
    @Order(7)
    void badRequestsAnswerInA1111sShape() {
        ObjectNode req = request("x", 1);
        req.put("sampler_name", "No Such Sampler");
        ServerFixture.Response r = client.post("/sdapi/v1/txt2img", req);
        assertEquals(400, r.status());
        assertEquals("HTTPException", r.json().path("error").asText());
        assertTrue(r.json().path("detail").asText().contains("No Such Sampler"));
        req = request("x <lora:missing:1>", 1);
        r = client.post("/sdapi/v1/txt2img", req);
        assertEquals(400, r.status());
        assertTrue(r.json().path("detail").asText().contains("missing"), r.body());
        req = request("x", 1);
        req.put("width", "wide");
        assertEquals(422, client.post("/sdapi/v1/txt2img", req).status());
        req = request("x", 1);
        req.putArray("init_images").add("%%%not base64");
        assertEquals(400, client.post("/sdapi/v1/img2img", req).status());
        r = client.post("/sdapi/v1/img2img", request("x", 1)); // no init_images: FastAPI's validation error
        assertEquals(422, r.status());
        assertEquals("init_images", r.json().path("detail").get(0).path("loc").get(1).asText(), r.body());
        assertEquals(400, client.post("/sdapi/v1/png-info", "{}").status());
        assertEquals(400, client.post("/sdapi/v1/txt2img", "not json").status());
    }

    private static ServerFixture.Response ok200(ServerFixture.Response r) {
        assertEquals(200, r.status(), r.body());
        return r;
    }

    private static JsonNode ok(ServerFixture.Response r) {
        return ok200(r).json();
    }
}
