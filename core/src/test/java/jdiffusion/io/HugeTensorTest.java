package jdiffusion.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Issue 16 item 11: a tensor past 2^31 - 1 elements is an error naming the file and the tensor (a sparse file). */
class HugeTensorTest {
    @TempDir
    Path dir;

    @Test
    void tooManyElementsNamesFileAndTensor() throws Exception {
        long n = (1L << 31) + 16;
        Path file = dir.resolve("huge.safetensors");
        byte[] h = ("{\"big.weight\":{\"dtype\":\"U8\",\"shape\":[" + n + "],\"data_offsets\":[0," + n + "]}}")
                .getBytes(StandardCharsets.UTF_8);
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(h.length).array());
            f.write(h);
            f.setLength(8 + h.length + n); // a hole: no disk used
        }
        try (SafeTensors st = SafeTensors.open(file)) {
            assertEquals(n, st.info("big.weight").numel());
            for (var call : java.util.List.<Runnable>of(() -> st.floats("big.weight"), () -> st.longs("big.weight"),
                    () -> st.doubles("big.weight"))) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::run);
                assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("'big.weight'")
                        && e.getMessage().contains(Long.toString(n)), e.getMessage());
            }
        }
    }
}
