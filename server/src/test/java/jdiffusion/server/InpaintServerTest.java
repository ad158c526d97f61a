package jdiffusion.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * AUTOMATIC1111's img2img with a mask (the unmasked pixels come back exactly as sent, the masked area is repainted)
 * and ComfyUI's /upload/mask (the mask's alpha merged into the referenced image).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class InpaintServerTest {
    @TempDir
    static Path tmp;

    private JDiffusionServer server;
    private ServerFixture.Client client;

    @BeforeAll
    void start() throws Exception {
        server = JDiffusionServer.start(ServerFixture.config(ServerFixture.baseDir(tmp)));
        client = new ServerFixture.Client(server.port(), null);
    }

    @AfterAll
    void stop() {
        server.close();
    }

    private static Path inpaintCase(String suffix) {
        return ServerFixture.golden().resolve("inpaint/pipe_sd1_inpaint_legacy4ch." + suffix);
    }

    @Test
    void a1111Img2imgWithAMaskKeepsTheUnmaskedPixels() throws Exception {
        byte[] init = Files.readAllBytes(inpaintCase("input.png"));
        byte[] mask = Files.readAllBytes(inpaintCase("mask.png"));
        BufferedImage original = ImageIO.read(new ByteArrayInputStream(init));
        BufferedImage maskImg = ImageIO.read(new ByteArrayInputStream(mask));
        ObjectNode req = ServerFixture.JSON.createObjectNode();
        req.put("prompt", "a cat");
        req.put("steps", 2);
        req.put("width", original.getWidth());
        req.put("height", original.getHeight());
        req.put("seed", 3);
        req.put("denoising_strength", 1.0);
        req.put("mask_blur", 0);
        req.put("inpainting_fill", 1);
        req.put("inpaint_full_res", false);
        req.putArray("init_images").add(Base64.getEncoder().encodeToString(init));
        req.put("mask", Base64.getEncoder().encodeToString(mask));
        ServerFixture.Response r = client.post("/sdapi/v1/img2img", req);
        assertEquals(200, r.status(), r.body());
        BufferedImage out = ImageIO.read(new ByteArrayInputStream(Base64.getDecoder().decode(
                r.json().path("images").get(0).asText())));
        int kept = 0;
        int repainted = 0;
        for (int y = 0; y < out.getHeight(); y++) {
            for (int x = 0; x < out.getWidth(); x++) {
                boolean masked = (maskImg.getRGB(x, y) & 0xFF) != 0;
                if (!masked) {
                    assertEquals(original.getRGB(x, y) & 0xFFFFFF, out.getRGB(x, y) & 0xFFFFFF, "pixel " + x + "," + y);
                    kept++;
                } else if ((original.getRGB(x, y) & 0xFFFFFF) != (out.getRGB(x, y) & 0xFFFFFF)) {
                    repainted++;
                }
            }
        }
        assertTrue(kept > 0 && repainted > 0, "kept " + kept + ", repainted " + repainted);

        req.put("inpainting_mask_invert", 1);
        req.put("inpainting_fill", 0);
        r = client.post("/sdapi/v1/img2img", req);
        assertEquals(200, r.status(), r.body());
        out = ImageIO.read(new ByteArrayInputStream(Base64.getDecoder().decode(r.json().path("images").get(0).asText())));
        for (int y = 0; y < out.getHeight(); y++) {
            for (int x = 0; x < out.getWidth(); x++) {
                if ((maskImg.getRGB(x, y) & 0xFF) == 255) { // inverted: fully white mask pixels are kept
                    assertEquals(original.getRGB(x, y) & 0xFFFFFF, out.getRGB(x, y) & 0xFFFFFF);
                }
            }
        }
        req.put("mask", "not base64 !!");
        assertEquals(400, client.post("/sdapi/v1/img2img", req).status());
    }

    @Test
    void uploadMaskPutsTheMaskIntoTheImagesAlpha() throws Exception {
        byte[] init = Files.readAllBytes(inpaintCase("input.png"));
        ServerFixture.Response up = client.multipart("/upload/image", List.<String[]>of(new String[] {"overwrite",
                "true"}), "image", "photo.png", init, null);
        assertEquals(200, up.status(), up.body());
        BufferedImage original = ImageIO.read(new ByteArrayInputStream(init));
        BufferedImage mask = new BufferedImage(original.getWidth(), original.getHeight(), BufferedImage.TYPE_INT_ARGB);
        for (int y = 0; y < mask.getHeight(); y++) {
            for (int x = 0; x < mask.getWidth(); x++) {
                mask.setRGB(x, y, (x * 4 & 255) << 24);
            }
        }
        ByteArrayOutputStream png = new ByteArrayOutputStream();
        ImageIO.write(mask, "png", png);
        String ref = "{\"filename\": \"photo.png\", \"subfolder\": \"\", \"type\": \"input\"}";
        ServerFixture.Response r = client.multipart("/upload/mask", List.of(new String[] {"original_ref", ref},
                new String[] {"type", "input"}, new String[] {"overwrite", "true"}), "image", "clipspace-mask.png",
                png.toByteArray(), null);
        assertEquals(200, r.status(), r.body());
        JsonNode j = r.json();
        assertEquals("clipspace-mask.png", j.path("name").asText());
        BufferedImage merged = ImageIO.read(server.paths().inputDir().resolve("clipspace-mask.png").toFile());
        for (int y = 0; y < merged.getHeight(); y++) {
            for (int x = 0; x < merged.getWidth(); x++) {
                assertEquals(original.getRGB(x, y) & 0xFFFFFF, merged.getRGB(x, y) & 0xFFFFFF);
                assertEquals(x * 4 & 255, merged.getRGB(x, y) >>> 24);
            }
        }
        ServerFixture.Response missing = client.multipart("/upload/mask", List.<String[]>of(new String[] {
            "original_ref", "{\"filename\": \"nope.png\"}"}), "image", "m.png", png.toByteArray(), null);
        assertEquals(404, missing.status(), missing.body());
        ServerFixture.Response escape = client.multipart("/upload/mask", List.<String[]>of(new String[] {
            "original_ref", "{\"filename\": \"../../etc/passwd\"}"}), "image", "m.png", png.toByteArray(), null);
        assertEquals(400, escape.status(), escape.body());
    }
}
