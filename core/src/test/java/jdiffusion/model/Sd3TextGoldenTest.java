package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.DType;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.SafeTensorsWriter;
import jdiffusion.io.Weights;
import jdiffusion.text.ClipTokenizer;
import jdiffusion.text.T5Tokenizer;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * SD3 / SD3.5 text goldens: {@code textenc_sd35_clip_l*} / {@code textenc_sd35_clip_g*} (one CLIP tower from the
 * checkpoint's {@code text_encoders.clip_l|clip_g.transformer.*}), {@code textenc_sd35_encode_prompt*} (diffusers'
 * encode_prompt: tokens and every variant's context and pooled) and the text part of
 * {@code pipe_comfy_sd35_*} (ComfyUI's token ids and CLIPTextEncode cond/uncond). Each with the fp16 checkpoint
 * as shipped and its F32 twin. The tiny CLIPs' head counts (not in the weights) come from the CLIP cases' configs.
 */
class Sd3TextGoldenTest {
    private static final String CHECKPOINT = "tiny-sd35-fp16.safetensors";
    @TempDir
    static Path tmp;

    @TestFactory
    Stream<DynamicTest> clipCases() {
        return Stream.of("textenc_sd35_clip_l", "textenc_sd35_clip_g")
                .flatMap(prefix -> Golden.manifestsIn("sd35", prefix).stream())
                .flatMap(m -> precisions().map(p -> DynamicTest.dynamicTest(Golden.caseName(m) + " " + p, () -> clip(m, p))));
    }

    @TestFactory
    Stream<DynamicTest> encodePromptCases() {
        return Golden.manifestsIn("sd35", "textenc_sd35_encode_prompt").stream()
                .flatMap(m -> precisions().map(p -> DynamicTest.dynamicTest(Golden.caseName(m) + " " + p, () -> encodePrompt(m, p))));
    }

    @TestFactory
    Stream<DynamicTest> comfyCases() {
        return Golden.manifestsIn("sd35", "pipe_comfy_sd35").stream()
                .flatMap(m -> precisions().map(p -> DynamicTest.dynamicTest(Golden.caseName(m) + " text " + p, () -> comfy(m, p))));
    }

    private static Stream<String> precisions() {
        return Stream.of("fp16", "fp32");
    }

    /** The checkpoint as shipped (fp16) or its F32 twin. */
    static Path checkpoint(String precision) throws Exception {
        Path fp16 = Golden.model(CHECKPOINT);
        if (precision.equals("fp16")) {
            return fp16;
        }
        Path twin = tmp.resolve(CHECKPOINT.replace("-fp16.", "-fp32."));
        if (!Files.exists(twin)) {
            try (SafeTensors src = SafeTensors.open(fp16)) {
                SafeTensorsWriter.convert(src, twin, DType.F32, false);
            }
        }
        return twin;
    }

    private static DType expectedDtype(String precision) {
        return precision.equals("fp16") ? DType.F16 : DType.F32;
    }

    /** The head count of a CLIP tower from its golden case's config (the weights cannot tell it). */
    static int heads(String encoder) {
        return Golden.json(Golden.manifestsIn("sd35", "textenc_sd35_" + encoder).get(0)).get("params").get("config")
                .get("num_attention_heads").asInt();
    }

    static Sd3TextConditioner.Options options(int contextWidth) {
        return new Sd3TextConditioner.Options(heads("clip_l"), heads("clip_g"), contextWidth);
    }

    private static void clip(Path manifest, String precision) throws Exception {
        JsonNode m = Golden.json(manifest);
        JsonNode config = m.get("params").get("config");
        boolean isL = Golden.caseName(manifest).startsWith("textenc_sd35_clip_l");
        try (SafeTensors ckpt = SafeTensors.open(checkpoint(precision))) {
            Weights w = Weights.prefixed(ckpt, isL ? "text_encoders.clip_l.transformer." : "text_encoders.clip_g.transformer.");
            assertEquals(expectedDtype(precision), w.dtype("text_model.encoder.layers.0.mlp.fc1.weight"));
            ClipTextEncoder enc = ClipTextEncoder.load(w, isL ? ClipTextEncoder.Activation.QUICK_GELU : ClipTextEncoder.Activation.GELU,
                    config.get("num_attention_heads").asInt());
            assertEquals(config.get("hidden_size").asInt(), enc.config().width());
            assertEquals(config.get("num_hidden_layers").asInt(), enc.config().layers());
            assertEquals(config.get("intermediate_size").asInt(), enc.config().mlpSize());
            assertEquals(config.get("hidden_act").asText().equals("gelu"), enc.config().activation() == ClipTextEncoder.Activation.GELU);
            try (SafeTensors golden = Golden.tensors(manifest)) {
                JsonNode in = m.get("inputs").get("input_ids");
                ClipTextEncoder.Output out = enc.forward(ints(golden.longs(in.get("tensor").asText())), Golden.shape(in)[0]);
                Map<String, float[]> actual = Map.of("penultimate", out.hidden(-2), "last_hidden_state", out.lastHiddenState(),
                        "pooled", out.pooled(), "text_embeds", out.textEmbeds());
                int checked = 0;
                for (Map.Entry<String, JsonNode> o : fields(m.get("outputs"))) {
                    float[] got = actual.get(o.getKey());
                    if (got == null) {
                        throw new AssertionError("unknown output " + o.getKey());
                    }
                    Golden.assertClose(Golden.caseName(manifest) + " " + precision + " " + o.getKey(),
                            golden.floats(o.getValue().get("tensor").asText()), got, o.getValue().get("tolerance").get("atol").asDouble());
                    checked++;
                }
                assertEquals(4, checked);
            }
            // the prompts tokenize to the case's ids (diffusers: CLIP-L pads with the end token, CLIP-G with '!' = 0)
            try (SafeTensors golden = Golden.tensors(manifest)) {
                int[] ids = ints(golden.longs(m.get("inputs").get("input_ids").get("tensor").asText()));
                ClipTokenizer tok = ClipTokenizer.diffusers(isL ? ClipTokenizer.EOS : 0);
                JsonNode prompts = m.get("params").get("prompts");
                for (int i = 0; i < prompts.size(); i++) {
                    assertArrayEquals(java.util.Arrays.copyOfRange(ids, i * 77, i * 77 + 77), tok.encodePadded(prompts.get(i).asText()),
                            "ids of prompt " + i);
                }
            }
        }
    }

    private static void encodePrompt(Path manifest, String precision) throws Exception {
        JsonNode m = Golden.json(manifest);
        JsonNode params = m.get("params");
        String prompt = params.get("prompt").asText();
        String negative = params.get("negative_prompt").asText();
        try (SafeTensors ckpt = SafeTensors.open(checkpoint(precision)); SafeTensors golden = Golden.tensors(manifest)) {
            // tokens: rows [negative, prompt]
            int[] l = ints(golden.longs(m.get("inputs").get("clip_l_ids").get("tensor").asText()));
            int[] g = ints(golden.longs(m.get("inputs").get("clip_g_ids").get("tensor").asText()));
            String[] rows = {negative, prompt};
            for (int r = 0; r < 2; r++) {
                assertArrayEquals(slice(l, r, 77), ClipTokenizer.diffusers(ClipTokenizer.EOS).encodePadded(rows[r]), "clip_l ids " + r);
                assertArrayEquals(slice(g, r, 77), ClipTokenizer.diffusers(0).encodePadded(rows[r]), "clip_g ids " + r);
                for (Map.Entry<String, JsonNode> in : fields(m.get("inputs"))) {
                    if (in.getKey().startsWith("t5_ids_")) {
                        int n = Golden.shape(in.getValue())[1];
                        int[] t = ints(golden.longs(in.getValue().get("tensor").asText()));
                        assertArrayEquals(slice(t, r, n), T5Tokenizer.get().encodePadded(rows[r], n), in.getKey() + " row " + r);
                    }
                }
            }
            // variants: t5_N (max_sequence_length N) and no_t5
            Map<String, Sd3TextConditioner> conditioners = new java.util.HashMap<>();
            int checked = 0;
            for (Map.Entry<String, JsonNode> o : fields(m.get("outputs"))) {
                String key = o.getKey();
                String variant = key.substring(0, key.indexOf('.'));
                String what = key.substring(key.indexOf('.') + 1);
                int[] shape = Golden.shape(o.getValue());
                boolean noT5 = variant.equals("no_t5");
                if (!noT5 && !variant.matches("t5_\\d+")) {
                    throw new AssertionError("unknown variant " + variant);
                }
                int width = what.contains("embeds") ? shape[2] : 0;
                Sd3TextConditioner tc = conditioners.computeIfAbsent(variant, v -> Sd3TextConditioner.load(ckpt, null, !noT5,
                        options(noT5 ? contextWidthOf(m) : 0)));
                assertEquals(!noT5, tc.hasT5());
                int maxLength = noT5 ? T5Tokenizer.DIFFUSERS_LENGTH : Integer.parseInt(variant.substring(3));
                String text = what.startsWith("empty_negative") ? "" : what.startsWith("negative") ? negative : prompt;
                Conditioning c = tc.encode(text, maxLength);
                float[] want = golden.floats(o.getValue().get("tensor").asText());
                double atol = o.getValue().get("tolerance").get("atol").asDouble();
                String label = Golden.caseName(manifest) + " " + precision + " " + key;
                if (what.endsWith("pooled")) {
                    assertEquals(shape[1], c.pooled().length, label);
                    Golden.assertClose(label, want, c.pooled(), atol);
                } else {
                    assertEquals(shape[1], c.tokens(), label + " tokens");
                    assertEquals(width, c.dim(), label + " width");
                    Golden.assertClose(label, want, c.context(), atol);
                    if (noT5) {
                        for (int i = 77 * width; i < c.context().length; i++) {
                            assertEquals(0f, c.context()[i], label + ": T5 rows are zero");
                        }
                    }
                }
                checked++;
            }
            assertTrue(checked >= 6, "outputs checked: " + checked);
        }
    }

    /** The context width of the case (any context output's last dimension). */
    private static int contextWidthOf(JsonNode m) {
        for (Map.Entry<String, JsonNode> o : fields(m.get("outputs"))) {
            if (o.getKey().endsWith("embeds")) {
                int[] s = Golden.shape(o.getValue());
                return s[s.length - 1];
            }
        }
        throw new AssertionError("no context output");
    }

    private static void comfy(Path manifest, String precision) throws Exception {
        JsonNode m = Golden.json(manifest);
        JsonNode params = m.get("params");
        Map<String, String> prompts = Map.of("cond", params.get("prompt").asText(), "uncond", params.get("negative").asText());
        try (SafeTensors ckpt = SafeTensors.open(checkpoint(precision)); SafeTensors golden = Golden.tensors(manifest);
             Sd3TextConditioner tc = Sd3TextConditioner.load(ckpt, null, true, options(0))) {
            for (Map.Entry<String, String> p : prompts.entrySet()) {
                String side = p.getKey();
                String text = p.getValue();
                JsonNode ids = m.get("inputs");
                assertArrayEquals(ints(golden.longs(ids.get("token_ids." + side + ".l").get("tensor").asText())),
                        ClipTokenizer.clipL().encodeWeighted(text).ids()[0], side + " clip_l ids");
                assertArrayEquals(ints(golden.longs(ids.get("token_ids." + side + ".g").get("tensor").asText())),
                        ClipTokenizer.openClip().encodeWeighted(text).ids()[0], side + " clip_g ids");
                assertArrayEquals(ints(golden.longs(ids.get("token_ids." + side + ".t5xxl").get("tensor").asText())),
                        Sd3TextConditioner.comfyT5Tokens(text).ids()[0], side + " t5 ids");
                Conditioning c = tc.encodeComfy(text);
                JsonNode ctx = m.get("outputs").get(side + ".context");
                JsonNode pooled = m.get("outputs").get(side + ".pooled");
                int[] shape = Golden.shape(ctx);
                assertEquals(shape[1], c.tokens());
                assertEquals(shape[2], c.dim());
                String label = Golden.caseName(manifest) + " " + precision + " " + side;
                Golden.assertClose(label + ".context", golden.floats(ctx.get("tensor").asText()), c.context(),
                        ctx.get("tolerance").get("atol").asDouble());
                Golden.assertClose(label + ".pooled", golden.floats(pooled.get("tensor").asText()), c.pooled(),
                        pooled.get("tolerance").get("atol").asDouble());
            }
        }
    }

    private static int[] slice(int[] a, int row, int n) {
        return java.util.Arrays.copyOfRange(a, row * n, row * n + n);
    }

    private static int[] ints(long[] raw) {
        int[] r = new int[raw.length];
        for (int i = 0; i < r.length; i++) {
            r[i] = Math.toIntExact(raw[i]);
        }
        return r;
    }

    private static List<Map.Entry<String, JsonNode>> fields(JsonNode node) {
        List<Map.Entry<String, JsonNode>> l = new ArrayList<>();
        node.fields().forEachRemaining(l::add);
        return l;
    }
}
