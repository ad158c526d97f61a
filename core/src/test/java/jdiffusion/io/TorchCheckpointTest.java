package jdiffusion.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import jdiffusion.Golden;
import jdiffusion.io.TorchSaveWriter.Ordered;
import jdiffusion.io.TorchSaveWriter.Raw;
import jdiffusion.io.TorchSaveWriter.T;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The safe pickle reader on layouts written here: strided views, wrappers, containers, and hostile pickles. */
class TorchCheckpointTest {
    @TempDir
    Path tmp;

    private static byte[] floats(float... v) {
        ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) {
            b.putFloat(f);
        }
        return b.array();
    }

    private static Map<String, byte[]> storage(String key, byte[] bytes) {
        Map<String, byte[]> m = new LinkedHashMap<>();
        m.put(key, bytes);
        return m;
    }

    @Test
    void stridedViewsAndOffsetsAreReadAsTheirLogicalValues() throws Exception {
        // storage 0..11; a: 3x2 transpose of the 2x3 block at offset 2 (torch: s[2:8].view(2,3).t())
        float[] s = new float[12];
        for (int i = 0; i < s.length; i++) {
            s[i] = i;
        }
        Map<String, Object> sd = new LinkedHashMap<>();
        sd.put("t", new T("0", DType.F32, new long[] {3, 2}, new long[] {1, 3}, 2));
        sd.put("row", new T("0", DType.F32, new long[] {4}, new long[] {1}, 5));
        sd.put("every2", new T("0", DType.F32, new long[] {3}, new long[] {2}, 1));
        sd.put("bcast", new T("0", DType.F32, new long[] {2, 2}, new long[] {0, 1}, 10));
        sd.put("scalar", new T("0", DType.F32, new long[] {}, new long[] {}, 7));
        sd.put("empty", new T("0", DType.F32, new long[] {0, 4}, new long[] {4, 1}, 0));
        for (boolean legacy : new boolean[] {false, true}) {
            byte[] file = legacy ? TorchSaveWriter.legacy(new Ordered(sd), storage("0", floats(s)), Map.of("0", DType.F32))
                    : TorchSaveWriter.zip("archive", new Ordered(sd), storage("0", floats(s)), false);
            try (SafeTensors st = TorchCheckpoint.read("strided", file)) {
                assertEquals(legacy ? Container.TORCH_LEGACY : Container.TORCH_ZIP, st.container());
                assertArrayEquals(new float[] {2, 5, 3, 6, 4, 7}, st.floats("t"));
                assertArrayEquals(new int[] {3, 2}, st.info("t").dims());
                assertArrayEquals(new float[] {5, 6, 7, 8}, st.floats("row"));
                assertArrayEquals(new float[] {1, 3, 5}, st.floats("every2"));
                assertArrayEquals(new float[] {10, 11, 10, 11}, st.floats("bcast"));
                assertArrayEquals(new float[] {7}, st.floats("scalar"));
                assertEquals(0, st.floats("empty").length);
            }
        }
    }

    @Test
    void viewsBeyondTheirStorageAreRefused() throws Exception {
        Map<String, Object> sd = Map.of("w", new T("0", DType.F32, new long[] {2, 3}, new long[] {3, 1}, 1));
        byte[] file = TorchSaveWriter.zip("a", new Ordered(sd), storage("0", floats(1, 2, 3, 4, 5, 6)), false);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> TorchCheckpoint.read("x.ckpt", file));
        assertTrue(e.getMessage().contains("reaches element 6 of a storage of 6"), e.getMessage());
    }

    @Test
    void wrapperDictsAreUnwrappedAsSpandrelAndComfyUiDoAndAnyRootCanBePicked() throws Exception {
        Map<String, byte[]> st = new LinkedHashMap<>();
        st.put("0", floats(1, 2));
        st.put("1", floats(3, 4));
        Map<String, Object> top = new LinkedHashMap<>();
        top.put("params", new Ordered(Map.of("conv_first.weight", T.contiguous("0", DType.F32, 2))));
        top.put("params_ema", new Ordered(Map.of("conv_first.weight", T.contiguous("1", DType.F32, 2))));
        top.put("iter", 5);
        Path f = tmp.resolve("x4.pth");
        Files.write(f, TorchSaveWriter.zip("x4", top, st, false));
        try (SafeTensors s = SafeTensors.open(f)) {
            assertEquals("params_ema", s.pickle().root());
            assertArrayEquals(new float[] {3, 4}, s.floats("conv_first.weight"));
            assertEquals(Map.of("params", 1, "params_ema", 1, "", 2), s.pickle().dicts());
            assertEquals("5", s.pickle().scalars().get("iter"));
            assertEquals(2, s.pickle().tensors().size());
        }
        try (SafeTensors s = TorchCheckpoint.open(f, "params")) {
            assertArrayEquals(new float[] {1, 2}, s.floats("conv_first.weight"));
        }
        try (SafeTensors s = TorchCheckpoint.open(f, "")) {
            assertEquals(List.of("params.conv_first.weight", "params_ema.conv_first.weight"), List.copyOf(s.names()));
        }
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> TorchCheckpoint.open(f, "nope"));
        assertTrue(e.getMessage().contains("no dict of tensors named 'nope'"), e.getMessage());
    }

    @Test
    void aOneKeyDictIsUnwrappedAndOtherStructuresAreNamedByPath() throws Exception {
        Map<String, byte[]> st = storage("0", floats(1, 2, 3, 4));
        // A1111 embedding layout: no wrapper, nested dict of tensors, scalars beside
        Map<String, Object> top = new LinkedHashMap<>();
        top.put("string_to_token", Map.of("*", 265));
        top.put("string_to_param", Map.of("*", T.contiguous("0", DType.F32, 2, 2)));
        top.put("name", "emb");
        try (SafeTensors s = TorchCheckpoint.read("e.pt", TorchSaveWriter.zip("e", top, st, false))) {
            assertEquals("", s.pickle().root());
            assertEquals(List.of("string_to_param.*"), List.copyOf(s.names()));
            assertEquals("emb", s.pickle().scalars().get("name"));
        }
        try (SafeTensors s = TorchCheckpoint.read("m.pt", TorchSaveWriter.zip("m", Map.of("model",
                Map.of("w", T.contiguous("0", DType.F32, 4))), st, false))) {
            assertEquals("model", s.pickle().root());
            assertEquals(List.of("w"), List.copyOf(s.names()));
        }
    }

    @Test
    void theRealEsrganPthShowsItsParamsEma() throws Exception {
        try (SafeTensors pth = SafeTensors.open(Golden.model("tiny-esrgan-realesrgan-x4.pth"));
             SafeTensors twin = SafeTensors.open(Golden.model("tiny-esrgan-realesrgan-x4-fp16.safetensors"))) {
            assertEquals("params_ema", pth.pickle().root());
            assertEquals(Container.TORCH_ZIP, pth.container());
            assertEquals(twin.names(), pth.names());
            for (String n : twin.names()) {
                assertEquals(DType.F32, pth.info(n).dtype());
                assertArrayEquals(twin.floats(n), pth.floats(n), n);
            }
        }
    }

    @Test
    void compressedRecordsAreRefused() throws Exception {
        Map<String, Object> sd = Map.of("w", T.contiguous("0", DType.F32, 2));
        byte[] file = TorchSaveWriter.zip("a", new Ordered(sd), storage("0", floats(1, 2)), true);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> TorchCheckpoint.read("c.ckpt", file));
        assertTrue(e.getMessage().contains("'a/data.pkl' is compressed"), e.getMessage());
    }

    /** A pickle whose dict value is {@code module.name(arg)} through GLOBAL + REDUCE. */
    private static byte[] reducePayload(String module, String name) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        b.write('c');
        b.writeBytes((module + "\n" + name + "\n").getBytes(StandardCharsets.US_ASCII));
        b.writeBytes(new byte[] {'X', 4, 0, 0, 0, 'e', 'c', 'h', 'o', (byte) 0x85, 'R'});
        return b.toByteArray();
    }

    @Test
    void everyGlobalOutsideTheAllowListIsRefusedByName() throws Exception {
        String[][] globals = {{"os", "system"}, {"posix", "system"}, {"builtins", "eval"}, {"__builtin__", "exec"},
            {"subprocess", "Popen"}, {"torch.serialization", "load"}, {"numpy.core.multiarray", "_reconstruct"},
            {"torch._utils", "_rebuild_tensor"}, {"collections", "OrderedDictX"}, {"torch", "Storage"}};
        for (String[] g : globals) {
            Map<String, Object> sd = new LinkedHashMap<>();
            sd.put("w", T.contiguous("0", DType.F32, 1));
            sd.put("x", new Raw(reducePayload(g[0], g[1])));
            byte[] file = TorchSaveWriter.zip("a", Map.of("state_dict", new Ordered(sd)), storage("0", floats(1)), false);
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> TorchCheckpoint.read("X.ckpt", file));
            assertTrue(e.getMessage().startsWith("refused pickle global '" + g[0] + "." + g[1] + "' in X.ckpt"), e.getMessage());
            assertFalse(e.getMessage().contains("\n"));
        }
    }

    @Test
    void stackGlobalOfProtocol4IsCheckedTheSameWay() {
        // PROTO 4, SHORT_BINUNICODE "builtins", SHORT_BINUNICODE "eval", STACK_GLOBAL, ...
        byte[] p = {(byte) 0x80, 4, (byte) 0x8c, 8, 'b', 'u', 'i', 'l', 't', 'i', 'n', 's', (byte) 0x94, (byte) 0x8c, 4, 'e', 'v', 'a',
            'l', (byte) 0x94, (byte) 0x93, (byte) 0x94, ')', 'R', '.'};
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> TorchPickle.read("p.pkl", p));
        assertTrue(e.getMessage().startsWith("refused pickle global 'builtins.eval' in p.pkl"), e.getMessage());
    }

    @Test
    void instantiatingOpcodesAreRefused() {
        byte[][] cases = {
            {'(', 'i', 'o', 's', '\n', 's', 'y', 's', 't', 'e', 'm', '\n', '.'}, // INST
            {'(', 'c', 'c', 'o', 'l', 'l', 'e', 'c', 't', 'i', 'o', 'n', 's', '\n', 'O', 'r', 'd', 'e', 'r', 'e', 'd', 'D', 'i', 'c',
                't', '\n', 'o', '.'}, // OBJ of an allowed global
            {(byte) 0x80, 2, 'c', 'c', 'o', 'l', 'l', 'e', 'c', 't', 'i', 'o', 'n', 's', '\n', 'O', 'r', 'd', 'e', 'r', 'e', 'd', 'D',
                'i', 'c', 't', '\n', ')', (byte) 0x81, '.'}, // NEWOBJ
            {(byte) 0x80, 2, (byte) 0x82, 1, '.'}, // EXT1
        };
        String[] names = {"INST", "OBJ", "NEWOBJ", "EXT"};
        for (int i = 0; i < cases.length; i++) {
            byte[] p = cases[i];
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> TorchPickle.read("p", p));
            assertTrue(e.getMessage().contains("refused " + names[i]), e.getMessage());
        }
    }

    @Test
    void persistentIdsOtherThanStoragesAreRefused() {
        byte[] p = {(byte) 0x80, 2, 'X', 3, 0, 0, 0, 'a', 'b', 'c', (byte) 0x85, 'Q', '.'};
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> TorchPickle.read("p", p));
        assertTrue(e.getMessage().contains("refused persistent id"), e.getMessage());
    }

    @Test
    void selfContainingAndDeepStructuresFailCleanly() throws Exception {
        // l = []; l.append(l)
        byte[] cyclic = {(byte) 0x80, 2, ']', 'q', 0, 'h', 0, 'a', '.'};
        Object v = TorchPickle.read("c", cyclic);
        assertTrue(v instanceof List<?>);
        Map<String, byte[]> st = storage("0", floats(1));
        byte[] cyclicCkpt = TorchSaveWriter.zip("a", Map.of("x", new Raw(new byte[] {']', 'q', 0, 'h', 0, 'a'})), st, false);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> TorchCheckpoint.read("c", cyclicCkpt));
        assertTrue(e.getMessage().contains("contains itself"), e.getMessage());
        // 100 000 nested lists: the interpreter is a loop, the naming walk is depth-bounded
        ByteArrayOutputStream deep = new ByteArrayOutputStream();
        deep.writeBytes(new byte[] {'}', 'X', 1, 0, 0, 0, 'k'});
        int n = 100_000;
        for (int i = 0; i < n; i++) {
            deep.write(']');
        }
        for (int i = 0; i < n - 1; i++) {
            deep.write('a');
        }
        deep.write('s');
        e = assertThrows(ModelFormatException.class,
                () -> TorchCheckpoint.read("d", TorchSaveWriter.zip("a", new Raw(deep.toByteArray()), Map.of(), false)));
        assertTrue(e.getMessage().contains("nested deeper than"), e.getMessage());
        // a dict key that is a list cannot be hashed: refused before it could recurse
        byte[] listKey = {(byte) 0x80, 2, '}', ']', 'N', 's', '.'};
        e = assertThrows(ModelFormatException.class, () -> TorchPickle.read("k", listKey));
        assertTrue(e.getMessage().contains("dict key of type list"), e.getMessage());
    }

    @Test
    void zip64ArchivesAreRead() throws Exception {
        // more than 65535 records: java.util.zip writes the zip64 end records, as torch does for large checkpoints
        Map<String, byte[]> st = new LinkedHashMap<>();
        Map<String, Object> sd = new LinkedHashMap<>();
        int n = 70_000;
        for (int i = 0; i < n; i++) {
            String key = Integer.toString(i);
            st.put(key, floats(i));
            sd.put("t" + i, T.contiguous(key, DType.F32, 1));
        }
        byte[] file = TorchSaveWriter.zip("big", new Ordered(sd), st, false);
        ByteBuffer tail = ByteBuffer.wrap(file, file.length - 22 - 20 - 56, 4).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(0x06064b50, tail.getInt(), "the archive has a zip64 end record");
        try (SafeTensors s = TorchCheckpoint.read("zip64", file)) {
            assertEquals(n, s.names().size());
            assertArrayEquals(new float[] {69_999}, s.floats("t69999"));
            assertArrayEquals(new float[] {12_345}, s.floats("t12345"));
        }
    }

    @Test
    void hugeKeyPathsAreRefused() throws Exception {
        String key = "k".repeat(5000);
        byte[] file = TorchSaveWriter.zip("a", Map.of(key, Map.of("w", T.contiguous("0", DType.F32, 1))), storage("0", floats(1)), false);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> TorchCheckpoint.read("k", file));
        assertTrue(e.getMessage().contains("key path longer than"), e.getMessage());
    }

    @Test
    void boundsOnStringsAndTruncation() {
        byte[] huge = {(byte) 0x80, 2, (byte) 0x8d, 0, 0, 0, 0, 0, 0, 0, 0x40, '.'};
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> TorchPickle.read("h", huge));
        assertTrue(e.getMessage().contains("longer than"), e.getMessage());
        byte[] truncated = {(byte) 0x80, 2, 'X', 100, 0, 0, 0, 'a'};
        e = assertThrows(ModelFormatException.class, () -> TorchPickle.read("t", truncated));
        assertTrue(e.getMessage().startsWith("t: truncated pickle"), e.getMessage());
        byte[] noStop = {(byte) 0x80, 2, 'N'};
        e = assertThrows(ModelFormatException.class, () -> TorchPickle.read("s", noStop));
        assertTrue(e.getMessage().contains("truncated"), e.getMessage());
    }

    @Test
    void legacyAndZipTwinsOfAFullCheckpointReadTheSame() throws Exception {
        Path zip = tmp.resolve("twin.ckpt");
        Path legacy = tmp.resolve("twin-legacy.ckpt");
        try (SafeTensors src = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            TorchSaveWriter.convert(src, zip, "state_dict", false);
            TorchSaveWriter.convert(src, legacy, "state_dict", true);
            for (Path p : List.of(zip, legacy)) {
                try (SafeTensors c = SafeTensors.open(p)) {
                    assertEquals(src.names(), c.names());
                    for (String n : List.of("model.diffusion_model.out.2.weight", "first_stage_model.decoder.conv_out.bias",
                            "cond_stage_model.transformer.text_model.embeddings.position_ids")) {
                        assertEquals(src.info(n).dtype(), c.info(n).dtype());
                        assertArrayEquals(src.segment(n).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE),
                                c.segment(n).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE), n);
                    }
                }
            }
        }
    }
}
