package jdiffusion.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.stream.Stream;
import jdiffusion.Golden;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafeTensorsWriterTest {
    @TempDir
    Path dir;

    @Test
    void roundTripsEveryDtypeAndTheMetadata() throws Exception {
        Path p = dir.resolve("t.safetensors");
        float[] values = {0f, 1f, -2.5f, 3.14159f, 1e-3f, 65504f};
        SafeTensorsWriter.to(p).metadata("format", "pt").metadata("note", "ünïcode")
                .add("f32", DType.F32, new long[] {2, 3}, values)
                .add("f16", DType.F16, new long[] {6}, values)
                .add("bf16", DType.BF16, new long[] {3, 2}, values)
                .addLongs("ids", new long[] {1, 3}, new long[] {0, 1, Long.MAX_VALUE})
                .add("scalar", DType.F32, new long[] {}, new float[] {7f})
                .write();
        byte[] raw = Files.readAllBytes(p);
        long headerLen = ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertEquals(0, (8 + headerLen) % 8, "data section starts 8-byte aligned");
        try (SafeTensors st = SafeTensors.open(p)) {
            assertEquals(Map.of("format", "pt", "note", "ünïcode"), st.metadata());
            assertEquals(5, st.names().size());
            assertArrayEquals(values, st.floats("f32"));
            assertArrayEquals(new long[] {2, 3}, st.info("f32").shape());
            assertArrayEquals(new float[] {0f, 1f, -2.5f, 3.140625f, 0.0010004044f, 65504f}, st.floats("f16"));
            assertArrayEquals(new float[] {0f, 1f, -2.5f, 3.140625f, 0.00099945068359375f, 65536f}, st.floats("bf16"));
            assertArrayEquals(new long[] {0, 1, Long.MAX_VALUE}, st.longs("ids"));
            assertEquals(DType.I64, st.info("ids").dtype());
            assertArrayEquals(new float[] {7f}, st.floats("scalar"));
        }
    }

    @Test
    void halfPrecisionRoundsToNearestEven() {
        // 1 + 2^-11 lies exactly between two fp16 values: ties go to the even one (1.0); just above goes up
        assertEquals(1.0f, Float.float16ToFloat(Float.floatToFloat16(1f + 0x1p-11f)));
        // bf16 keeps 8 mantissa bits: 1 + 2^-8 is a tie -> 1.0, 1 + 3 * 2^-8 is a tie -> 1 + 2^-6 (even)
        assertEquals(1.0f, Float.intBitsToFloat(SafeTensorsWriter.toBf16(1f + 0x1p-8f) << 16));
        assertEquals(1f + 0x1p-6f, Float.intBitsToFloat(SafeTensorsWriter.toBf16(1f + 3 * 0x1p-8f) << 16));
        assertEquals(1f + 0x1p-7f, Float.intBitsToFloat(SafeTensorsWriter.toBf16(1f + 0x1p-8f + 0x1p-12f) << 16));
        assertTrue(Float.isNaN(Float.intBitsToFloat(SafeTensorsWriter.toBf16(Float.NaN) << 16)));
        assertEquals(Float.NEGATIVE_INFINITY, Float.intBitsToFloat(SafeTensorsWriter.toBf16(Float.NEGATIVE_INFINITY) << 16));
    }

    @Test
    void streamsTensorsLargerThanOneChunk() throws Exception {
        Path p = dir.resolve("big.safetensors");
        int n = 700_001; // several chunks and a ragged end
        SafeTensorsWriter.to(p).add("x", DType.F32, new long[] {n}, (start, buf, count) -> {
            for (int i = 0; i < count; i++) {
                buf[i] = start + i;
            }
        }).write();
        try (SafeTensors st = SafeTensors.open(p)) {
            float[] f = st.floats("x");
            for (int i = 0; i < n; i++) {
                if (f[i] != (float) i) {
                    throw new AssertionError("element " + i + " is " + f[i]);
                }
            }
        }
    }

    @Test
    void neverOverwritesSilentlyAndLeavesNoTemporaryFile() throws Exception {
        Path p = dir.resolve("keep.safetensors");
        Files.writeString(p, "precious");
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> SafeTensorsWriter.to(p).add("a", DType.F32, new long[] {1}, new float[] {1}).write());
        assertEquals(p + ": already exists (refusing to overwrite)", e.getMessage());
        assertEquals("precious", Files.readString(p));
        SafeTensorsWriter.to(p).overwrite(true).add("a", DType.F32, new long[] {1}, new float[] {1}).write();
        try (SafeTensors st = SafeTensors.open(p)) {
            assertArrayEquals(new float[] {1}, st.floats("a"));
        }
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(1, s.count(), "only the target remains");
        }
    }

    @Test
    void failedWriteLeavesNothingBehind() throws Exception {
        Path p = dir.resolve("fail.safetensors");
        SafeTensorsWriter w = SafeTensorsWriter.to(p).add("a", DType.F32, new long[] {4}, (start, buf, count) -> {
            throw new IllegalStateException("source failed");
        });
        assertThrows(IllegalStateException.class, w::write);
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(0, s.count());
        }
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> SafeTensorsWriter.to(dir.resolve("no/such/dir/x.safetensors")).write());
        assertTrue(e.getMessage().contains("does not exist"), e.getMessage());
    }

    @Test
    void rejectsInconsistentTensors() {
        SafeTensorsWriter w = SafeTensorsWriter.to(dir.resolve("x.safetensors"));
        assertThrows(IllegalArgumentException.class, () -> w.add("a", DType.F32, new long[] {3}, new float[2]));
        assertThrows(IllegalArgumentException.class, () -> w.add("a", DType.I64, new long[] {2}, new float[2]));
        w.add("a", DType.F32, new long[] {2}, new float[2]);
        assertThrows(IllegalArgumentException.class, () -> w.add("a", DType.F32, new long[] {2}, new float[2]));
        assertThrows(IllegalArgumentException.class, () -> w.add("__metadata__", DType.F32, new long[] {1}, new float[1]));
    }

    @Test
    void fp32TwinOfTheTinySd1CheckpointHoldsTheSameValues() throws Exception {
        Path out = dir.resolve("tiny-sd1-fp32.safetensors");
        try (SafeTensors src = SafeTensors.open(Golden.model("tiny-sd1-fp16.safetensors"))) {
            SafeTensorsWriter.convert(src, out, DType.F32, false);
            try (SafeTensors dst = SafeTensors.open(out)) {
                assertEquals(src.names(), dst.names());
                assertEquals(src.metadata(), dst.metadata());
                for (String n : src.names()) {
                    TensorInfo a = src.info(n);
                    TensorInfo b = dst.info(n);
                    assertArrayEquals(a.shape(), b.shape(), n);
                    if (a.dtype().isFloat()) {
                        assertEquals(DType.F32, b.dtype(), n);
                        assertArrayEquals(src.floats(n), dst.floats(n), n);
                    } else {
                        assertEquals(DType.I64, b.dtype(), n);
                        assertArrayEquals(src.longs(n), dst.longs(n), n);
                    }
                }
            }
        }
    }
}
