package jdiffusion.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import jdiffusion.Golden;
import jdiffusion.io.SafeTensors;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Golden cases {@code tokenizer_t5*}: every prompt's raw ids and pieces, and the padded/truncated rows of every
 * {@code ids_N} output (N = the row length, read from the output's shape).
 */
class T5TokenizerGoldenTest {
    private static final Pattern IDS_N = Pattern.compile("ids_(\\d+)");

    @TestFactory
    Stream<DynamicTest> tokenizerCases() {
        return Golden.manifestsIn("sd35", "tokenizer_t5").stream().flatMap(T5TokenizerGoldenTest::casesOf);
    }

    private static Stream<DynamicTest> casesOf(Path manifest) {
        String name = Golden.caseName(manifest);
        JsonNode m = Golden.json(manifest);
        JsonNode params = m.get("params");
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode p : params.get("prompts")) {
            String prompt = p.get("prompt").asText();
            int index = p.get("index").asInt();
            tests.add(DynamicTest.dynamicTest(name + " prompt " + index + " raw ids and pieces", () -> {
                T5Tokenizer tok = T5Tokenizer.get();
                List<String> pieces = new ArrayList<>();
                p.get("tokens").forEach(t -> pieces.add(t.asText()));
                assertEquals(pieces, tok.tokens(prompt), "pieces of " + prompt);
                assertArrayEquals(ints(p.get("raw_ids")), tok.encode(prompt), "ids of " + prompt);
            }));
        }
        m.get("outputs").fields().forEachRemaining(out -> tests.add(DynamicTest.dynamicTest(name + " " + out.getKey(), () -> {
            Matcher n = IDS_N.matcher(out.getKey());
            if (!n.matches()) {
                throw new AssertionError(name + ": unknown output " + out.getKey());
            }
            int[] shape = Golden.shape(out.getValue());
            int length = shape[1];
            assertEquals(Integer.parseInt(n.group(1)), length, "row length of " + out.getKey());
            long[] expected;
            try (SafeTensors st = Golden.tensors(manifest)) {
                expected = st.longs(out.getValue().get("tensor").asText());
            }
            JsonNode prompts = params.get("prompts");
            assertEquals(prompts.size(), shape[0]);
            for (int i = 0; i < prompts.size(); i++) {
                String prompt = prompts.get(i).get("prompt").asText();
                int[] row = T5Tokenizer.get().encodePadded(prompt, length);
                int[] want = new int[length];
                for (int j = 0; j < length; j++) {
                    want[j] = Math.toIntExact(expected[i * length + j]);
                }
                assertArrayEquals(want, row, "row " + i + " (" + prompt + ") of " + out.getKey());
                String flag = "truncated_at_" + length;
                if (prompts.get(i).has(flag)) {
                    assertEquals(prompts.get(i).get(flag).asBoolean(), T5Tokenizer.get().encode(prompt).length > length - 1,
                            flag + " of prompt " + i);
                }
            }
        })));
        return tests.stream();
    }

    private static int[] ints(JsonNode array) {
        int[] r = new int[array.size()];
        for (int i = 0; i < r.length; i++) {
            r[i] = array.get(i).asInt();
        }
        return r;
    }
}
