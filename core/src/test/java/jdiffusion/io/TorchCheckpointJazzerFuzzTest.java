package jdiffusion.io;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.code_intelligence.jazzer.junit.DictionaryEntries;
import com.code_intelligence.jazzer.junit.FuzzTest;
import java.lang.foreign.ValueLayout;

/**
 * Fuzz target (Jazzer, coverage-guided) for the safe pickle reader: any bytes give a checkpoint whose tensors then
 * read without error, or a one-line {@link ModelFormatException}; never another exception, code execution, a hang
 * or an out-of-memory. Complements {@link TorchPickleFuzzTest} (seeded random mutation). Seeds: {@code
 * TorchCheckpointJazzerFuzzTestInputs/checkpoint/} (a legacy and a zip checkpoint, and the malicious ones).
 */
class TorchCheckpointJazzerFuzzTest {
    @FuzzTest(maxDuration = "5s")
    @DictionaryEntries({"data.pkl", "collections", "OrderedDict", "torch._utils", "_rebuild_tensor_v2",
            "FloatStorage", "HalfStorage", "BFloat16Storage", "storage", "state_dict", "version", "byteorder"})
    void checkpoint(byte[] input) {
        try (SafeTensors st = TorchCheckpoint.read("fuzz.ckpt", input)) {
            for (String n : st.names()) {
                TensorInfo info = st.info(n);
                if (info.numel() < (1 << 20)) {
                    st.segment(n).toArray(ValueLayout.JAVA_BYTE);
                    if (info.dtype().isFloat()) {
                        st.floats(n);
                    }
                }
            }
        } catch (ModelFormatException expected) {
            String m = expected.getMessage();
            assertTrue(m != null && !m.isBlank() && !m.contains("\n"), "one line: " + m);
        }
    }
}
