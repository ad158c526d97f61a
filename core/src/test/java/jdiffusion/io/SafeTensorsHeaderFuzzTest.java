package jdiffusion.io;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Fuzz target (Jazzer) for the safetensors header parser: any bytes give either a header whose every tensor lies
 * inside the data section with a size matching its dtype and shape, or a one-line {@link ModelFormatException};
 * never another exception, a hang or an out-of-memory. The first byte picks the data section's size, the rest is the
 * header. Seeds: {@code SafeTensorsHeaderFuzzTestInputs/header/}; regression mode (every test run) runs them, the
 * fuzz run explores (see README, "Hardening").
 */
class SafeTensorsHeaderFuzzTest {
    private static final long[] DATA_SIZES = {0, 8, 64, 1024, 1L << 20, 1L << 40};

    @FuzzTest(maxDuration = "5s")
    @DictionaryEntries({"\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"__metadata__\"", "\"F16\"", "\"F32\"",
            "\"BF16\"", "\"I64\"", "\"U8\"", "\"F64\"", "\"BOOL\"", "[0,", "]}", "{\"", "\":{"})
    void header(byte[] input) {
        if (input.length == 0) {
            return;
        }
        long dataSize = DATA_SIZES[(input[0] & 0xff) % DATA_SIZES.length];
        byte[] header = Arrays.copyOfRange(input, 1, input.length);
        Map<String, String> meta = new LinkedHashMap<>();
        Map<String, TensorInfo> infos;
        try {
            infos = SafeTensors.parseHeader("fuzz.safetensors", header, dataSize, meta);
        } catch (ModelFormatException expected) {
            assertTrue(expected.getMessage().startsWith("fuzz.safetensors: "), expected.getMessage());
            assertTrue(!expected.getMessage().contains("\n"), "one line: " + expected.getMessage());
            return;
        }
        for (TensorInfo t : infos.values()) {
            assertTrue(t.begin() >= 0 && t.begin() <= t.end() && t.end() <= dataSize, t.toString());
            assertTrue(t.end() - t.begin() == t.numel() * t.dtype().size(), t.toString());
        }
    }
}
