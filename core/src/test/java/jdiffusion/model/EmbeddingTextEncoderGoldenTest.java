package jdiffusion.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import jdiffusion.text.ClipTokenizer;
import jdiffusion.text.Embeddings;
import jdiffusion.text.WeightedChunks;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * Golden cases {@code embedding_textenc_<model>_<te>}: the embedding file's vectors (found and chosen as ComfyUI
 * does, by the encoder's name) spliced into the token embeddings of the golden input ids give every recorded output
 * (inputs_embeds, hidden states, pooled) at its tolerance, fp16 and fp32 weights; and ComfyUI's
 * {@code embedding:name} prompts tokenize to the same ids with the vectors in the recorded slots, or, past 75
 * slots, with the whole embedding moved to a new chunk.
 */
class EmbeddingTextEncoderGoldenTest {
    @TempDir
    static Path tmp;

    @TestFactory
    Stream<DynamicTest> embeddingTextEncoderCases() {
        return Golden.manifestsIn("embeddings", "embedding_textenc_").stream().flatMap(m -> Stream.of("fp16", "fp32")
                .map(precision -> DynamicTest.dynamicTest(Golden.caseName(m) + " " + precision, () -> check(m, precision))));
    }

    private static void check(Path manifest, String precision) throws Exception {
        String[] parts = Golden.caseName(manifest).split("_");
        String model = parts[2];
        int index = parts[3].equals("te") ? 0 : Integer.parseInt(parts[3].substring(2)) - 1;
        Path fp16 = Golden.model("tiny-" + model + "-fp16.safetensors");
        try (SafeTensors file16 = SafeTensors.open(fp16)) {
            Family family = TextConditioner.detect(file16);
            if (precision.equals("fp16")) {
                run(manifest, family, index, TextConditioner.textEncoderWeights(file16, family).get(index));
                return;
            }
            Path f32 = tmp.resolve("tiny-" + model + "-te-fp32.safetensors");
            if (!Files.exists(f32)) {
                F32Copy.write(file16, "", f32);
            }
            try (SafeTensors file32 = SafeTensors.open(f32)) {
                run(manifest, family, index, TextConditioner.textEncoderWeights(file32, family).get(index));
            }
        }
    }

