package jdiffusion.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import javax.imageio.ImageIO;
import jdiffusion.model.Taesd;
import jdiffusion.workflow.ModelPaths;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --preview-method taesd}: the preview frame is TAESD's decode of the latent (8x its size, bytes truncated as
 * ComfyUI's latent_preview), found in models/vae_approx; without the file there is no decoder (latent2rgb is used).
 */
class TaesdPreviewTest {
    @TempDir
    Path base;

    @Test
    void aFrameIsTheDecodedImage() throws Exception {
        ModelPaths paths = ModelPaths.of(base);
        Path src = ServerFixture.golden().resolve("models/vae_approx/taesd_decoder.safetensors");
        Files.copy(src, paths.folders("vae_approx").get(0).resolve("taesd_decoder.safetensors"));
        TaesdPreview p = new TaesdPreview(paths);
        assertNull(p.decoder(LatentPreview.SDXL), "no taesdxl file: latent2rgb");
        Taesd t = p.decoder(LatentPreview.SD15);
        assertNotNull(t);
        int[] shape = {2, 4, 6, 10};
        float[] latent = new float[2 * 4 * 6 * 10];
        Random r = new Random(3);
        for (int i = 0; i < latent.length; i++) {
            latent[i] = (float) r.nextGaussian() * 2f;
        }
        byte[] rgb = TaesdPreview.rgb(t, latent, shape);
        float[] x = Taesd.open(src).decode(java.util.Arrays.copyOf(latent, 4 * 6 * 10), 1, 6, 10);
        int plane = 48 * 80;
        assertEquals(plane * 3, rgb.length);
        for (int q = 0; q < plane; q++) {
            for (int c = 0; c < 3; c++) {
                int expected = (int) (Math.min(1f, Math.max(0f, x[c * plane + q])) * 255f);
                assertTrue(Math.abs(expected - (rgb[q * 3 + c] & 255)) <= 1, "pixel " + q + " channel " + c);
            }
        }
        byte[] frame = TaesdPreview.jpeg(t, latent, shape);
        BufferedImage img = ImageIO.read(new ByteArrayInputStream(frame));
        assertEquals(80, img.getWidth());
        assertEquals(48, img.getHeight());
        double diff = 0;
        for (int y = 0; y < 48; y++) {
            for (int xx = 0; xx < 80; xx++) {
                int v = img.getRGB(xx, y);
                int q = (y * 80 + xx) * 3;
                diff += Math.abs(((v >> 16) & 255) - (rgb[q] & 255)) + Math.abs(((v >> 8) & 255) - (rgb[q + 1] & 255))
                        + Math.abs((v & 255) - (rgb[q + 2] & 255));
            }
        }
        assertTrue(diff / (plane * 3) < 12, "jpeg mean diff " + diff / (plane * 3));
    }

    @Test
    void thePromptMayAskForTaesd() throws Exception {
        ObjectMapper json = new ObjectMapper();
        assertEquals("taesd", TaesdPreview.method(json.readTree("{\"preview_method\":\"taesd\"}"), "none"));
        assertEquals("taesd", TaesdPreview.method(json.readTree("{\"preview_method\":\"default\"}"), "taesd"));
        assertEquals("latent2rgb", TaesdPreview.method(null, "latent2rgb"));
    }
}
