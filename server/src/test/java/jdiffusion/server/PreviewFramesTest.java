package jdiffusion.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import javax.imageio.ImageIO;
import jdiffusion.io.PngImage;
import jdiffusion.io.SafeTensors;
import jdiffusion.workflow.LatentPreview;
import org.junit.jupiter.api.Test;

/**
 * The preview the server sends: the engine's latent-to-RGB projection against ComfyUI's Latent2RGBPreviewer example
 * in samplers/latent_formats.safetensors (SD1 and SDXL, byte for byte), and the frame layout.
 */
class PreviewFramesTest {
    private static final Path FORMATS = ServerFixture.golden().resolve("samplers/latent_formats.safetensors");

    @Test
    void projectionMatchesComfyUisExample() throws IOException {
        try (SafeTensors st = SafeTensors.open(FORMATS)) {
            for (String family : new String[] {"SD15", "SDXL"}) {
                float[] x0 = st.floats(family + ".preview.x0");
                int[] s = st.info(family + ".preview.x0").dims();
                ByteBuffer expected = st.segment(family + ".preview.rgb_uint8").asByteBuffer();
                byte[] want = new byte[expected.remaining()];
                expected.get(want);
                PngImage got = new LatentPreview(x0, s[0], s[1], s[2], s[3], family.equals("SDXL")).rgb();
                assertEquals(s[3], got.width());
                assertEquals(s[2], got.height());
                assertArrayEquals(want, got.rgb(), family + " preview bytes");
            }
        }
    }

    @Test
    void frameHasComfyUisHeaderAndADecodableJpeg() throws IOException {
        byte[] rgb = new byte[6 * 5 * 3];
        for (int i = 0; i < rgb.length; i++) {
            rgb[i] = (byte) (i * 7);
        }
        byte[] f = PreviewFrames.frame(PreviewFrames.JPEG, PreviewFrames.jpeg(new PngImage(5, 6, rgb)));
        ByteBuffer b = ByteBuffer.wrap(f);
        assertEquals(1, b.getInt());
        assertEquals(1, b.getInt());
        BufferedImage img = ImageIO.read(new ByteArrayInputStream(f, 8, f.length - 8));
        assertEquals(5 * 12, img.getWidth(), "scaled up to at least 64 px on the short side");
        assertEquals(6 * 12, img.getHeight());
    }
}
