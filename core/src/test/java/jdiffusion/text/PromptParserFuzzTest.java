package jdiffusion.text;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Fuzz target (Jazzer) for the prompt-weight parser: any prompt gives non-empty runs whose weights are finite floats,
 * or a one-line IllegalArgumentException (nesting too deep, a weight that is not finite). Seeds: {@code
 * PromptParserFuzzTestInputs/weights/}.
 */
class PromptParserFuzzTest {
    @FuzzTest(maxDuration = "5s")
    @DictionaryEntries({"(", ")", ":", "\\(", "\\)", "1e400", "nan", "inf", "1.1", "-", "_", "e"})
    void weights(byte[] input) {
        String prompt = new String(input, StandardCharsets.UTF_8);
        List<PromptParser.Segment> segments;
        try {
            segments = PromptParser.parse(prompt);
        } catch (IllegalArgumentException expected) {
            assertFalse(expected.getMessage().isBlank());
            return;
        }
        for (PromptParser.Segment s : segments) {
            assertFalse(s.text().isEmpty(), "empty run in " + segments);
            assertTrue(Float.isFinite((float) s.weight()), s + " in " + segments);
        }
    }
}
