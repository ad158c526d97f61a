package jdiffusion.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.OpenClipWeights;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The golden kohya LoRAs (found through the pipeline manifests that name a LoRA) on their tiny checkpoints: every
 * key consumed, every module applied, each patched weight equal to W + s * (alpha / r) * up @ down computed here
 * with an independent name mapping (the golden README's block formulas), every other tensor unchanged.
 */
class KohyaGoldenLoraTest {
    /** Counts the golden README states for the public files (the manifests do not carry them). */
    private static final Map<String, int[]> README_COUNTS = Map.of(
            "tiny-sd1-lora-kohya.safetensors", new int[] {654, 218},
            "tiny-sdxl-lora-kohya.safetensors", new int[] {708, 236});

    @TestFactory
    Stream<DynamicTest> goldenLoras() {
        return Golden.manifests("pipe_").stream()
                .filter(m -> GoldenModels.manifest(m).path("params").has("lora"))
                .flatMap(m -> Stream.of(
                        DynamicTest.dynamicTest(Golden.caseName(m), () -> check(m, true)),
                        DynamicTest.dynamicTest(Golden.caseName(m) + " (te2 raw OpenCLIP layout)", () -> check(m, false))));
    }

    private void check(Path manifest, boolean hfTe2) throws Exception {
        JsonNode params = GoldenModels.manifest(manifest).get("params");
        Path loraPath = Golden.dir().resolve(params.get("lora").get("file").asText());
        float scale = (float) params.get("lora").get("scale").asDouble();
        try (SafeTensors ckpt = SafeTensors.open(GoldenModels.checkpoint(params));
             SafeTensors raw = SafeTensors.open(loraPath);
             LoraFile lora = LoraFile.open(loraPath)) {
            if (!hfTe2 && !GoldenModels.isSdxl(ckpt)) {
                return; // only SDXL has an OpenCLIP tower
            }
            ModelComponents base = GoldenModels.components(ckpt, hfTe2);
            LoraMatch match = LoraMatch.of(lora, base);
            LoraReport report = match.report();
            TreeSet<String> modules = new TreeSet<>();
            raw.names().forEach(k -> modules.add(k.substring(0, k.indexOf('.'))));

            assertEquals(List.of(), report.unusedKeys(), "unused keys: " + report.problems());
            assertEquals(raw.names().size(), report.keysUsed());
            assertEquals(modules.size(), report.modulesAppliedTotal(), report.summary());
            int[] readme = README_COUNTS.get(loraPath.getFileName().toString());
            if (readme != null) {
                assertEquals(readme[0], report.keys());
                assertEquals(readme[1], report.modulesAppliedTotal());
            }
            ModelComponents patched = match.applyTo(base, scale, scale);
            if (hfTe2 && base.te2() != null) {
                assertTrue(OpenClipWeights.isOpenClip(patched.te2()), "patched te2 must still be an OpenCLIP tower (erf GELU)");
            }
            Map<String, double[]> expected = expectedWeights(raw, modules, base, scale);
            for (Component c : Component.values()) {
                if (base.get(c) != null) {
                    checkComponent(c, base.get(c), patched.get(c), expected);
                }
            }
        }
    }

    /** Expected patched values of every tensor the LoRA touches, keyed component/tensor. */
    private static Map<String, double[]> expectedWeights(SafeTensors raw, TreeSet<String> modules, ModelComponents base,
                                                         float scale) {
        Map<String, double[]> expected = new HashMap<>();
        for (String module : modules) {
            Resolved r = resolve(module, base);
            assertNotNull(r, "test mapping found no tensor for " + module);
            Weights w = base.get(r.component);
            String key = r.component + "/" + r.tensor;
            double[] values = expected.computeIfAbsent(key, k -> toDouble(w.get(r.tensor)));
            float[] up = raw.floats(module + ".lora_up.weight");
            float[] down = raw.floats(module + ".lora_down.weight");
            int rank = raw.info(module + ".lora_down.weight").dims()[0];
            double alpha = raw.floats(module + ".alpha")[0];
            int rows = up.length / rank;
            int cols = down.length / rank;
            int offset = r.rowOffset * cols;
            for (int p = 0; p < rows; p++) {
                for (int c = 0; c < cols; c++) {
                    double acc = 0;
                    for (int i = 0; i < rank; i++) {
                        acc += (double) up[p * rank + i] * down[i * cols + c];
                    }
                    values[offset + p * cols + c] += scale * (alpha / rank) * acc;
                }
            }
        }
        return expected;
    }

    private static void checkComponent(Component c, Weights base, Weights patched, Map<String, double[]> expected) {
        for (String name : base.names()) {
            if (name.endsWith("position_ids")) {
                continue; // int64 bookkeeping tensor, not a weight
            }
            double[] want = expected.get(c + "/" + name);
            float[] got = patched.get(name);
            if (want == null) {
                assertArrayEquals(base.get(name), got, c + " " + name + " must be unchanged");
                continue;
            }
            double worst = 0;
            for (int i = 0; i < got.length; i++) {
                worst = Math.max(worst, Math.abs(got[i] - want[i]) / (1e-6 + 1e-6 * Math.abs(want[i])));
            }
            assertTrue(worst <= 1, c + " " + name + ": patched value off by " + worst + "x the tolerance 1e-6 (abs+rel)");
        }
    }

    private static double[] toDouble(float[] f) {
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }

    private record Resolved(Component component, String tensor, int rowOffset) {
    }

    // ---- an independent name mapping, written from the golden README's tables ----

    private static final Pattern TE2 = Pattern.compile("text_model_encoder_layers_(\\d+)_(self_attn_([qkv])_proj|self_attn_out_proj|mlp_fc1|mlp_fc2)");

    private static Resolved resolve(String module, ModelComponents base) {
        if (module.startsWith("lora_unet_")) {
            String ldm = diffusersToLdm(module.substring("lora_unet_".length()));
            for (String candidate : ldm.split("\\|")) {
                String t = findFlat(base.unet(), candidate);
                if (t != null) {
                    return new Resolved(Component.UNET, t, 0);
                }
            }
            return null;
        }
        if (module.startsWith("lora_te_") || module.startsWith("lora_te1_")) {
            String t = findFlat(base.te1(), module.substring(module.indexOf('_', 5) + 1));
            return t == null ? null : new Resolved(Component.TE1, t, 0);
        }
        if (!base.te2().has("transformer.resblocks.0.attn.in_proj_weight")) {
            String t = findFlat(base.te2(), module.substring("lora_te2_".length()));
            return t == null ? null : new Resolved(Component.TE2, t, 0);
        }
        Matcher m = TE2.matcher(module.substring("lora_te2_".length()));
        if (!m.matches()) {
            return null;
        }
        String block = "transformer.resblocks." + m.group(1) + ".";
        if (m.group(3) != null) {
            int width = base.te2().shape(block + "attn.in_proj_weight")[1];
            return new Resolved(Component.TE2, block + "attn.in_proj_weight", "qkv".indexOf(m.group(3)) * width);
        }
        String rest = switch (m.group(2)) {
            case "self_attn_out_proj" -> "attn.out_proj.weight";
            case "mlp_fc1" -> "mlp.c_fc.weight";
            default -> "mlp.c_proj.weight";
        };
        return new Resolved(Component.TE2, block + rest, 0);
    }

    private static String findFlat(Weights w, String flatModule) {
        for (String n : w.names()) {
            if (n.replace('.', '_').equals(flatModule + "_weight")) {
                return n;
            }
        }
        return null;
    }

    /** diffusers UNet path (underscored) to LDM (underscored), 2 res blocks per level; SGM paths pass through. */
    private static String diffusersToLdm(String p) {
        Matcher m;
        if ((m = Pattern.compile("down_blocks_(\\d+)_resnets_(\\d+)_(.+)").matcher(p)).matches()) {
            return "input_blocks_" + (3 * i(m, 1) + i(m, 2) + 1) + "_0_" + res(m.group(3));
        }
        if ((m = Pattern.compile("down_blocks_(\\d+)_attentions_(\\d+)_(.+)").matcher(p)).matches()) {
            return "input_blocks_" + (3 * i(m, 1) + i(m, 2) + 1) + "_1_" + m.group(3);
        }
        if ((m = Pattern.compile("down_blocks_(\\d+)_downsamplers_0_conv").matcher(p)).matches()) {
            return "input_blocks_" + (3 * (i(m, 1) + 1)) + "_0_op";
        }
        if ((m = Pattern.compile("mid_block_resnets_(\\d+)_(.+)").matcher(p)).matches()) {
            return "middle_block_" + (2 * i(m, 1)) + "_" + res(m.group(2));
        }
        if ((m = Pattern.compile("mid_block_attentions_0_(.+)").matcher(p)).matches()) {
            return "middle_block_1_" + m.group(1);
        }
        if ((m = Pattern.compile("up_blocks_(\\d+)_resnets_(\\d+)_(.+)").matcher(p)).matches()) {
            return "output_blocks_" + (3 * i(m, 1) + i(m, 2)) + "_0_" + res(m.group(3));
        }
        if ((m = Pattern.compile("up_blocks_(\\d+)_attentions_(\\d+)_(.+)").matcher(p)).matches()) {
            return "output_blocks_" + (3 * i(m, 1) + i(m, 2)) + "_1_" + m.group(3);
        }
        if ((m = Pattern.compile("up_blocks_(\\d+)_upsamplers_0_conv").matcher(p)).matches()) {
            int b = 3 * i(m, 1) + 2;
            return "output_blocks_" + b + "_1_conv|output_blocks_" + b + "_2_conv";
        }
        return p;
    }

    private static int i(Matcher m, int group) {
        return Integer.parseInt(m.group(group));
    }

    private static String res(String layer) {
        return switch (layer) {
            case "norm1" -> "in_layers_0";
            case "conv1" -> "in_layers_2";
            case "time_emb_proj" -> "emb_layers_1";
            case "norm2" -> "out_layers_0";
            case "conv2" -> "out_layers_3";
            case "conv_shortcut" -> "skip_connection";
            default -> layer;
        };
    }
}
