package jdiffusion.server;

import static jdiffusion.server.ServerFixture.JSON;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An AUTOMATIC1111 client library from the npm registry, {@code a1111-webui-api} (pinned with its lock file in
 * test resources clients/a1111), driven as its README shows against a server with the tiny SD1 checkpoint (twice,
 * under two names) and a tiny ESRGAN: list the models, samplers and upscalers, switch the model through the options,
 * txt2img (a batch of two), img2img, inpaint with a mask, upscale (extra-single-image), PNG info of its own txt2img
 * image, progress while a long prompt runs, and interrupt. Skipped when node / npm or the registry is not there.
 */
class A1111ClientTest {
    private static final String UPSCALER = "tiny-esrgan-compact-x4-fp16";

    @TempDir
    Path tmp;

    @Test
    void theA1111NodeClientWorks() throws Exception {
        Path client = NpmClients.install("a1111", "a1111-client.cjs");
        Path base = ServerFixture.baseDir(tmp);
        Files.copy(base.resolve("models/checkpoints").resolve(ServerFixture.SD1),
                base.resolve("models/checkpoints/other-sd1.safetensors"));
        Files.createDirectories(base.resolve("models/upscale_models"));
        Files.copy(ServerFixture.golden().resolve("models").resolve(UPSCALER + ".safetensors"),
                base.resolve("models/upscale_models").resolve(UPSCALER + ".safetensors"));
        Path work = Files.createDirectories(tmp.resolve("work"));
        BufferedImage init = new BufferedImage(32, 32, BufferedImage.TYPE_INT_RGB);
        BufferedImage mask = new BufferedImage(32, 32, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < 32; y++) {
            for (int x = 0; x < 32; x++) {
                init.setRGB(x, y, 0x285AC8);
                mask.setRGB(x, y, x >= 16 ? 0xFFFFFF : 0); // A1111: white is repainted
            }
        }
        ImageIO.write(init, "png", work.resolve("init.png").toFile());
        ImageIO.write(mask, "png", work.resolve("mask.png").toFile());

        JsonNode seen;
        try (JDiffusionServer server = JDiffusionServer.start(ServerFixture.config(base))) {
            seen = JSON.readTree(NpmClients.node(client, "a1111-client.cjs", work, 600,
                    "http://127.0.0.1:" + server.port(), UPSCALER, work.resolve("init.png").toString(),
                    work.resolve("mask.png").toString()));
        }

        List<String> names = new ArrayList<>();
        seen.path("models").forEach(m -> names.add(m.path("model_name").asText()));
        assertEquals(List.of("other-sd1", "tiny-sd1-fp16"), names.stream().sorted().toList(), seen.toString());
        for (JsonNode m : seen.path("models")) {
            assertTrue(m.path("hash").asText().matches("[0-9a-f]{10}"), m.toString());
            assertEquals(m.path("model_name").asText() + ".safetensors [" + m.path("hash").asText() + "]",
                    m.path("title").asText());
        }
        List<String> samplers = JSON.convertValue(seen.path("samplers"), List.class);
        assertTrue(samplers.containsAll(List.of("Euler a", "Euler", "DPM++ 2M", "DDIM")), samplers.toString());
        assertTrue(JSON.convertValue(seen.path("upscalers"), List.class).contains(UPSCALER), seen.toString());

        // the model switch (setModel posts sd_model_checkpoint to the options) and the next txt2img uses it
        String switched = seen.path("switchedTo").asText();
        assertNotEquals(seen.path("before").asText(), seen.path("after").asText());
        assertTrue(seen.path("after").asText().startsWith(switched + ".safetensors"), seen.toString());

        JsonNode t2i = seen.path("txt2img");
        assertEquals("[[32,48],[32,48]]", t2i.path("sizes").toString());
        JsonNode info = t2i.path("info");
        assertEquals(switched, info.path("sd_model_name").asText());
        assertEquals(1234, info.path("seed").asLong());
        assertEquals("a lighthouse at dusk", info.path("prompt").asText());
        assertEquals("blurry", info.path("negative_prompt").asText());
        assertEquals(2, info.path("infotexts").size());
        String infotext = info.path("infotexts").get(0).asText();
        assertTrue(infotext.startsWith("a lighthouse at dusk\nNegative prompt: blurry\nSteps: 2, Sampler: Euler a"),
                infotext);
        assertTrue(infotext.contains("Seed: 1234") && infotext.contains("Size: 32x48"), infotext);

        assertEquals("[[32,32]]", seen.path("img2img").path("sizes").toString());
        assertEquals(7, seen.path("img2img").path("seed").asLong());
        BufferedImage i2i = ImageIO.read(work.resolve("img2img.png").toFile());
        assertTrue(meanDiff(i2i, init, 0, 32) > 10, "img2img at 0.5 changed the picture");

        // inpaint: the unmasked left half stays the init image (A1111 pastes it back; the blur reaches 4 px)
        assertEquals("[[32,32]]", seen.path("inpaint").path("sizes").toString());
        BufferedImage inpainted = ImageIO.read(work.resolve("inpaint.png").toFile());
        assertTrue(meanDiff(inpainted, init, 0, 8) < 3, "kept: " + meanDiff(inpainted, init, 0, 8));
        assertTrue(meanDiff(inpainted, init, 24, 32) > 10, "repainted: " + meanDiff(inpainted, init, 24, 32));

        assertEquals("[64,64]", seen.path("upscale").path("size").toString(), "upscaling_resize 2 of a 32x32");

        // PNG info of the PNG the client got from txt2img (sharp keeps its text chunk)
        assertEquals(infotext, seen.path("pngInfo").path("info").asText());
        assertEquals("1234", seen.path("pngInfo").path("parameters").path("Seed").asText());
        assertEquals("Euler a", seen.path("pngInfo").path("parameters").path("Sampler").asText());

        assertEquals(0.0, seen.path("idle").path("progress").asDouble());
        assertEquals(0, seen.path("idle").path("state").path("job_count").asInt());
        JsonNode running = seen.path("running");
        assertTrue(running.isObject(), "progress never moved: " + seen);
        assertTrue(running.path("progress").asDouble() > 0 && running.path("progress").asDouble() < 1, running
                .toString());
        assertTrue(running.path("eta_relative").asDouble() > 0, running.toString());
        assertEquals(400, running.path("state").path("sampling_steps").asInt());
        assertEquals(1, running.path("state").path("job_count").asInt());
        assertTrue(running.path("has_image").asBoolean(), "progress carries the live preview");
        assertEquals(200, seen.path("interruptStatus").asInt());
        assertEquals(500, seen.path("long").path("status").asInt(), seen.path("long").toString());
        assertTrue(seen.path("long").path("detail").path("detail").asText().contains("interrupted"),
                seen.path("long").toString());
        assertEquals(0.0, seen.path("afterInterrupt").asDouble());
    }

    /** Mean absolute RGB difference over the columns [x0, x1). */
    private static double meanDiff(BufferedImage a, BufferedImage b, int x0, int x1) throws IOException {
        double sum = 0;
        int n = 0;
        for (int y = 0; y < a.getHeight(); y++) {
            for (int x = x0; x < x1; x++) {
                int p = a.getRGB(x, y);
                int q = b.getRGB(x, y);
                for (int s = 0; s <= 16; s += 8) {
                    sum += Math.abs(((p >> s) & 0xFF) - ((q >> s) & 0xFF));
                    n++;
                }
            }
        }
        return sum / n;
    }
}
