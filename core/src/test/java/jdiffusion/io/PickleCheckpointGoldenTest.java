package jdiffusion.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import jdiffusion.Golden;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * The {@code ckpt_*} golden manifests: every listed pickle checkpoint is either read with exactly the recorded
 * tensors (dtype, shape, values, wrapper dict) or refused with an error naming the payload's global, and then the
 * file the payload would create must not exist.
 */
class PickleCheckpointGoldenTest {

    @TestFactory
    Stream<DynamicTest> cases() {
        List<DynamicTest> tests = new ArrayList<>();
        for (Path manifest : Golden.manifestsIn("ckpt", "ckpt_")) {
            JsonNode m = Golden.json(manifest);
            String caseName = Golden.caseName(manifest);
            m.get("params").get("files").properties().forEach(f -> tests.add(DynamicTest.dynamicTest(
                    caseName + " " + f.getKey(), () -> check(manifest, f.getKey(), f.getValue()))));
        }
        return tests.stream();
    }

    private static void check(Path manifest, String file, JsonNode spec) throws Exception {
        Path path = Golden.dir().resolve(file);
        if (spec.get("must_refuse").asBoolean()) {
            checkRefused(path, spec);
            return;
        }
        Container expected = switch (spec.get("format").asText()) {
            case "zip" -> Container.TORCH_ZIP;
            case "legacy" -> Container.TORCH_LEGACY;
            default -> throw new AssertionError("unknown format " + spec.get("format"));
        };
        String group = spec.get("expected_tensors").asText().replaceFirst("^out\\.", "").replace(".<key>", "");
        try (SafeTensors ckpt = SafeTensors.open(path); SafeTensors want = Golden.tensors(manifest)) {
            assertEquals(expected, ckpt.container());
            JsonNode top = spec.get("top_level");
            if (top != null && top.has("state_dict")) {
                assertEquals("state_dict", ckpt.pickle().root(), "the wrapper dict shown");
            }
            if (top != null) {
                top.properties().forEach(e -> {
                    if (e.getValue().isNumber()) {
                        assertEquals(e.getValue().asText(), ckpt.pickle().scalars().get(e.getKey()), "scalar " + e.getKey());
                    }
                });
            }
            Set<String> names = new LinkedHashSet<>();
            spec.get("tensors").fieldNames().forEachRemaining(names::add);
            assertEquals(names, ckpt.names(), "tensor names");
            for (Map.Entry<String, JsonNode> e : spec.get("tensors").properties()) {
                String key = e.getKey();
                JsonNode t = e.getValue();
                TensorInfo info = ckpt.info(key);
                assertEquals(dtype(t.get("dtype").asText()), info.dtype(), key);
                assertArrayEquals(Golden.shape(t), info.dims(), key);
                String ref = "out." + group + "." + key;
                byte[] expectedBytes = want.segment(ref).toArray(ValueLayout.JAVA_BYTE);
                assertEquals(want.info(ref).dtype(), info.dtype(), key + " stored dtype");
                assertArrayEquals(expectedBytes, ckpt.segment(key).toArray(ValueLayout.JAVA_BYTE), key + " values");
                if (info.dtype().isFloat()) {
                    assertArrayEquals(want.floats(ref), ckpt.floats(key), key + " as floats");
                } else {
                    assertArrayEquals(want.longs(ref), ckpt.longs(key), key + " as longs");
                }
            }
        }
        // the same bytes through the in-memory entry point
        try (SafeTensors again = TorchCheckpoint.read(path.getFileName().toString(), Files.readAllBytes(path))) {
            assertEquals(spec.get("tensors").size(), again.names().size());
        }
    }

    private static void checkRefused(Path path, JsonNode spec) throws Exception {
        Path pwned = Path.of("/tmp/jdiffusion-pwned");
        FileTime before = Files.exists(pwned) ? Files.getLastModifiedTime(pwned) : null;
        List<String> payload = new ArrayList<>();
        spec.get("payload_global").forEach(g -> payload.add(g.asText()));
        for (int attempt = 0; attempt < 2; attempt++) {
            ModelFormatException e = attempt == 0
                    ? assertThrows(ModelFormatException.class, () -> SafeTensors.open(path).close())
                    : assertThrows(ModelFormatException.class, () -> TorchCheckpoint.read("x", Files.readAllBytes(path)).close());
            String msg = e.getMessage();
            assertFalse(msg.contains("\n"), "one line: " + msg);
            assertTrue(payload.stream().anyMatch(g -> msg.contains("refused pickle global '" + g + "'")),
                    "names the payload " + payload + ": " + msg);
        }
        // the loaders in front refuse it too
        assertThrows(ModelFormatException.class, () -> Checkpoint.open(path).close());
        FileTime after = Files.exists(pwned) ? Files.getLastModifiedTime(pwned) : null;
        assertEquals(before, after, "the payload must not have run (" + pwned + ")");
        if (before == null) {
            assertFalse(Files.exists(pwned), "the payload must not have run");
        }
    }

    private static DType dtype(String torchName) {
        return switch (torchName) {
            case "float32" -> DType.F32;
            case "float16" -> DType.F16;
            case "bfloat16" -> DType.BF16;
            case "float64" -> DType.F64;
            case "int64" -> DType.I64;
            case "int32" -> DType.I32;
            case "int16" -> DType.I16;
            case "int8" -> DType.I8;
            case "uint8" -> DType.U8;
            case "bool" -> DType.BOOL;
            default -> throw new AssertionError("unknown dtype " + torchName);
        };
    }
}
