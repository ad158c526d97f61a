package jdiffusion.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import jdiffusion.Golden;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every bad-input case of the safetensors reader fails with one line naming the file and the problem. */
class SafeTensorsBadInputTest {
    @TempDir
    Path dir;

    /** A file with the given header JSON and data bytes. */
    private Path file(String name, String header, int dataBytes) throws Exception {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h);
        Path p = dir.resolve(name);
        Files.write(p, b.array());
        return p;
    }

    private String fails(Path p) {
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> SafeTensors.open(p).close());
        String m = e.getMessage();
        assertTrue(m.startsWith(p.toString() + ": "), "message names the file: " + m);
        assertFalse(m.contains("\n"), "one line: " + m);
        return m;
    }

    @Test
    void aValidFileOpens() throws Exception {
        Path p = file("ok.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
        try (SafeTensors st = SafeTensors.open(p)) {
            assertEquals(1, st.names().size());
            assertEquals(2, st.floats("a").length);
        }
    }

    @Test
    void fileShorterThanTheLengthField() throws Exception {
        Path p = dir.resolve("tiny.safetensors");
        Files.write(p, new byte[] {1, 2, 3});
        assertTrue(fails(p).contains("truncated file (3 bytes"));
    }

    @Test
    void truncatedGoldenCheckpoint() throws Exception {
        byte[] all = Files.readAllBytes(Golden.model("tiny-sd1-fp16.safetensors"));
        Path p = dir.resolve("cut.safetensors");
        Files.write(p, Arrays.copyOf(all, all.length - 1000));
        String m = fails(p);
        assertTrue(m.contains("outside the data section") && m.contains("truncated"), m);
    }

    @Test
    void headerLengthPastTheEndOfTheFile() throws Exception {
        Path p = dir.resolve("long.safetensors");
        ByteBuffer b = ByteBuffer.allocate(64).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(1000).put("{}".getBytes(StandardCharsets.UTF_8));
        Files.write(p, b.array());
        String m = fails(p);
        assertTrue(m.contains("header length 1000 runs past the end of the 64-byte file"), m);
    }

    @Test
    void absurdHeaderLength() throws Exception {
        Path p = dir.resolve("huge.safetensors");
        ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(-5L);
        Files.write(p, b.array());
        assertTrue(fails(p).contains("not a safetensors file (header length"));
    }

    @Test
    void offsetsOutsideTheData() throws Exception {
        Path p = file("outside.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 16);
        String m = fails(p);
        assertTrue(m.contains("tensor 'a'") && m.contains("data_offsets [8, 24] outside the data section of 16 bytes"), m);
    }

    @Test
    void negativeOffsets() throws Exception {
        Path p = file("neg.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 8);
        assertTrue(fails(p).contains("tensor 'a' has data_offsets [-4, 0] outside"));
    }

    @Test
    void overlappingTensors() throws Exception {
        Path p = file("overlap.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
        String m = fails(p);
        assertTrue(m.contains("tensors 'a' and 'b' overlap"), m);
    }

    @Test
    void unknownDtype() throws Exception {
        Path p = file("dtype.safetensors", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
        assertTrue(fails(p).contains("tensor 'a' has unknown dtype 'F8_E4M3'"));
    }

    @Test
    void byteSizeDoesNotMatchTheShape() throws Exception {
        Path p = file("size.safetensors", "{\"a\":{\"dtype\":\"F16\",\"shape\":[3,2],\"data_offsets\":[0,8]}}", 8);
        String m = fails(p);
        assertTrue(m.contains("tensor 'a' holds 8 bytes but shape [3,2] of F16 needs 12"), m);
    }

    @Test
    void badJson() throws Exception {
        assertTrue(fails(file("json.safetensors", "{\"a\": [1, 2", 0)).contains("header is not valid JSON"));
        assertTrue(fails(file("array.safetensors", "[1, 2, 3]", 0)).contains("header is not a JSON object"));
        assertTrue(fails(file("trail.safetensors", "{} {}", 0)).contains("header is not valid JSON"));
        String dup = fails(file("dup.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8));
        assertTrue(dup.contains("header is not valid JSON") && dup.contains("Duplicate field 'a'"), dup);
        assertTrue(fails(file("entry.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4))
                .contains("tensor 'a' has a malformed entry"));
        assertTrue(fails(file("shape.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4))
                .contains("tensor 'a' has an invalid shape [-1]"));
        assertTrue(fails(file("strshape.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4))
                .contains("tensor 'a' has an invalid shape [\"1\"]"));
    }

    @Test
    void otherModelFormatsAreNamed() throws Exception {
        Path ckpt = dir.resolve("model.ckpt");
        Files.write(ckpt, new byte[] {'P', 'K', 3, 4, 20, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0});
        // a zip is read as a PyTorch checkpoint (by content): this one is cut off
        assertTrue(fails(ckpt).contains("truncated zip archive (no end of central directory record)"), fails(ckpt));
        Path gguf = dir.resolve("model.gguf");
        Files.write(gguf, new byte[] {'G', 'G', 'U', 'F', 3, 0, 0, 0, 0, 0, 0, 0});
        assertTrue(fails(gguf).contains("not a safetensors file (a GGUF file)"));
    }

    @Test
    void headerThatIsNotUtf8() throws Exception {
        Path p = dir.resolve("binary.safetensors");
        ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(4).put(new byte[] {(byte) 0xff, (byte) 0xfe, (byte) 0x80, 0x7b});
        Files.write(p, b.array());
        assertTrue(fails(p).contains("header is not valid UTF-8"));
    }

    @Test
    void directory() {
        assertTrue(fails(dir).contains("is a directory"));
    }

    @Test
    void missingFile() {
        assertTrue(fails(dir.resolve("nope.safetensors")).contains("file not found"));
    }

    @Test
    void unreadableFile() throws Exception {
        Path p = file("secret.safetensors", "{}", 0);
        Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("---------"));
        // root reads every file, so the real check only runs as an ordinary user; the mapping below always runs
        Assumptions.assumeFalse(Files.isReadable(p), "running as root: permissions do not stop reads");
        assertTrue(fails(p).contains("file is not readable (permission denied)"));
    }

    @Test
    void readErrorsBecomeOneLineMessages() {
        Path p = Path.of("/models/x.safetensors");
        assertEquals("/models/x.safetensors: file is not readable (permission denied)",
                SafeTensors.describe(p, new AccessDeniedException(p.toString())).getMessage());
        assertEquals("/models/x.safetensors: file not found",
                SafeTensors.describe(p, new NoSuchFileException(p.toString())).getMessage());
        assertEquals("/models/x.safetensors: cannot read file (Input/output error)",
                SafeTensors.describe(p, new java.nio.file.FileSystemException(p.toString(), null, "Input/output error")).getMessage());
    }
}
