package jdiffusion.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import javax.imageio.ImageIO;
import jdiffusion.io.DType;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import jdiffusion.workflow.Sd3Nodes;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * Stability's {@code v2beta/stable-image/generate/sd3} on SD3.5 checkpoints: {@code model: sd3.5-medium |
 * sd3.5-large | sd3.5-large-turbo} picks the installed checkpoint of that kind (the tiny golden SD3.5 Medium, and a
 * copy without its MMDiT-X attention named as a Large Turbo), Large Turbo samples with the turbo preset, a kind
 * that is not installed is a 400 in Stability's error JSON; aspect ratios map to Stability's sizes; image-to-image
 * with strength; the image is the one the equivalent ComfyUI workflow gives.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class StabilitySd3Test {
    private static final String PATH = "/v2beta/stable-image/generate/sd3";
    private static final String MEDIUM = "tiny-sd35-fp16.safetensors";
    private static final String TURBO = "tiny-sd35-large-turbo-fp16.safetensors";

    @TempDir
    static Path tmp;

    private JDiffusionServer server;
    private ServerFixture.Client client;
    private ServerConfig config;

    @BeforeAll
    void start() throws IOException {
        // the tiny CLIPs' heads are 8 wide (every real CLIP's are 64): from the text-encoder manifests
        Sd3Nodes.setClipHeads(heads("clip_l"), heads("clip_g"));
        Path base = ServerFixture.baseDir(tmp);
        Path ckpts = base.resolve("models/checkpoints");
        Path tiny = ServerFixture.golden().resolve("models").resolve(MEDIUM);
        Files.copy(tiny, ckpts.resolve(MEDIUM));
        // SD3.5 Large's architecture is Medium's without the MMDiT-X second attention (and its three extra adaLN
        // chunks); Turbo is told by its name
        largeCopy(tiny, ckpts.resolve(TURBO));
        config = ServerFixture.config(base);
        server = JDiffusionServer.start(config);
        client = new ServerFixture.Client(server.port(), null);
    }

    @AfterAll
    void stop() {
        Sd3Nodes.setClipHeads(0, 0);
        if (server != null) {
            server.close();
        }
    }

    private static int heads(String clip) throws IOException {
        Path m = ServerFixture.golden().resolve("sd35").resolve("textenc_sd35_" + clip + ".json");
        return ServerFixture.JSON.readTree(m.toFile()).path("params").path("config").path("num_attention_heads")
                .asInt();
    }

    private static void largeCopy(Path src, Path target) throws IOException {
        try (SafeTensors f = SafeTensors.open(src)) {
            SafeTensorsWriter w = SafeTensorsWriter.to(target).metadata(f.metadata());
            for (String n : f.names()) {
                if (n.contains(".attn2.")) {
                    continue;
                }
                if (n.contains(".x_block.adaLN_modulation.1.") && f.info(n).dims()[0] % 9 == 0) {
                    int[] d = f.info(n).dims();
                    int rows = d[0] / 9 * 6;
                    long[] shape = d.length == 2 ? new long[] {rows, d[1]} : new long[] {rows};
                    float[] all = f.floats(n);
                    w.add(n, DType.F16, shape, java.util.Arrays.copyOf(all, all.length / 9 * 6));
                } else {
                    w.addFrom(f, n, n, DType.F16);
                }
            }
            w.write();
        } catch (jdiffusion.io.ModelFormatException e) {
            throw new IOException(e);
        }
    }

    private static List<String[]> form(String... kv) {
        List<String[]> out = new ArrayList<>();
        for (int i = 0; i < kv.length; i += 2) {
            out.add(new String[] {kv[i], kv[i + 1]});
        }
        return out;
    }

    /** The one prompt the endpoint queued (history cleared before each request). */
    private JsonNode lastPrompt() {
        JsonNode history = client.get("/history").json();
        assertEquals(1, history.size(), history.toString());
        return history.elements().next().path("prompt").get(2);
    }

    private ServerFixture.Response post(List<String[]> fields) {
        assertEquals(200, client.post("/history", "{\"clear\": true}").status());
        return client.multipart(PATH, fields, null, null, null, "image/*");
    }

    private static BufferedImage image(byte[] png) throws IOException {
        return ImageIO.read(new ByteArrayInputStream(png));
    }

    private static int[] pixels(BufferedImage img) {
        return img.getRGB(0, 0, img.getWidth(), img.getHeight(), null, 0, img.getWidth());
    }

    @Test
    void mediumTextToImageRunsTheSd3WorkflowAndGivesItsImage() throws IOException {
        ServerFixture.Response r = post(form("prompt", "a lighthouse at dusk", "negative_prompt", "blurry",
                "model", "sd3.5-medium", "aspect_ratio", "16:9", "seed", "77", "output_format", "png"));
        assertEquals(200, r.status(), r.body());
        assertEquals("77", r.headers().firstValue("seed").orElse(null));
        int[] size = CompatRoutes.aspectSize("16:9", config.apiSize());
        BufferedImage img = image(r.bytes());
        assertEquals(size[0], img.getWidth());
        assertEquals(size[1], img.getHeight());
        assertTrue(size[0] > size[1], "16:9 is landscape");

        JsonNode p = lastPrompt();
        assertEquals(MEDIUM, p.path("4").path("inputs").path("ckpt_name").asText());
        assertEquals("EmptySD3LatentImage", p.path("5").path("class_type").asText());
        assertEquals(size[0], p.path("5").path("inputs").path("width").asInt());
        JsonNode ks = p.path("3").path("inputs");
        assertEquals(config.apiSteps(), ks.path("steps").asInt());
        assertEquals(CompatRoutes.SD3_CFG, ks.path("cfg").asDouble());
        assertEquals("euler", ks.path("sampler_name").asText());
        assertEquals("normal", ks.path("scheduler").asText());
        assertEquals(77, ks.path("seed").asLong());
        assertEquals("blurry", p.path("7").path("inputs").path("text").asText());

        // the same workflow queued by a ComfyUI client gives the same pixels
        ObjectNode same = p.deepCopy();
        ((ObjectNode) same.path("9").path("inputs")).put("filename_prefix", "direct");
        String id = client.queue(same, "test-client");
        JsonNode done = client.waitHistory(id, java.time.Duration.ofMinutes(2));
        JsonNode out = done.path("outputs").path("9").path("images").get(0);
        Path file = server.paths().outputDir().resolve(out.path("filename").asText());
        assertArrayEquals(pixels(img), pixels(ImageIO.read(file.toFile())));

        // same request, same image (seeded)
        ServerFixture.Response again = post(form("prompt", "a lighthouse at dusk", "negative_prompt", "blurry",
                "model", "sd3.5-medium", "aspect_ratio", "16:9", "seed", "77"));
        assertArrayEquals(pixels(img), pixels(image(again.bytes())));
    }

    /**
     * The A1111 and OpenAI endpoints build SD1's graph (EmptyLatentImage, 4 channels) whatever the checkpoint: on an
     * SD3.5 file the sampler takes it as SD3's 16-channel empty latent (ComfyUI's fix_empty_latent_channels), so the
     * image is the one of the same graph with EmptySD3LatentImage.
     */
    @Test
    void a1111AndOpenAiEndpointsRunSd3Checkpoints() throws IOException {
        assertEquals(200, client.post("/history", "{\"clear\": true}").status());
        ObjectNode a1111 = ServerFixture.JSON.createObjectNode();
        a1111.put("prompt", "a lighthouse at dusk").put("negative_prompt", "blurry").put("seed", 31).put("steps", 3)
                .put("cfg_scale", 4.5).put("width", 48).put("height", 32).put("sampler_name", "Euler")
                .put("scheduler", "Simple");
        a1111.putObject("override_settings").put("sd_model_checkpoint", MEDIUM);
        ServerFixture.Response r = client.post("/sdapi/v1/txt2img", a1111.toString());
        assertEquals(200, r.status(), r.body());
        BufferedImage img = image(java.util.Base64.getDecoder().decode(r.json().path("images").get(0).asText()));
        assertEquals(48, img.getWidth());
        assertEquals(32, img.getHeight());
        JsonNode p = lastPrompt();
        assertEquals(MEDIUM, p.path("4").path("inputs").path("ckpt_name").asText());
        assertEquals("EmptyLatentImage", p.path("5").path("class_type").asText());
        assertArrayEquals(pixels(img), pixels(sd3Twin(p)));

        assertEquals(200, client.post("/history", "{\"clear\": true}").status());
        ObjectNode openAi = ServerFixture.JSON.createObjectNode();
        openAi.put("prompt", "a red fox").put("model", MEDIUM).put("size", "32x32").put("response_format", "b64_json");
        r = client.post("/v1/images/generations", openAi.toString());
        assertEquals(200, r.status(), r.body());
        img = image(java.util.Base64.getDecoder().decode(r.json().path("data").get(0).path("b64_json").asText()));
        assertEquals(32, img.getWidth());
        p = lastPrompt();
        assertEquals(MEDIUM, p.path("4").path("inputs").path("ckpt_name").asText());
        assertArrayEquals(pixels(img), pixels(sd3Twin(p)));
    }

    /** The image of a queued prompt run again with EmptySD3LatentImage in place of its empty latent. */
    private BufferedImage sd3Twin(JsonNode prompt) throws IOException {
        ObjectNode same = prompt.deepCopy();
        ((ObjectNode) same.path("5")).put("class_type", "EmptySD3LatentImage");
        ((ObjectNode) same.path("9").path("inputs")).put("filename_prefix", "twin");
        String id = client.queue(same, "test-client");
        JsonNode done = client.waitHistory(id, java.time.Duration.ofMinutes(2));
        JsonNode out = done.path("outputs").path("9").path("images").get(0);
        // A1111's graphs preview (type temp); /view serves either kind
        ServerFixture.Response file = client.get("/view?filename=" + out.path("filename").asText() + "&type="
                + out.path("type").asText() + "&subfolder=" + out.path("subfolder").asText());
        assertEquals(200, file.status(), done.toString());
        return image(file.bytes());
    }

    @Test
    void largeTurboUsesTheTurboPresetAndCfgScaleWins() throws IOException {
        ServerFixture.Response r = post(form("prompt", "a red fox", "model", "sd3.5-large-turbo", "seed", "5"));
        assertEquals(200, r.status(), r.body());
        JsonNode p = lastPrompt();
        assertEquals(TURBO, p.path("4").path("inputs").path("ckpt_name").asText());
        JsonNode ks = p.path("3").path("inputs");
        assertEquals(CompatRoutes.TURBO_STEPS, ks.path("steps").asInt());
        assertEquals(1.0, ks.path("cfg").asDouble());
        assertEquals("euler", ks.path("sampler_name").asText());
        assertEquals("sgm_uniform", ks.path("scheduler").asText());
        assertEquals(32, image(r.bytes()).getWidth(), "1:1 by default");

        r = post(form("prompt", "a red fox", "model", "sd3.5-large-turbo", "seed", "5", "cfg_scale", "2.5"));
        assertEquals(200, r.status(), r.body());
        assertEquals(2.5, lastPrompt().path("3").path("inputs").path("cfg").asDouble());
    }

    @Test
    void theEngineListNamesTheInstalledKinds() {
        JsonNode list = client.get("/v1/engines/list").json();
        assertEquals(2, list.size(), list.toString());
        assertEquals("sd3.5-medium", list.get(0).path("id").asText());
        assertEquals(MEDIUM, list.get(0).path("description").asText());
        assertEquals("sd3.5-large-turbo", list.get(1).path("id").asText());
        assertEquals("SD3.5 Large Turbo", list.get(1).path("name").asText());
        assertEquals(TURBO, list.get(1).path("description").asText());
        assertEquals("PICTURE", list.get(1).path("type").asText());
    }

    @Test
    void aKindThatIsNotInstalledIsAStabilityError() {
        ServerFixture.Response r = client.multipart(PATH, form("prompt", "x", "model", "sd3.5-large"), null, null,
                null, "application/json");
        assertEquals(400, r.status(), r.body());
        JsonNode e = r.json();
        assertEquals("bad_request", e.path("name").asText());
        String msg = e.path("errors").get(0).asText();
        assertTrue(msg.contains("sd3.5-large") && msg.contains("SD3.5 Large checkpoint"), msg);
        assertTrue(msg.contains(MEDIUM + " (sd3.5-medium)") && msg.contains(TURBO + " (sd3.5-large-turbo)"), msg);
        assertTrue(e.path("id").asText().length() >= 16, r.body());

        // an unknown model name is still a checkpoint name, and its error has Stability's shape too
        r = client.multipart(PATH, form("prompt", "x", "model", "sd3.5-flash"), null, null, null, "application/json");
        assertEquals(400, r.status(), r.body());
        assertEquals("bad_request", r.json().path("name").asText());
        assertTrue(r.json().path("errors").get(0).asText().contains("sd3.5-flash"), r.body());
    }

    @Test
    void imageToImageEncodesTheInputAndDenoisesByStrength() throws IOException {
        BufferedImage in = new BufferedImage(40, 24, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < in.getHeight(); y++) {
            for (int x = 0; x < in.getWidth(); x++) {
                in.setRGB(x, y, (x * 6) << 16 | (y * 10) << 8 | 128);
            }
        }
        ByteArrayOutputStream png = new ByteArrayOutputStream();
        ImageIO.write(in, "png", png);
        assertEquals(200, client.post("/history", "{\"clear\": true}").status());
        ServerFixture.Response r = client.multipart(PATH, form("prompt", "a painting", "model", "sd3.5-medium",
                "mode", "image-to-image", "strength", "0.6", "seed", "9", "output_format", "jpeg"), "image", "in.png",
                png.toByteArray(), "application/json");
        assertEquals(200, r.status(), r.body());
        byte[] jpg = java.util.Base64.getDecoder().decode(r.json().path("image").asText());
        BufferedImage out = image(jpg);
        assertEquals(40, out.getWidth());
        assertEquals(24, out.getHeight());
        JsonNode p = lastPrompt();
        assertEquals("VAEEncode", p.path("11").path("class_type").asText());
        assertEquals(0.6, p.path("3").path("inputs").path("denoise").asDouble(), 1e-12);
        assertEquals(MEDIUM, p.path("4").path("inputs").path("ckpt_name").asText());
    }

    @Test
    void aspectRatiosAreStabilitysSizes() {
        Map<String, int[]> expected = Map.of("1:1", new int[] {1024, 1024}, "16:9", new int[] {1344, 768},
                "9:16", new int[] {768, 1344}, "21:9", new int[] {1536, 640}, "9:21", new int[] {640, 1536},
                "3:2", new int[] {1216, 832}, "2:3", new int[] {832, 1216}, "5:4", new int[] {1152, 896},
                "4:5", new int[] {896, 1152});
        assertEquals(expected.keySet(), CompatRoutes.ASPECT_SIZES.keySet());
        expected.forEach((ratio, wh) -> {
            int[] s = CompatRoutes.aspectSize(ratio, 1024);
            assertArrayEquals(wh, s, ratio);
            String[] ab = ratio.split(":");
            double want = Double.parseDouble(ab[0]) / Double.parseDouble(ab[1]);
            assertEquals(want, (double) s[0] / s[1], 0.07 * want, ratio);
            assertTrue(s[0] * s[1] > 0.9e6 && s[0] * s[1] < 1.07e6, ratio + " about one megapixel");
            // another side scales, in multiples of 64 (16 for tiny sizes)
            int[] half = CompatRoutes.aspectSize(ratio, 512);
            assertEquals(0, half[0] % 64);
            assertEquals(0, half[1] % 64);
            assertEquals(s[0] / 2.0, half[0], 32, ratio);
            int[] tiny = CompatRoutes.aspectSize(ratio, 64);
            assertEquals(0, tiny[0] % 16);
            assertEquals(0, tiny[1] % 16);
        });
        ServerFixture.Response bad = client.multipart(PATH, form("prompt", "x", "aspect_ratio", "4:3"), null, null,
                null, "application/json");
        assertEquals(400, bad.status(), bad.body());
        assertTrue(bad.json().path("errors").get(0).asText().contains("16:9 9:16"), bad.body());
    }
}
