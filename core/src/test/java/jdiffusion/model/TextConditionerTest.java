package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import jdiffusion.Golden;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import jdiffusion.tensor.Ops;
import jdiffusion.text.ClipTokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Long prompts, clip skip, SD2 semantics and zero uncond, checked against the encoders and the textenc goldens. */
class TextConditionerTest {
    private static final String LONG = "an astronaut riding a horse on mars, highly detailed, 8k, trending on artstation, ".repeat(5);

    @Test
    void sdxlLongPromptIsChunkedAndPooledFromFirstChunk() throws Exception {
        try (SafeTensors file = SafeTensors.open(Golden.model("tiny-sdxl-fp16.safetensors"))) {
            TextConditioner tc = TextConditioner.load(file);
            assertEquals(Family.SDXL, tc.family());
            int raw = ClipTokenizer.clipL().encode(LONG).length;
            assertEquals(95, raw); // 19 per repetition: two chunks
            Conditioning c = tc.encode(LONG);
            assertEquals(154, c.tokens());
            assertEquals(192, c.dim());

            List<Weights> te = TextConditioner.textEncoderWeights(file, Family.SDXL);
            ClipTextEncoder l = ClipTextEncoder.load(te.get(0));
            ClipTextEncoder g = ClipTextEncoder.load(te.get(1));
            int[][] lRows = ClipTokenizer.clipL().encodeChunks(LONG);
            int[][] gRows = ClipTokenizer.openClip().encodeChunks(LONG);
            for (int chunk = 0; chunk < 2; chunk++) {
                ClipTextEncoder.Output lo = l.forward(lRows[chunk]);
                ClipTextEncoder.Output go = g.forward(gRows[chunk]);
                float[] expected = Ops.concatChannels(lo.hidden(-2), 64, go.hidden(-2), 128, 77);
                float[] actual = Arrays.copyOfRange(c.context(), chunk * 77 * 192, (chunk + 1) * 77 * 192);
                Golden.assertClose("chunk " + chunk, expected, actual, 1e-6);
                if (chunk == 0) {
                    Golden.assertClose("pooled", go.textEmbeds(), c.pooled(), 1e-6);
                }
            }
        }
    }

    /** SD1 clip skip 2 is the final-normed penultimate layer: textenc_sd1_te's penultimate_ln for its prompts. */
    @Test
    void sd1ClipSkipMatchesPenultimateLnGolden() throws Exception {
        Path manifest = Golden.dir().resolve("textenc_sd1_te.json");
        JsonNode m = Golden.json(manifest);
        try (SafeTensors file = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors")); SafeTensors golden = Golden.tensors(manifest)) {
            TextConditioner tc = TextConditioner.load(file);
            float[] penultimateLn = golden.floats(m.get("outputs").get("penultimate_ln").get("tensor").asText());
            float[] last = golden.floats(m.get("outputs").get("last_hidden_state").get("tensor").asText());
            double atol = m.get("outputs").get("penultimate_ln").get("tolerance").get("atol").asDouble();
            // prompt 0 and 1 fit one chunk; prompt 2 of the case is truncated there, chunked here
            for (int i = 0; i < 2; i++) {
                String prompt = m.get("params").get("prompts").get(i).asText();
                int n = 77 * 64;
                Golden.assertClose("clip skip 2, prompt " + i, Arrays.copyOfRange(penultimateLn, i * n, (i + 1) * n),
                        tc.withClipSkip(2).encode(prompt).context(), atol);
                Golden.assertClose("clip skip 1, prompt " + i, Arrays.copyOfRange(last, i * n, (i + 1) * n),
                        tc.encode(prompt).context(), atol);
            }
            assertNull(tc.encode("").pooled());
            assertThrows(IllegalArgumentException.class, () -> tc.withClipSkip(0));
            assertThrows(IllegalArgumentException.class, () -> tc.withClipSkip(4));
        }
    }

