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
