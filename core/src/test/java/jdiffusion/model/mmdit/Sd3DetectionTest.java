package jdiffusion.model.mmdit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import jdiffusion.Golden;
import jdiffusion.io.Checkpoint;
import jdiffusion.io.DType;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import jdiffusion.io.Weights;
import jdiffusion.model.Family;
import jdiffusion.model.ModelConfig.ComponentStats;
import jdiffusion.model.ModelDetector;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** SD3 detection from tensor names and shapes, as ComfyUI's model_detection reports tiny-sd35, and bad files. */
class Sd3DetectionTest {
    private static final Path TINY = Golden.model("tiny-sd35-fp16.safetensors");

    @Test
    void tinySd35IsDetectedAsComfyUiDoes() throws Exception {
        try (SafeTensors f = SafeTensors.open(TINY)) {
            assertTrue(ModelDetector.isSd3(f));
            Sd3Config c = ModelDetector.detectSd3(f);
            assertEquals(Family.SD3, c.family());
            MMDiTConfig m = c.mmdit();
            // the README: ComfyUI reports depth 2, adm 48, context 64 -> 128, pos_embed_max_size 12, qk rms,
            // attn2 layers [0]
            assertEquals(2, m.depth());
            assertEquals(2, m.heads());
            assertEquals(128, m.hidden());
            assertEquals(48, m.admIn());
            assertEquals(64, m.contextIn());
            assertEquals(12, m.posEmbedMaxSize());
            assertTrue(m.qkNorm());
            assertEquals(List.of(0), m.dualAttentionBlocks());
            assertEquals(16, m.inChannels());
            assertEquals(16, m.outChannels());
            assertEquals(2, m.patch());
            assertEquals(512, m.mlpHidden());
            assertEquals("SD3.5 Medium (MMDiT-X)", m.variant());
            assertEquals(16, c.vae().latentChannels());
            assertEquals(List.of("clip_l", "clip_g"), c.clips().stream().map(t -> t.name()).toList());
            assertNotNull(c.t5());
            assertEquals(new Sd3Config.T5Spec(64, 2, 4, 160, 32128), c.t5());
            Map<String, Integer> tensors = new LinkedHashMap<>();
            long mmditParams = 0;
            for (ComponentStats s : c.components()) {
                tensors.put(s.component(), s.tensors());
            }
            // the README's counts per prefix
            assertEquals(Map.of("mmdit", 65, "vae", 240, "clip_l", 53, "clip_g", 53, "t5xxl", 21), tensors);
            for (String n : f.names()) {
                if (n.startsWith("model.diffusion_model.")) {
                    mmditParams += f.info(n).numel();
                }
            }
            assertEquals(mmditParams, c.mmditParameters());
            assertFalse(c.describe().isEmpty());
        }
    }

    @Test
    void checkpointOpenNamesAnSd3File() {
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Checkpoint.open(TINY));
        assertTrue(e.getMessage().contains("SD3"), e.getMessage());
    }

    @Test
    void damagedFilesFailWithTheTensorNamed(@TempDir Path tmp) throws Exception {
        // a missing final layer, a non-square pos_embed and a gap in the blocks
        assertBad(tmp, "final_layer.linear.weight", null, "final_layer.linear.weight");
        assertBad(tmp, "pos_embed", new int[] {1, 143, 128}, "pos_embed");
        assertBad(tmp, "joint_blocks.0.x_block.mlp.fc1.weight", null, "joint_blocks.0.x_block.mlp.fc1.weight");
    }

    @Test
    void forwardRefusesInputsThatDoNotFit() throws Exception {
        try (SafeTensors f = SafeTensors.open(TINY)) {
            MMDiT m = MMDiT.load(Weights.prefixed(f, Sd3Config.MMDIT_PREFIX));
            float[] pooled = new float[2 * m.config().admIn()];
            float[] ctx = new float[2 * 3 * m.config().contextIn()];
            float[] t = {1000f, 1000f};
            // 200x200 latent = 100x100 patches, larger than the 12x12 positional table
            IllegalArgumentException big = assertThrows(IllegalArgumentException.class,
                    () -> m.forward(new float[2 * 16 * 200 * 200], 2, 200, 200, t, ctx, 3, pooled));
            assertTrue(big.getMessage().contains("positional table"), big.getMessage());
            IllegalArgumentException shape = assertThrows(IllegalArgumentException.class,
                    () -> m.forward(new float[2 * 16 * 8 * 8], 2, 8, 8, t, new float[5], 3, pooled));
            assertTrue(shape.getMessage().contains("context"), shape.getMessage());
            // an odd latent is padded circularly to whole patches and cropped back, as ComfyUI does
            float[] v = m.forward(new float[2 * 16 * 7 * 5], 2, 7, 5, t, ctx, 3, pooled);
            assertEquals(2 * 16 * 7 * 5, v.length);
            for (float x : v) {
                assertTrue(Float.isFinite(x));
            }
        }
    }

    /** Copies the tiny MMDiT with one tensor dropped (shape null) or reshaped, and expects a message naming it. */
    private static void assertBad(Path tmp, String victim, int[] shape, String expected) throws Exception {
        Path out = tmp.resolve("bad-" + victim + ".safetensors");
        SafeTensorsWriter w = SafeTensorsWriter.to(out).overwrite(true);
        try (SafeTensors f = SafeTensors.open(TINY)) {
            for (String n : f.names()) {
                if (!n.startsWith(Sd3Config.MMDIT_PREFIX)) {
                    continue;
                }
                String local = n.substring(Sd3Config.MMDIT_PREFIX.length());
                if (local.equals(victim)) {
                    if (shape == null) {
                        continue;
                    }
                    long[] dims = new long[shape.length];
                    int numel = 1;
                    for (int i = 0; i < shape.length; i++) {
                        dims[i] = shape[i];
                        numel *= shape[i];
                    }
                    w.add(n, DType.F32, dims, new float[numel]);
                } else {
                    w.addFrom(f, n, n, DType.F32);
                }
            }
            w.write();
        }
        try (SafeTensors f = SafeTensors.open(out)) {
            ModelFormatException e = assertThrows(ModelFormatException.class,
                    () -> MMDiT.load(Weights.prefixed(f, Sd3Config.MMDIT_PREFIX)));
            assertTrue(e.getMessage().contains(expected), e.getMessage());
            assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
        }
    }
}