    /**
     * SD2 (penultimate + final LayerNorm, OpenCLIP tokenizer padding with 0): SDXL's bigG tower moved under SD2's
     * {@code cond_stage_model.model.} prefix must give textenc_sdxl_te2's penultimate_ln.
     */
    @Test
    void sd2UsesPenultimateWithFinalNorm(@TempDir Path tmp) throws Exception {
        Path manifest = Golden.dir().resolve("textenc_sdxl_te2.json");
        JsonNode m = Golden.json(manifest);
        Path sd2 = tmp.resolve("fake-sd2-te.safetensors");
        try (SafeTensors sdxl = SafeTensors.open(Golden.model("tiny-sdxl-fp16.safetensors"))) {
            F32Copy.write(sdxl, "conditioner.embedders.1.model.", "cond_stage_model.model.", sd2);
        }
        try (SafeTensors file = SafeTensors.open(sd2); SafeTensors golden = Golden.tensors(manifest)) {
            TextConditioner tc = TextConditioner.load(file);
            assertEquals(Family.SD2, tc.family());
            String prompt = m.get("params").get("prompts").get(0).asText();
            int[] goldenIds = Arrays.stream(Arrays.copyOf(golden.longs("in.input_ids"), 77)).mapToInt(Math::toIntExact).toArray();
            assertArrayEquals(goldenIds, tc.tokenize(prompt).get("clip_h")[0]);
            float[] expected = Arrays.copyOf(golden.floats(m.get("outputs").get("penultimate_ln").get("tensor").asText()), 77 * 128);
            Conditioning c = tc.encode(prompt);
            Golden.assertClose("sd2 context", expected, c.context(), m.get("outputs").get("penultimate_ln").get("tolerance").get("atol").asDouble());
            assertNull(c.pooled());
        }
    }

    /** A decorator (as a LoRA adds) hides the OpenClipWeights marker; the SDXL slot still says exact GELU. */
    @Test
    void decoratedOpenClipTowerKeepsGelu() throws Exception {
        try (SafeTensors file = SafeTensors.open(Golden.model("tiny-sdxl-fp16.safetensors"))) {
            List<Weights> te = TextConditioner.textEncoderWeights(file, Family.SDXL);
            Weights g = te.get(1);
            Weights hidden = new Weights() {
                public java.util.Set<String> names() {
                    return g.names();
                }

                public boolean has(String name) {
                    return g.has(name);
                }

                public int[] shape(String name) {
                    return g.shape(name);
                }

                public float[] get(String name) {
                    return g.get(name);
                }
            };
            assertEquals(ClipTextEncoder.Activation.QUICK_GELU, ClipTextEncoder.Activation.of(hidden));
            String prompt = "a majestic lion";
            Conditioning viaMarker = TextConditioner.load(file).encode(prompt);
            Conditioning viaSlot = TextConditioner.of(Family.SDXL, List.of(te.get(0), hidden)).encode(prompt);
            assertArrayEquals(viaMarker.context(), viaSlot.context());
            assertArrayEquals(viaMarker.pooled(), viaSlot.pooled());
        }
    }

    @Test
    void zerosLikeKeepsShape() {
        Conditioning c = new Conditioning(new float[] {1, 2, 3, 4, 5, 6}, 2, 3, new float[] {7, 8});
        Conditioning z = c.zerosLike();
        assertEquals(2, z.tokens());
        assertEquals(3, z.dim());
        assertArrayEquals(new float[6], z.context());
        assertArrayEquals(new float[2], z.pooled());
        assertThrows(IllegalArgumentException.class, () -> new Conditioning(new float[5], 2, 3, null));
    }

    @Test
    void fileWithoutTextEncoderIsNamed() {
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> {
            try (SafeTensors f = SafeTensors.open(Golden.dir().resolve("tokenizer_clip.safetensors"))) {
                TextConditioner.load(f);
            }
        });
        assertTrue(e.getMessage().contains("tokenizer_clip.safetensors") && e.getMessage().contains("no text encoder"), e.getMessage());
    }

    @Test
    void badTokenIdsAreRejected() throws Exception {
        try (SafeTensors file = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            ClipTextEncoder enc = ClipTextEncoder.load(Weights.prefixed(file, "cond_stage_model.transformer."));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> enc.forward(new int[] {49406, 49408}));
            assertTrue(e.getMessage().contains("49408"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> enc.forward(new int[78]));
            assertTrue(e.getMessage().contains("at most 77"), e.getMessage());
        }
    }
}
