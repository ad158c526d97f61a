package jdiffusion.model.mmdit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;
import jdiffusion.Golden;
import jdiffusion.io.CheckpointKeys.TensorSpec;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import org.junit.jupiter.api.Test;

/** The SD3 key lists for random checkpoints: the tiny real file's keys and shapes, and the published sizes. */
class Sd3KeysTest {

    @Test
    void keysOfTheDetectedTinyConfigAreExactlyTheFilesMMDiTAndVaeTensors() throws Exception {
        try (SafeTensors f = SafeTensors.open(Golden.model("tiny-sd35-fp16.safetensors"))) {
            MMDiTConfig c = MMDiTConfig.detect(Weights.prefixed(f, Sd3Config.MMDIT_PREFIX));
            Map<String, String> expected = new TreeMap<>();
            for (String n : f.names()) {
                if (n.startsWith(Sd3Config.MMDIT_PREFIX)) {
                    expected.put(n, Arrays.toString(f.info(n).dims()));
                }
            }
            Map<String, String> actual = new TreeMap<>();
            for (TensorSpec t : Sd3Keys.mmdit(Sd3Config.MMDIT_PREFIX, c)) {
                actual.put(t.name(), Arrays.toString(Arrays.stream(t.shape()).mapToInt(l -> (int) l).toArray()));
            }
            assertEquals(expected, actual);
        }
    }

    @Test
    void textEncoderKeysMatchTheTinyFilesEncodersAndThePublishedSizes() throws Exception {
        try (SafeTensors f = SafeTensors.open(Golden.model("tiny-sd35-fp16.safetensors"))) {
            String t5 = Sd3Config.TEXT_PREFIX + "t5xxl.transformer.";
            assertEquals(shapes(f, t5), shapes(Sd3Keys.t5(t5, 64, 2, 4, 16, 160, 32128, 32)));
            for (String[] clip : new String[][] {{"clip_l", "16", "64"}, {"clip_g", "32", "128"}}) {
                String p = Sd3Config.TEXT_PREFIX + clip[0] + ".transformer.";
                int w = Integer.parseInt(clip[1]);
                var spec = new jdiffusion.model.ModelConfig.TextEncoderSpec(clip[0],
                        jdiffusion.io.CheckpointLayouts.TextLayout.HF_CLIP, w, 3, 2, Integer.parseInt(clip[2]),
                        49408, 77, w, false, "gelu");
                assertEquals(shapes(f, p), shapes(jdiffusion.io.CheckpointKeys.hfClip(p, spec)));
            }
        }
        // CLIP ViT-L/14 text model + projection, OpenCLIP bigG text model + projection, T5 v1.1 XXL encoder
        assertEquals(123_650_304L, count("clip-l"));
        assertEquals(694_659_840L, count("clip-g"));
        assertEquals(4_762_310_656L, count("t5xxl"));
        assertThrows(IllegalArgumentException.class, () -> Sd3Keys.textEncoder("t5xl"));
    }

    private static long count(String name) {
        return Sd3Keys.textEncoder(name).stream().mapToLong(TensorSpec::numel).sum();
    }

    private static Map<String, String> shapes(SafeTensors f, String prefix) {
        Map<String, String> out = new TreeMap<>();
        for (String n : f.names()) {
            if (n.startsWith(prefix)) {
                out.put(n, Arrays.toString(f.info(n).dims()));
            }
        }
        return out;
    }

    private static Map<String, String> shapes(java.util.List<TensorSpec> specs) {
        Map<String, String> out = new TreeMap<>();
        for (TensorSpec t : specs) {
            out.put(t.name(), Arrays.toString(Arrays.stream(t.shape()).mapToInt(l -> (int) l).toArray()));
        }
        return out;
    }

    @Test
    void sd35MediumHasThePublishedSize() {
        MMDiTConfig m = Sd3Keys.preset("sd35m");
        long params = Sd3Keys.parameters(m);
        // Stability: "2.5 billion parameters" (MMDiT-X); ComfyUI's count of the released file is 2.47e9
        assertTrue(params > 2.40e9 && params < 2.55e9, "SD3.5 Medium MMDiT parameters " + params);
        assertEquals(24, m.depth());
        assertEquals(1536, m.hidden());
        assertEquals(13, m.dualAttentionBlocks().size());
        long large = Sd3Keys.parameters(Sd3Keys.preset("sd35l"));
        // Stability: "8.1 billion parameters"
        assertTrue(large > 7.9e9 && large < 8.3e9, "SD3.5 Large MMDiT parameters " + large);
        assertThrows(IllegalArgumentException.class, () -> Sd3Keys.preset("sd4"));
    }
}