    private static void run(Path manifest, Family family, int index, Weights weights) throws Exception {
        String name = Golden.caseName(manifest);
        JsonNode m = Golden.json(manifest);
        JsonNode p = m.get("params");
        JsonNode emb = p.get("embedding");
        Path file = Golden.dir().resolve(emb.get("file").asText());
        String encoderName = jdiffusion.io.CheckpointLayouts.layout(family).textEncoders().get(index).name();
        Embeddings lib = Embeddings.folder(file.getParent());
        float[][] vectors = lib.vectors(emb.get("name").asText(), encoderName);
        assertNotNull(vectors, name + ": embedding " + emb.get("name") + " not found");
        assertEquals(emb.get("vectors").asInt(), vectors.length, name + " vectors");
        if (emb.has("pt_file")) {
            // the A1111 .pt twin (string_to_param, read by the safe pickle reader) holds the same vectors
            String pt = Path.of(emb.get("pt_file").asText()).getFileName().toString();
            float[][] fromPt = lib.vectors(pt, encoderName);
            assertEquals(vectors.length, fromPt.length);
            for (int i = 0; i < vectors.length; i++) {
                assertArrayEquals(vectors[i], fromPt[i], name + " .pt vector " + i);
            }
        }
        ClipTextEncoder encoder = ClipTextEncoder.load(weights);
        int width = encoder.config().width();
        float[] table = new float[vectors.length * width];
        for (int k = 0; k < vectors.length; k++) {
            System.arraycopy(vectors[k], 0, table, k * width, width);
        }
        int firstAdded = p.get("embedding").get("added_token_ids").properties().iterator().next().getValue().asInt();
        assertEquals(ClipTokenizer.VOCAB_SIZE, firstAdded, "the added ids follow the vocabulary");
        try (SafeTensors golden = Golden.tensors(manifest)) {
            JsonNode in = m.get("inputs").get("input_ids");
            long[] raw = golden.longs(in.get("tensor").asText());
            int batch = in.get("shape").get(0).asInt();
            int[] ids = new int[raw.length];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = Math.toIntExact(raw[i]);
            }
            ClipTextEncoder.Output out = encoder.forward(ids, batch, table);
            int rows = out.batch() * out.tokens();
            List<String> checked = new ArrayList<>();
            for (Map.Entry<String, JsonNode> o : m.get("outputs").properties()) {
                float[] actual = switch (o.getKey()) {
                    case "inputs_embeds" -> encoder.inputEmbeds(ids, table);
                    case "last_hidden_state" -> out.lastHiddenState();
                    case "penultimate" -> out.hidden(-2);
                    case "penultimate_ln" -> encoder.finalLayerNorm(out.hidden(-2), rows);
                    case "pooled" -> out.pooled();
                    case "text_embeds" -> out.textEmbeds();
                    default -> throw new AssertionError(name + ": unknown output " + o.getKey());
                };
                double atol = o.getValue().get("tolerance").get("atol").asDouble();
                Golden.assertClose(name + " " + o.getKey(), golden.floats(o.getValue().get("tensor").asText()), actual, atol);
                checked.add(o.getKey());
            }
            assertEquals(m.get("outputs").size(), checked.size());
            checkComfyTokenization(name, p, ids, vectors.length, lib, encoderName, index, family);
        }
    }

    /** ComfyUI's {@code embedding:name} prompts: the golden ids where they fit in 75 slots, else a new chunk. */
    private static void checkComfyTokenization(String name, JsonNode p, int[] goldenIds, int n, Embeddings lib,
                                               String encoderName, int index, Family family) {
        ClipTokenizer tok = family == Family.SD1 || index == 0 ? ClipTokenizer.clipL() : ClipTokenizer.openClip();
        JsonNode prompts = p.get("prompts_comfy");
        for (int r = 0; r < prompts.size(); r++) {
            WeightedChunks c = tok.encodeWeighted(prompts.get(r).asText(), ClipTokenizer.Grouping.SEGMENT, lib.lookup(encoderName));
            int[] golden = java.util.Arrays.copyOfRange(goldenIds, r * 77, (r + 1) * 77);
            JsonNode slots = p.get("embedding_slots").get(r);
            int lastSlot = slots.get(slots.size() - 1).get(0).asInt();
            int lastVector = slots.get(slots.size() - 1).get(1).asInt();
            boolean fits = lastVector == n - 1 && lastSlot <= ClipTokenizer.CHUNK_TOKENS;
            if (fits) {
                assertEquals(1, c.rows(), name + " prompt " + r + " rows");
                int[] ours = c.ids()[0].clone();
                for (int t = 0; t < ours.length; t++) {
                    if (ours[t] >= ClipTokenizer.VOCAB_SIZE) {
                        // a vector: the same vector diffusers put there (its added id is the vocabulary size + k)
                        assertArrayEquals(c.vectors().get(ours[t] - ClipTokenizer.VOCAB_SIZE),
                                lib.vectors(p.get("embedding").get("name").asText(), encoderName)[golden[t] - ClipTokenizer.VOCAB_SIZE],
                                name + " prompt " + r + " slot " + t);
                        ours[t] = golden[t];
                    }
                }
                assertArrayEquals(golden, ours, name + " prompt " + r + " ids");
            } else {
                // diffusers truncated the embedding; ComfyUI moves it whole (< 8 vectors) into a second chunk
                int firstSlot = -1;
                for (JsonNode s : slots) {
                    if (s.get(1).asInt() == 0) {
                        firstSlot = s.get(0).asInt();
                    }
                }
                assertEquals(2, c.rows(), name + " prompt " + r + " rows");
                int[] first = c.ids()[0];
                assertArrayEquals(java.util.Arrays.copyOfRange(golden, 0, firstSlot), java.util.Arrays.copyOfRange(first, 0, firstSlot),
                        name + " prompt " + r + " first chunk");
                assertEquals(ClipTokenizer.EOS, first[firstSlot], name + " prompt " + r + " first chunk ends before the embedding");
                int[] second = c.ids()[1];
                assertEquals(ClipTokenizer.BOS, second[0]);
                for (int k = 0; k < n; k++) {
                    assertEquals(ClipTokenizer.VOCAB_SIZE + k, second[1 + k], name + " prompt " + r + " chunk 2 slot " + (1 + k));
                }
                assertEquals(ClipTokenizer.EOS, second[1 + n]);
            }
        }
    }
}
