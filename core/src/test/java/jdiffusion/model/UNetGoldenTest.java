package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every {@code unet_*} golden case: one forward of the tiny SD1/SDXL UNet, batch 2, at each timestep of the
 * manifest (999, the fractional 500.5, 1), every output at the manifest's tolerance.
 */
class UNetGoldenTest {

    @TestFactory
    Stream<DynamicTest> everyUnetCase() {
        return Golden.manifests("unet_").stream()
                .map(m -> DynamicTest.dynamicTest(Golden.caseName(m), () -> runCase(m)));
    }

    /** The same cases through the F32 loading path: the fp32 twin (same values) written by the project's writer. */
    @TestFactory
    Stream<DynamicTest> everyUnetCaseOnTheFp32Twin(@TempDir Path tmp) {
        return Golden.manifests("unet_").stream().map(m -> DynamicTest.dynamicTest(Golden.caseName(m), () -> {
            Path fp16 = Golden.fp16Model(Golden.json(m).get("params").get("config"));
            runCase(m, Golden.fp32Twin(fp16, tmp));
        }));
    }
    /** The feed-forward runs in row slices at full size; slices of 7 rows (uneven) must give the same outputs. */
    @TestFactory
    Stream<DynamicTest> feedForwardInRowSlices() {
        return Golden.manifests("unet_").stream().limit(1).map(m -> DynamicTest.dynamicTest(Golden.caseName(m), () -> {
            int saved = SpatialTransformer.ffRows;
            SpatialTransformer.ffRows = 7;
            try {
                runCase(m);
            } finally {
                SpatialTransformer.ffRows = saved;
            }
        }));
    }

    /** The reference picked its heads from its config; the default rule must agree for these files. */
    @TestFactory
    Stream<DynamicTest> defaultHeadsRuleMatchesTheReferenceConfig() {
        return Golden.manifests("unet_").stream().map(m -> DynamicTest.dynamicTest(Golden.caseName(m), () -> {
            JsonNode config = Golden.json(m).get("params").get("config");
            try (SafeTensors file = SafeTensors.open(Golden.fp16Model(config))) {
                UNetConfig inferred = UNetConfig.infer(Weights.prefixed(file, "model.diffusion_model."));
                Map<Integer, Integer> reference = referenceHeads(config);
                for (Map.Entry<Integer, Integer> e : reference.entrySet()) {
                    assertEquals(e.getValue(), inferred.headsRule().heads(e.getKey()),
                            "heads of a " + e.getKey() + "-channel transformer");
                }
            }
        }));
    }

    private static void runCase(Path manifest) throws Exception {
        runCase(manifest, Golden.fp16Model(Golden.json(manifest).get("params").get("config")));
    }

    static void runCase(Path manifest, Path model) throws Exception {
        JsonNode json = Golden.json(manifest);
        JsonNode config = json.get("params").get("config");
        JsonNode inputs = json.get("inputs");
        try (SafeTensors file = SafeTensors.open(model);
             SafeTensors tensors = Golden.tensors(manifest)) {
            Map<Integer, Integer> heads = referenceHeads(config);
            UNet unet = UNet.load(Weights.prefixed(file, "model.diffusion_model."), ch -> heads.get(ch));
            int[] xShape = Golden.shape(inputs.get("x"));
            int batch = xShape[0];
            int h = xShape[2];
            int w = xShape[3];
            float[] x = tensors.floats(inputs.get("x").get("tensor").asText());
            int[] ctxShape = Golden.shape(inputs.get("context"));
            float[] context = tensors.floats(inputs.get("context").get("tensor").asText());
            float[] y = null;
            if (inputs.has("text_embeds")) {
                float[] pooled = tensors.floats(inputs.get("text_embeds").get("tensor").asText());
                float[] timeIds = tensors.floats(inputs.get("time_ids").get("tensor").asText());
                y = UNet.sdxlAdm(pooled, batch, timeIds);
            }
            List<String> checked = new ArrayList<>();
            var outputs = json.get("outputs").properties();
            for (Map.Entry<String, JsonNode> out : outputs) {
                float t = timestepOf(out.getKey());
                float[] timesteps = new float[batch];
                java.util.Arrays.fill(timesteps, t);
                float[] actual = unet.forward(x, batch, h, w, timesteps, context, ctxShape[1], y);
                float[] expected = tensors.floats(out.getValue().get("tensor").asText());
                double atol = out.getValue().get("tolerance").get("atol").asDouble();
                System.out.printf("%s %s: max |diff| %.3g (atol %.3g)%n", Golden.caseName(manifest), out.getKey(),
                        Golden.maxAbsDiff(expected, actual), atol);
                Golden.assertClose(Golden.caseName(manifest) + " " + out.getKey(), expected, actual, atol);
                checked.add(out.getKey());
            }
            assertEquals(json.get("params").get("timesteps").size(), checked.size(), "one output per timestep");
        }
    }

    /** "eps.t500.5" -> 500.5: the output's name carries its timestep. */
    private static float timestepOf(String outputName) {
        return Float.parseFloat(outputName.substring(outputName.indexOf(".t") + 2));
    }
    /**
     * Channels -> heads as diffusers built the reference: {@code attention_head_dim} (an int or one per level) is,
     * for these UNets, the number of heads of the level with block_out_channels[level] channels (levels with
     * transformers only).
     */
    static Map<Integer, Integer> referenceHeads(JsonNode config) {
        JsonNode widths = config.get("block_out_channels");
        JsonNode heads = config.get("num_attention_heads").isNull() ? config.get("attention_head_dim")
                : config.get("num_attention_heads");
        Map<Integer, Integer> map = new HashMap<>();
        for (int level = 0; level < widths.size(); level++) {
            if (!config.get("down_block_types").get(level).asText().startsWith("CrossAttn")) {
                continue;
            }
            int n = heads.isArray() ? heads.get(level).asInt() : heads.asInt();
            Integer old = map.put(widths.get(level).asInt(), n);
            if (old != null && old != n) {
                throw new IllegalStateException("two levels of the same width with different heads");
            }
        }
        return map;
    }

}
