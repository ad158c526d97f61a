package jdiffusion.model.mmdit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.DType;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every {@code mmdit_*} golden case (SD3Transformer2DModel forwards): the velocity at each of the manifest's
 * timesteps, and the {@code debug.*} intermediates at its debug timestep, on the fp16 file as shipped (weights kept
 * 16-bit) and on its fp32 twin.
 */
class MMDiTGoldenTest {

    @TestFactory
    Stream<DynamicTest> everyMMDiTCase() {
        return Golden.manifestsIn("sd35", "mmdit_").stream()
                .map(m -> DynamicTest.dynamicTest(Golden.caseName(m), () -> runCase(m, fp16Model(m), DType.F16)));
    }

    @TestFactory
    Stream<DynamicTest> everyMMDiTCaseOnTheFp32Twin(@TempDir Path tmp) {
        return Golden.manifestsIn("sd35", "mmdit_").stream().map(m -> DynamicTest.dynamicTest(Golden.caseName(m),
                () -> runCase(m, Golden.fp32Twin(fp16Model(m), tmp), DType.F32)));
    }

    static Path fp16Model(Path manifest) {
        return Golden.fp16Model(Golden.json(manifest).get("params").get("config"));
    }

    private static void runCase(Path manifest, Path model, DType weightType) throws Exception {
        JsonNode json = Golden.json(manifest);
        JsonNode params = json.get("params");
        JsonNode inputs = json.get("inputs");
        JsonNode outputs = json.get("outputs");
        String name = Golden.caseName(manifest);
        try (SafeTensors file = SafeTensors.open(model); SafeTensors tensors = Golden.tensors(manifest)) {
            Weights w = Weights.prefixed(file, "model.diffusion_model.");
            assertEquals(weightType, w.dtype("joint_blocks.0.x_block.attn.qkv.weight"));
            MMDiT mmdit = MMDiT.load(w);
            checkConfig(mmdit.config(), params.get("config"));
            int[] xs = Golden.shape(inputs.get("x"));
            int[] cs = Golden.shape(inputs.get("context"));
            float[] x = tensors.floats(inputs.get("x").get("tensor").asText());
            float[] context = tensors.floats(inputs.get("context").get("tensor").asText());
            float[] pooled = tensors.floats(inputs.get("pooled").get("tensor").asText());
            int batch = xs[0];

            Set<Double> checked = new HashSet<>();
            for (Map.Entry<String, JsonNode> out : outputs.properties()) {
                if (!out.getKey().startsWith("v.t")) {
                    continue;
                }
                double t = Double.parseDouble(out.getKey().substring(3));
                float[] ts = new float[batch];
                java.util.Arrays.fill(ts, (float) t);
                float[] v = mmdit.forward(x, batch, xs[2], xs[3], ts, context, cs[1], pooled);
                compare(name, out.getKey(), out.getValue(), tensors, v);
                checked.add(t);
            }
            for (JsonNode t : params.get("timesteps")) {
                assertTrue(checked.contains(t.asDouble()), name + ": no output checked for timestep " + t);
            }

            JsonNode debug = params.get("debug");
            if (debug != null) {
                Map<String, float[]> seen = new HashMap<>();
                float[] ts = new float[batch];
                java.util.Arrays.fill(ts, (float) debug.get("timestep").asDouble());
                mmdit.forward(x, batch, xs[2], xs[3], ts, context, cs[1], pooled, (n, vals) -> seen.put(n,
                        vals.clone()));
                int n = 0;
                for (Map.Entry<String, JsonNode> out : outputs.properties()) {
                    if (out.getKey().startsWith("debug.")) {
                        String key = out.getKey().substring("debug.".length());
                        assertTrue(seen.containsKey(key), name + ": the forward pass reports no '" + key + "'");
                        compare(name, out.getKey(), out.getValue(), tensors, seen.get(key));
                        n++;
                    }
                }
                assertFalse(n == 0, name + ": params.debug but no debug outputs");
            }
        }
    }

    private static void checkConfig(MMDiTConfig c, JsonNode cfg) {
        assertEquals(cfg.get("num_layers").asInt(), c.depth());
        assertEquals(cfg.get("num_attention_heads").asInt(), c.heads());
        assertEquals(cfg.get("attention_head_dim").asInt() * cfg.get("num_attention_heads").asInt(), c.hidden());
        assertEquals(cfg.get("patch_size").asInt(), c.patch());
        assertEquals(cfg.get("in_channels").asInt(), c.inChannels());
        assertEquals(cfg.get("out_channels").asInt(), c.outChannels());
        assertEquals(cfg.get("pos_embed_max_size").asInt(), c.posEmbedMaxSize());
        assertEquals(cfg.get("joint_attention_dim").asInt(), c.contextIn());
        assertEquals(cfg.get("pooled_projection_dim").asInt(), c.admIn());
        assertEquals("rms_norm".equals(cfg.path("qk_norm").asText()), c.qkNorm());
        java.util.List<Integer> dual = new java.util.ArrayList<>();
        cfg.path("dual_attention_layers").forEach(d -> dual.add(d.asInt()));
        assertEquals(dual, c.dualAttentionBlocks());
    }

    private static void compare(String name, String key, JsonNode entry, SafeTensors tensors, float[] actual) {
        float[] expected = tensors.floats(entry.get("tensor").asText());
        double atol = entry.get("tolerance").get("atol").asDouble();
        System.out.printf("%s %s: max |diff| %.3g (atol %.3g)%n", name, key, Golden.maxAbsDiff(expected, actual),
                atol);
        Golden.assertClose(name + " " + key, expected, actual, atol);
    }
}
