package jdiffusion.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import jdiffusion.io.SafeTensors;
import org.junit.jupiter.api.Test;

/**
 * The latent-to-RGB preview against ComfyUI's Latent2RGBPreviewer example in samplers/latent_formats.* (the x0
 * latent and the uint8 RGB it gave), for SD1 and SDXL, and our factor tables against the recorded ones.
 */
class LatentPreviewTest {
    private static final Path FORMATS = ServerFixture.golden().resolve("samplers");

    @Test
    void factorsAreComfyUis() throws IOException {
        JsonNode json = ServerFixture.JSON.readTree(FORMATS.resolve("latent_formats.json").toFile());
        for (LatentPreview.Format f : List.of(LatentPreview.SD15, LatentPreview.SDXL)) {
            JsonNode rec = json.get(f.name());
            for (int k = 0; k < 4; k++) {
                for (int c = 0; c < 3; c++) {
                    assertEquals(rec.get("latent_rgb_factors").get(k).get(c).floatValue(), f.factors()[k][c],
                            f.name() + " factor " + k + "," + c);
                }
            }
            JsonNode bias = rec.get("latent_rgb_factors_bias");
            if (bias.isNull()) {
                assertEquals(null, f.bias());
            } else {
                for (int c = 0; c < 3; c++) {
                    assertEquals(bias.get(c).floatValue(), f.bias()[c]);
                }
            }
        }
    }

    @Test
    void projectionMatchesTheRecordedExample() throws IOException {
        try (SafeTensors st = SafeTensors.open(FORMATS.resolve("latent_formats.safetensors"))) {
            for (LatentPreview.Format f : List.of(LatentPreview.SD15, LatentPreview.SDXL)) {
                float[] x0 = st.floats(f.name() + ".preview.x0");
                long[] shape = st.info(f.name() + ".preview.x0").shape();
                int[] s = {(int) shape[0], (int) shape[1], (int) shape[2], (int) shape[3]};
                ByteBuffer expected = st.segment(f.name() + ".preview.rgb_uint8").asByteBuffer();
                byte[] want = new byte[expected.remaining()];
                expected.get(want);
                byte[] got = LatentPreview.rgb(f, x0, s);
                assertArrayEquals(want, got, f.name() + " preview bytes");
            }
        }
    }

    @Test
    void truncatesAndClampsLikeTorch() {
        assertEquals(0, LatentPreview.toByte(-3f));
        assertEquals(255, LatentPreview.toByte(5f));
        assertEquals(127, LatentPreview.toByte(0f)); // 0.5 * 255 = 127.5, truncated
    }

    @Test
    void refusesTheWrongChannelCount() {
        assertThrows(IllegalArgumentException.class,
                () -> LatentPreview.rgb(LatentPreview.SD15, new float[16 * 4], new int[] {1, 16, 2, 2}));
    }

    @Test
    void previewFormatFollowsTheSamplersModelToItsFile(@org.junit.jupiter.api.io.TempDir Path tmp)
            throws IOException {
        Path base = ServerFixture.baseDir(tmp);
        java.nio.file.Files.copy(ServerFixture.golden().resolve("models/tiny-sdxl-fp16.safetensors"),
                base.resolve("models/checkpoints/tiny-sdxl-fp16.safetensors"));
        PreviewFormats formats = new PreviewFormats(jdiffusion.workflow.ModelPaths.of(base));
        var sd1 = ServerFixture.lora(1, 2, 32, 0.5);
        assertEquals(LatentPreview.SD15, formats.forNode(sd1, "3"), "through the LoraLoader to the SD1 checkpoint");
        var sdxl = ServerFixture.txt2img(1, 2, 32);
        ((com.fasterxml.jackson.databind.node.ObjectNode) sdxl.get("4").get("inputs"))
                .put("ckpt_name", "tiny-sdxl-fp16.safetensors");
        assertEquals(LatentPreview.SDXL, formats.forNode(sdxl, "3"));
    }

    @Test
    void frameHasComfyUisHeader() {
        byte[] f = LatentPreview.frame(LatentPreview.PNG, new byte[] {9, 8});
        ByteBuffer b = ByteBuffer.wrap(f);
        assertEquals(1, b.getInt());
        assertEquals(2, b.getInt());
        assertEquals(9, b.get());
        assertEquals(10, f.length);
    }
}
