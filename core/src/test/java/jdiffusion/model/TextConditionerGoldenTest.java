package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import jdiffusion.text.ClipTokenizer;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Prompt to conditioning against the pipeline goldens: the {@code pipe_comfy_*} cases' token ids and
 * CLIPTextEncode outputs (ComfyUI semantics), and the diffusers {@code pipe_*} cases' first UNet context.
 */
class TextConditionerGoldenTest {
    /** The diffusers cases give no tolerance for their recorded UNet inputs; the textenc_* cases' atol is 1e-5..3e-5. */
    private static final double DIFFUSERS_CONTEXT_ATOL = 3e-5;
    /** Some pipeline manifests hold -Infinity (log sigma 0), which Golden.json's default mapper rejects. */
    private static final ObjectMapper JSON = JsonMapper.builder().enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS).build();
    private static final Pattern MODEL = Pattern.compile("models/(\\S+?)\\.safetensors");

    @TestFactory
    Stream<DynamicTest> comfyCases() {
        return Golden.manifests("pipe_comfy_").stream()
                .map(m -> DynamicTest.dynamicTest(Golden.caseName(m), () -> checkComfy(m)));
    }

    @TestFactory
    Stream<DynamicTest> diffusersCases() {
        return Golden.manifests("pipe_").stream()
                .filter(m -> !Golden.caseName(m).startsWith("pipe_comfy_"))
                // a LoRA also patches the text encoders: those cases belong to the LoRA loader's tests
                .filter(m -> !readJson(m).get("params").has("lora"))
                .map(m -> DynamicTest.dynamicTest(Golden.caseName(m), () -> checkDiffusers(m)));
    }

    /** Loaded once per model file: the encoders hold their own copies of the weights, so the file may close. */
    private static final Map<Path, TextConditioner> LOADED = new java.util.concurrent.ConcurrentHashMap<>();

    private static TextConditioner conditioner(Path model) throws Exception {
        TextConditioner tc = LOADED.get(model);
        if (tc == null) {
            try (SafeTensors file = SafeTensors.open(model)) {
                tc = TextConditioner.load(file);
            }
            LOADED.put(model, tc);
        }
        return tc;
    }

    private static JsonNode readJson(Path manifest) {
        try {
            return JSON.readTree(manifest.toFile());
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** The fp16 twin of the model a manifest names (the fp32 files are not shipped; values are identical). */
    private static Path modelOf(JsonNode params) {
        Matcher mm = MODEL.matcher(params.get("model").asText());
        if (!mm.find()) {
            throw new AssertionError("manifest model not understood: " + params.get("model"));
        }
        return Golden.model(mm.group(1).replace("-fp32", "-fp16") + ".safetensors");
    }

    private static void checkComfy(Path manifest) throws Exception {
        String name = Golden.caseName(manifest);
        JsonNode m = readJson(manifest);
        JsonNode p = m.get("params");
        try (SafeTensors golden = Golden.tensors(manifest)) {
            TextConditioner tc = conditioner(modelOf(p));
            Map<String, String> prompts = Map.of("positive", p.get("prompt").asText(), "negative", p.get("negative").asText());
            // token ids: token_ids.* are clip_l (or the single encoder), token_ids2.* clip_g
            for (var in : (Iterable<Map.Entry<String, JsonNode>>) () -> m.get("inputs").fields()) {
                String key = in.getKey();
                if (!key.startsWith("token_ids")) {
                    continue;
                }
                String which = key.substring(key.indexOf('.') + 1);
                Map<String, int[][]> tokens = tc.tokenize(prompts.get(which));
                int[][] rows = key.startsWith("token_ids2.") ? tokens.get("clip_g") : tokens.values().iterator().next();
                assertEquals(1, rows.length, name + " " + key + ": prompt fits one chunk");
                long[] expected = golden.longs(in.getValue().get("tensor").asText());
                for (int j = 0; j < expected.length; j++) {
                    assertEquals(expected[j], rows[0][j], name + " " + key + " position " + j);
                }
            }
            Conditioning cond = tc.encode(prompts.get("positive"));
            Conditioning uncond = tc.encode(prompts.get("negative"));
            Map<String, float[]> actual = new LinkedHashMap<>();
            actual.put("cond.context", cond.context());
            actual.put("uncond.context", uncond.context());
            actual.put("cond.pooled", cond.pooled());
            actual.put("uncond.pooled", uncond.pooled());
            int checked = 0;
            for (var out : (Iterable<Map.Entry<String, JsonNode>>) () -> m.get("outputs").fields()) {
                if (!actual.containsKey(out.getKey())) {
                    continue;
                }
                assertNotNull(actual.get(out.getKey()), name + " " + out.getKey());
                double atol = out.getValue().get("tolerance").get("atol").asDouble();
                Golden.assertClose(name + " " + out.getKey(), golden.floats(out.getValue().get("tensor").asText()),
                        actual.get(out.getKey()), atol);
                checked++;
            }
            assertEquals(tc.family() == Family.SDXL ? 4 : 2, checked, name + ": conditioning outputs checked");
            // the first UNet call's context: rows [uncond x batch, cond x batch], uncond only when evaluated
            int batch = p.get("batch").asInt();
            boolean withUncond = p.get("uncond_evaluated").asBoolean();
            JsonNode call = m.get("outputs").get("unet_call0.context");
            float[] expectedCall = golden.floats(call.get("tensor").asText());
            float[] built = rows(batch, withUncond ? uncond : null, cond);
            Golden.assertClose(name + " unet_call0.context", expectedCall, built,
                    m.get("outputs").get("cond.context").get("tolerance").get("atol").asDouble());
        }
    }

    private static void checkDiffusers(Path manifest) throws Exception {
        String name = Golden.caseName(manifest);
        JsonNode m = readJson(manifest);
        JsonNode p = m.get("params");
        JsonNode call = p.get("call");
        try (SafeTensors golden = Golden.tensors(manifest)) {
            TextConditioner tc = conditioner(modelOf(p));
            boolean sdxl = tc.family() == Family.SDXL;
            boolean cfg = call.path("guidance_scale").asDouble(7.5) > 1;
            Conditioning cond = tc.encodeTokens(diffusersTokens(tc, call.get("prompt").asText()));
            Conditioning uncond = null;
            if (cfg) {
                JsonNode negative = call.get("negative_prompt");
                if (negative == null || negative.isNull()) {
                    // SD1: "" is encoded; SDXL: force_zeros_for_empty_prompt
                    uncond = sdxl ? cond.zerosLike() : tc.encodeTokens(diffusersTokens(tc, ""));
                } else {
                    uncond = tc.encodeTokens(diffusersTokens(tc, negative.asText()));
                }
            }
            JsonNode in = m.get("inputs");
            Golden.assertClose(name + " unet_call0.context", golden.floats(in.get("unet_call0.context").get("tensor").asText()),
                    rows(1, uncond, cond), DIFFUSERS_CONTEXT_ATOL);
            if (sdxl) {
                float[] pooled = cfg ? concat(uncond.pooled(), cond.pooled()) : cond.pooled();
                Golden.assertClose(name + " unet_call0.text_embeds",
                        golden.floats(in.get("unet_call0.text_embeds").get("tensor").asText()), pooled, DIFFUSERS_CONTEXT_ATOL);
            } else {
                assertNull(cond.pooled());
            }
        }
    }

    /** diffusers tokenizes with truncation to 77 (no chunks) and its own tokenizer_2 (pad '!' as added token). */
    private static Map<String, int[][]> diffusersTokens(TextConditioner tc, String prompt) {
        Map<String, int[][]> out = new LinkedHashMap<>();
        for (String enc : tc.tokenize(prompt).keySet()) {
            ClipTokenizer t = ClipTokenizer.diffusers(enc.equals("clip_l") ? ClipTokenizer.EOS : 0);
            out.put(enc, new int[][] {t.encodePadded(prompt)});
        }
        return out;
    }

    private static float[] rows(int batch, Conditioning uncond, Conditioning cond) {
        float[] all = new float[0];
        for (Conditioning c : uncond == null ? new Conditioning[] {cond} : new Conditioning[] {uncond, cond}) {
            for (int b = 0; b < batch; b++) {
                all = concat(all, c.context());
            }
        }
        return all;
    }

    private static float[] concat(float[] a, float[] b) {
        float[] r = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }
}
