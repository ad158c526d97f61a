package jdiffusion.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/** Golden cases {@code tokenizer_clip*}: every prompt's raw ids, BPE tokens and padded rows for both pad conventions. */
class ClipTokenizerGoldenTest {
    /** Which manifest param holds the pad id of each output. */
    private static final Map<String, String> PAD_PARAM = Map.of(
            "ids_pad_eos", "pad_id_tokenizer",
            "ids_pad_bang", "pad_id_tokenizer_2");

    @TestFactory
    Stream<DynamicTest> tokenizerCases() {
        return Golden.manifests("tokenizer_clip").stream().flatMap(ClipTokenizerGoldenTest::casesOf);
    }

    private static Stream<DynamicTest> casesOf(Path manifest) {
        String name = Golden.caseName(manifest);
        JsonNode m = Golden.json(manifest);
        JsonNode params = m.get("params");
        List<DynamicTest> tests = new ArrayList<>();
        ClipTokenizer tok = ClipTokenizer.clipL();
        for (JsonNode p : params.get("prompts")) {
            String prompt = p.get("prompt").asText();
            int index = p.get("index").asInt();
            tests.add(DynamicTest.dynamicTest(name + " prompt " + index + " raw ids and tokens", () -> {
                assertArrayEquals(ints(p.get("raw_ids_no_special")), tok.encode(prompt), "ids of " + prompt);
                List<String> tokens = new ArrayList<>();
                p.get("tokens").forEach(t -> tokens.add(t.asText()));
                assertEquals(tokens, tok.tokens(prompt), "tokens of " + prompt);
            }));
        }
        m.get("outputs").fields().forEachRemaining(out -> tests.add(DynamicTest.dynamicTest(name + " " + out.getKey(), () -> {
            String padParam = PAD_PARAM.get(out.getKey());
            if (padParam == null) {
                throw new AssertionError(name + ": unknown output " + out.getKey() + " (no pad convention known for it)");
            }
            // the golden rows come from the diffusers (HuggingFace) tokenizers, pad token registered as added token
            ClipTokenizer t = ClipTokenizer.diffusers(params.get(padParam).asInt());
            long[] expected;
            try (SafeTensors st = Golden.tensors(manifest)) {
                expected = st.longs(out.getValue().get("tensor").asText());
            }
            JsonNode prompts = params.get("prompts");
            assertEquals(prompts.size() * ClipTokenizer.CONTEXT_LENGTH, expected.length);
            for (int i = 0; i < prompts.size(); i++) {
                int[] row = t.encodePadded(prompts.get(i).get("prompt").asText());
                for (int j = 0; j < row.length; j++) {
                    assertEquals(expected[i * ClipTokenizer.CONTEXT_LENGTH + j], row[j],
                            name + " " + out.getKey() + " prompt " + i + " position " + j);
                }
            }
        })));
        return tests.stream();
    }

    static int[] ints(JsonNode array) {
        int[] a = new int[array.size()];
        for (int i = 0; i < a.length; i++) {
            a[i] = array.get(i).asInt();
        }
        return a;
    }
}
