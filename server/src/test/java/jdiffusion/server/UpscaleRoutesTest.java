package jdiffusion.server;

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
import java.util.Base64;
import java.util.List;
import javax.imageio.ImageIO;
import jdiffusion.io.PngImage;
import jdiffusion.model.upscale.UpscaleModel;
import jdiffusion.pipeline.ImageUpscale;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.io.TempDir;

/**
 * AUTOMATIC1111's upscaling routes over HTTP: the upscaler and latent-mode lists, and extra-single-image through
 * the queue giving what the library's upscale gives (model alone; model then Lanczos to the requested size).
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class UpscaleRoutesTest {
    private static final String X2 = "tiny-esrgan-old-x2-fp16.safetensors";

    @TempDir
    static Path tmp;

    private JDiffusionServer server;
    private ServerFixture.Client client;
    private Path model;

    @BeforeAll
    void start() throws IOException {
        Path base = ServerFixture.baseDir(tmp);
        Files.createDirectories(base.resolve("models/upscale_models"));
        model = base.resolve("models/upscale_models").resolve(X2);
        Files.copy(ServerFixture.golden().resolve("models").resolve(X2), model);
        server = JDiffusionServer.start(ServerFixture.config(base));
        client = new ServerFixture.Client(server.port(), null);
    }

    @AfterAll
    void stop() {
        if (server != null) {
            server.close();
        }
    }

    @Test
    void lists() {
        JsonNode ups = client.get("/sdapi/v1/upscalers").json();
        List<String> names = new ArrayList<>();
        ups.forEach(u -> names.add(u.path("name").asText()));
        assertEquals(List.of("None", "Lanczos", "Nearest", "tiny-esrgan-old-x2-fp16"), names);
        assertEquals(X2, ups.get(3).path("model_name").asText());
        JsonNode modes = client.get("/sdapi/v1/latent-upscale-modes").json();
        assertEquals("Latent", modes.get(0).path("name").asText());
        assertTrue(modes.toString().contains("Latent (bislerp)"));
    }

    private static PngImage testImage(int w, int h) {
        byte[] rgb = new byte[w * h * 3];
        for (int i = 0; i < rgb.length; i++) {
            rgb[i] = (byte) ((i * 37 + i / 7 * 11) % 256);
        }
        return new PngImage(w, h, rgb);
    }

    private static String base64(PngImage img) throws IOException {
        BufferedImage b = new BufferedImage(img.width(), img.height(), BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < img.height(); y++) {
            for (int x = 0; x < img.width(); x++) {
                b.setRGB(x, y, img.value(x, y, 0) << 16 | img.value(x, y, 1) << 8 | img.value(x, y, 2));
            }
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ImageIO.write(b, "png", out);
        return Base64.getEncoder().encodeToString(out.toByteArray());
    }

    private BufferedImage post(ObjectNode req) throws IOException {
        ServerFixture.Response r = client.post("/sdapi/v1/extra-single-image", req);
        assertEquals(200, r.status(), r.body());
        return ImageIO.read(new ByteArrayInputStream(Base64.getDecoder().decode(r.json().path("image").asText())));
    }

    private static int worstDiff(PngImage want, BufferedImage got) {
        assertEquals(want.width(), got.getWidth());
        assertEquals(want.height(), got.getHeight());
        int worst = 0;
        for (int y = 0; y < want.height(); y++) {
            for (int x = 0; x < want.width(); x++) {
                int rgb = got.getRGB(x, y);
                for (int c = 0; c < 3; c++) {
                    worst = Math.max(worst, Math.abs(want.value(x, y, c) - ((rgb >> (16 - 8 * c)) & 0xFF)));
                }
            }
        }
        return worst;
    }

    @Test
    void extraSingleImageRunsTheModel() throws Exception {
        PngImage in = testImage(20, 16);
        ObjectNode req = ServerFixture.JSON.createObjectNode();
        req.put("image", base64(in));
        req.put("upscaler_1", "tiny-esrgan-old-x2-fp16");
        req.put("upscaling_resize", 2);
        PngImage want = ImageUpscale.upscale(UpscaleModel.open(model), in, 512, 32);
        assertTrue(worstDiff(want, post(req)) <= 1);

        req.put("upscaling_resize", 1.5);
        BufferedImage smaller = post(req);
        assertEquals(30, smaller.getWidth());
        assertEquals(24, smaller.getHeight());

        req.put("upscaler_1", "No Such Model");
        assertEquals(400, client.post("/sdapi/v1/extra-single-image", req).status());
        req.put("upscaler_1", "Lanczos");
        req.put("resize_mode", 1);
        req.put("upscaling_resize_w", 25);
        req.put("upscaling_resize_h", 25);
        assertEquals(25, post(req).getWidth());
    }
}
