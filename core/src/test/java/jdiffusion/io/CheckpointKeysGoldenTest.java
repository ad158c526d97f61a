package jdiffusion.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import jdiffusion.Golden;
import jdiffusion.io.CheckpointKeys.Init;
import jdiffusion.io.CheckpointKeys.TensorSpec;
import jdiffusion.model.ModelConfig;
import org.junit.jupiter.api.Test;

/**
 * The architecture-to-keys generator (what {@code dev random-checkpoint} writes) reproduces the golden tiny
 * checkpoints' tensor names and shapes exactly, from the few numbers in the golden README: the same code at full
 * size gives the real layout.
 */
class CheckpointKeysGoldenTest {
    @Test
    void tinySd1KeysMatchTheGoldenFile() throws Exception {
        assertSameKeys(TinyConfigs.sd1(), "tiny-sd1-fp16.safetensors");
    }

    @Test
    void tinySdxlKeysMatchTheGoldenFile() throws Exception {
        assertSameKeys(TinyConfigs.sdxl(), "tiny-sdxl-fp16.safetensors");
    }

    private static void assertSameKeys(ModelConfig config, String golden) throws Exception {
        List<TensorSpec> specs = CheckpointKeys.of(config);
        Map<String, String> generated = new TreeMap<>();
        for (TensorSpec t : specs) {
            generated.put(t.name(), Arrays.toString(t.shape()));
        }
        assertEquals(specs.size(), generated.size(), "no name generated twice");
        try (SafeTensors st = SafeTensors.open(Golden.model(golden))) {
            Map<String, String> expected = new TreeMap<>();
            for (TensorInfo t : st.tensors().values()) {
                expected.put(t.name(), Arrays.toString(t.shape()));
            }
            TreeSet<String> missing = new TreeSet<>(expected.keySet());
            missing.removeAll(generated.keySet());
            TreeSet<String> extra = new TreeSet<>(generated.keySet());
            extra.removeAll(expected.keySet());
            assertTrue(missing.isEmpty() && extra.isEmpty(), golden + ": generator misses " + missing.size() + " "
                    + first(missing) + ", invents " + extra.size() + " " + first(extra));
            for (String n : expected.keySet()) {
                assertEquals(expected.get(n), generated.get(n), n);
            }
            for (TensorSpec t : specs) {
                assertEquals(t.init() == Init.POSITION_IDS, !st.info(t.name()).dtype().isFloat(), t.name());
            }
        }
    }

    private static List<String> first(TreeSet<String> s) {
        return s.stream().limit(3).toList();
    }

    @Test
    void fullSizeParameterCountsAreTheKnownOnes() {
        // published sizes: SD1.5 UNet 859.5M, SD2.1 UNet 865.9M, SDXL UNet 2.567B, VAE 83.65M,
        // CLIP-L text 123.1M (123.06M + position ids), OpenCLIP-H text 354.0M, OpenCLIP-bigG text 694.7M
        assertEquals(859_520_964L, params(ModelConfig.preset("sd15"), "model.diffusion_model."));
        assertEquals(865_910_724L, params(ModelConfig.preset("sd21"), "model.diffusion_model."));
        assertEquals(2_567_463_684L, params(ModelConfig.preset("sdxl"), "model.diffusion_model."));
        assertEquals(83_653_863L, params(ModelConfig.preset("sd15"), "first_stage_model."));
        assertEquals(123_060_480L, params(ModelConfig.preset("sd15"), "cond_stage_model.transformer."));
        assertEquals(694_659_841L, params(ModelConfig.preset("sdxl"), "conditioner.embedders.1."));
    }

    private static long params(ModelConfig config, String prefix) {
        return CheckpointKeys.of(config).stream().filter(t -> t.name().startsWith(prefix) && t.init() != Init.POSITION_IDS)
                .mapToLong(TensorSpec::numel).sum();
    }
}
