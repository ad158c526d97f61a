package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The configuration inferred from weight names and shapes equals the diffusers config the reference was built
 * from (recorded in every {@code unet_*} manifest): a second, independent description of the same model.
 */
class UNetConfigTest {

    @TestFactory
    Stream<DynamicTest> inferredConfigMatchesTheReferenceConfig() {
        return Golden.manifests("unet_").stream().map(m -> DynamicTest.dynamicTest(Golden.caseName(m), () -> {
            JsonNode ref = Golden.json(m).get("params").get("config");
            try (SafeTensors file = SafeTensors.open(Golden.fp16Model(ref))) {
                check(ref, UNetConfig.infer(Weights.prefixed(file, "model.diffusion_model.")));
            }
        }));
    }

    private static void check(JsonNode ref, UNetConfig c) {
        JsonNode widths = ref.get("block_out_channels");
        int levels = widths.size();
        assertEquals(ref.get("in_channels").asInt(), c.inChannels(), "in channels");
        assertEquals(ref.get("out_channels").asInt(), c.outChannels(), "out channels");
        assertEquals(widths.get(0).asInt(), c.modelChannels(), "model channels");
        assertEquals(levels, c.levels(), "levels");
        for (int level = 0; level < levels; level++) {
            assertEquals(widths.get(level).asInt(), c.channels(level), "width of level " + level);
        }
        int numRes = ref.get("layers_per_block").asInt();
        assertEquals(numRes, c.numResBlocks(), "res blocks per level");
        for (int level = 0; level < levels; level++) {
            int depth = depthOf(ref, "down_block_types", level, level);
            for (int j = 0; j < numRes; j++) {
                assertEquals(depth, c.inputDepth()[level * numRes + j], "depth of down level " + level);
            }
            // up block u runs level (levels - 1 - u) and uses the reversed per-level depths
            int upDepth = depthOf(ref, "up_block_types", level, levels - 1 - level);
            for (int j = 0; j <= numRes; j++) {
                assertEquals(upDepth, c.outputDepth()[level * (numRes + 1) + j], "depth of up block " + level);
            }
        }
        int midDepth = ref.get("mid_block_type").asText().contains("CrossAttn") ? layersPerBlock(ref, levels - 1) : 0;
        assertEquals(midDepth, c.middleDepth(), "middle transformer depth");
        assertEquals(ref.get("cross_attention_dim").asInt(), c.contextDim(), "context dim");
        assertEquals(ref.get("use_linear_projection").asBoolean(), c.linearProj(), "linear proj_in");
        assertEquals(4 * widths.get(0).asInt(), c.timeEmbedDim(), "time embedding width");
        JsonNode adm = ref.get("projection_class_embeddings_input_dim");
        assertEquals(adm == null || adm.isNull() ? 0 : adm.asInt(), c.admInChannels(), "adm width");
    }

    private static int depthOf(JsonNode ref, String blockTypes, int block, int level) {
        boolean attn = ref.get(blockTypes).get(block).asText().startsWith("CrossAttn");
        return attn ? layersPerBlock(ref, level) : 0;
    }

    private static int layersPerBlock(JsonNode ref, int level) {
        JsonNode t = ref.get("transformer_layers_per_block");
        return t.isArray() ? t.get(level).asInt() : t.asInt();
    }
}
