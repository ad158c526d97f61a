package jdiffusion.io;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Writes a safetensors file: tensors in F32, F16, BF16, F64 or I64 plus a {@code __metadata__} map.
 *
 * <p>Tensors are declared first (name, dtype, shape and where the values come from) and streamed to disk in chunks by
 * {@link #write()}, so a multi-GB checkpoint never sits in the heap. The file is written to a temporary file beside the
 * target and then moved into place, so a reader never sees half a file; an existing target is an error unless
 * {@link #overwrite(boolean)} allows replacing it.
 *
 * <pre>{@code
 * SafeTensorsWriter.to(path).metadata("format", "pt")
 *     .add("latent", DType.F32, new long[] {1, 4, 8, 8}, values)
 *     .write();
 * }</pre>
 */
public final class SafeTensorsWriter {
    /** Values of one tensor in row-major order, produced on demand: fill buf[0..count) with elements start.. */
    @FunctionalInterface
    public interface FloatSource {
        void fill(long start, float[] buf, int count);
    }

    private static final int CHUNK_ELEMENTS = 1 << 18;
    private static final ObjectMapper JSON = new ObjectMapper();

    private record Entry(String name, DType dtype, long[] shape, FloatSource floats, long[] longs) {
        long numel() {
            long n = 1;
            for (long d : shape) {
                n = Math.multiplyExact(n, d);
            }
            return n;
        }

        long bytes() {
            return Math.multiplyExact(numel(), dtype.size());
        }
    }

    private final Path target;
    private final Map<String, String> metadata = new LinkedHashMap<>();
    private final List<Entry> entries = new ArrayList<>();
    private final Set<String> names = new HashSet<>();
    private boolean overwrite;

    private SafeTensorsWriter(Path target) {
        this.target = target;
    }

    /** A writer for a new file at target. */
    public static SafeTensorsWriter to(Path target) {
        return new SafeTensorsWriter(target);
    }

    /** Allow replacing an existing file (off by default: an existing target is an error). */
    public SafeTensorsWriter overwrite(boolean allow) {
        this.overwrite = allow;
        return this;
    }

    public SafeTensorsWriter metadata(String key, String value) {
        metadata.put(key, value);
        return this;
    }

    public SafeTensorsWriter metadata(Map<String, String> entries) {
        metadata.putAll(entries);
        return this;
    }

    /** A float tensor held in memory, stored as dtype (F32, F16, BF16 or F64). */
    public SafeTensorsWriter add(String name, DType dtype, long[] shape, float[] values) {
        long n = numel(name, shape);
        if (values.length != n) {
            throw new IllegalArgumentException("tensor '" + name + "': " + values.length + " values for shape "
                    + Arrays.toString(shape) + " (needs " + n + ")");
        }
        return add(name, dtype, shape, (start, buf, count) -> System.arraycopy(values, (int) start, buf, 0, count));
    }

    /** A float tensor whose values are produced chunk by chunk while writing (for files larger than the heap). */
    public SafeTensorsWriter add(String name, DType dtype, long[] shape, FloatSource source) {
        if (!dtype.isFloat()) {
            throw new IllegalArgumentException("tensor '" + name + "': float values cannot be stored as " + dtype);
        }
        numel(name, shape);
        return put(new Entry(name, dtype, shape.clone(), source, null));
    }

    /** An I64 tensor (e.g. the {@code position_ids} some CLIP checkpoints carry). */
    public SafeTensorsWriter addLongs(String name, long[] shape, long[] values) {
        long n = numel(name, shape);
        if (values.length != n) {
            throw new IllegalArgumentException("tensor '" + name + "': " + values.length + " values for shape "
                    + Arrays.toString(shape) + " (needs " + n + ")");
        }
        return put(new Entry(name, DType.I64, shape.clone(), null, values.clone()));
    }

    /** A tensor of another file, converted to dtype when it is a float tensor (integer tensors are kept as I64). */
    public SafeTensorsWriter addFrom(SafeTensors file, String sourceName, String name, DType floatType) {
        TensorInfo t = file.info(sourceName);
        if (!t.dtype().isFloat()) {
            return addLongs(name, t.shape(), file.longs(sourceName));
        }
        return add(name, floatType, t.shape(), floatsOf(file, sourceName));
    }

    /** Streams a float tensor of an open file without reading it whole. */
    public static FloatSource floatsOf(SafeTensors file, String name) {
        TensorInfo t = file.info(name);
        MemorySegment seg = file.segment(name);
        int size = t.dtype().size();
        return (start, buf, count) -> {
            float[] part = SafeTensors.toFloats(seg.asSlice(start * size, (long) count * size), t.dtype(), count, name);
            System.arraycopy(part, 0, buf, 0, count);
        };
    }

    /**
     * Writes a copy of src with every float tensor stored as floatType and the same metadata (e.g. the fp32 twin of
     * an fp16 checkpoint).
     */
    public static void convert(SafeTensors src, Path target, DType floatType, boolean overwrite) throws ModelFormatException {
        SafeTensorsWriter w = to(target).overwrite(overwrite).metadata(src.metadata());
        for (String n : src.names()) {
            w.addFrom(src, n, n, floatType);
        }
        w.write();
    }

    private SafeTensorsWriter put(Entry e) {
        if (e.name().equals("__metadata__") || e.name().isEmpty()) {
            throw new IllegalArgumentException("'" + e.name() + "' is not a valid tensor name");
        }
        if (!names.add(e.name())) {
            throw new IllegalArgumentException("tensor '" + e.name() + "' added twice");
        }
        entries.add(e);
        return this;
    }

    private static long numel(String name, long[] shape) {
        long n = 1;
        for (long d : shape) {
            if (d < 0) {
                throw new IllegalArgumentException("tensor '" + name + "': negative dimension in shape " + Arrays.toString(shape));
            }
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    /** Writes the file (temporary file, then an atomic move into place). */
    public void write() throws ModelFormatException {
        if (Files.isDirectory(target)) {
            throw new ModelFormatException(target + ": is a directory");
        }
        if (!overwrite && Files.exists(target)) {
            throw new ModelFormatException(target + ": already exists (refusing to overwrite)");
        }
        Path dir = target.toAbsolutePath().getParent();
        if (dir == null || !Files.isDirectory(dir)) {
            throw new ModelFormatException(target + ": folder " + dir + " does not exist");
        }
        Path tmp = null;
        try {
            tmp = Files.createTempFile(dir, "." + target.getFileName() + ".", ".tmp");
            makeWorldReadable(tmp);
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                writeHeader(ch);
                ByteBuffer buf = ByteBuffer.allocateDirect(CHUNK_ELEMENTS * 8).order(ByteOrder.LITTLE_ENDIAN);
                float[] chunk = new float[CHUNK_ELEMENTS];
                for (Entry e : entries) {
                    writeData(ch, e, buf, chunk);
                }
            }
            moveIntoPlace(tmp);
            tmp = null;
        } catch (ModelFormatException e) {
            throw e;
        } catch (IOException e) {
            throw new ModelFormatException(target + ": cannot write (" + e.getMessage() + ")", e);
        } finally {
            if (tmp != null) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException ignored) {
                    // best effort: the temporary file is hidden and named after the target
                }
            }
        }
    }

    /** Temporary files are created owner-only; the finished file gets the usual rw-r--r-- like any saved model. */
    private static void makeWorldReadable(Path tmp) {
        try {
            Files.setPosixFilePermissions(tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
        } catch (UnsupportedOperationException | IOException e) {
            // not a POSIX file system: keep its defaults
        }
    }

    private void moveIntoPlace(Path tmp) throws IOException {
        if (overwrite) {
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
            }
            return;
        }
        // rename(2) would replace a file created meanwhile; a hard link fails instead, so nothing is lost silently.
        try {
            Files.createLink(target, tmp);
        } catch (FileAlreadyExistsException e) {
            throw new ModelFormatException(target + ": already exists (refusing to overwrite)");
        } catch (UnsupportedOperationException | IOException e) {
            // no hard links on this file system: a plain move (fails when the target exists)
            Files.move(tmp, target);
            return;
        }
        Files.delete(tmp);
    }

    private void writeHeader(FileChannel ch) throws IOException {
        ObjectNode root = JSON.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode meta = root.putObject("__metadata__");
            metadata.forEach(meta::put);
        }
        long offset = 0;
        for (Entry e : entries) {
            ObjectNode t = root.putObject(e.name());
            t.put("dtype", e.dtype().name());
            ArrayNode shape = t.putArray("shape");
            for (long d : e.shape()) {
                shape.add(d);
            }
            ArrayNode off = t.putArray("data_offsets");
            off.add(offset);
            offset += e.bytes();
            off.add(offset);
        }
        byte[] json = JSON.writeValueAsBytes(root);
        // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
        int padded = (json.length + 8 + 7) / 8 * 8 - 8;
        ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        head.putLong(padded);
        head.put(json);
        while (head.hasRemaining()) {
            head.put((byte) ' ');
        }
        head.flip();
        writeFully(ch, head);
    }

    private static void writeData(FileChannel ch, Entry e, ByteBuffer buf, float[] chunk) throws IOException {
        long n = e.numel();
        if (e.longs() != null) {
            for (long v : e.longs()) {
                if (buf.remaining() < 8) {
                    flush(ch, buf);
                }
                buf.putLong(v);
            }
            flush(ch, buf);
            return;
        }
        for (long start = 0; start < n; start += CHUNK_ELEMENTS) {
            int count = (int) Math.min(CHUNK_ELEMENTS, n - start);
            e.floats().fill(start, chunk, count);
            encode(chunk, count, e.dtype(), buf);
            flush(ch, buf);
        }
    }

    /** Stores count floats as dtype, little-endian; F16 and BF16 round to nearest even like torch's casts. */
    static void encode(float[] values, int count, DType dtype, ByteBuffer buf) {
        switch (dtype) {
            case F32 -> {
                for (int i = 0; i < count; i++) {
                    buf.putFloat(values[i]);
                }
            }
            case F64 -> {
                for (int i = 0; i < count; i++) {
                    buf.putDouble(values[i]);
                }
            }
            case F16 -> {
                for (int i = 0; i < count; i++) {
                    buf.putShort(Float.floatToFloat16(values[i]));
                }
            }
            case BF16 -> {
                for (int i = 0; i < count; i++) {
                    buf.putShort(toBf16(values[i]));
                }
            }
            case F8_E4M3 -> {
                for (int i = 0; i < count; i++) {
                    buf.put(jdiffusion.tensor.Fp8.toE4m3(values[i]));
                }
            }
            case F8_E5M2 -> {
                for (int i = 0; i < count; i++) {
                    buf.put(jdiffusion.tensor.Fp8.toE5m2(values[i]));
                }
            }
            default -> throw new IllegalArgumentException("cannot store floats as " + dtype);
        }
    }

    /** float32 to bfloat16 with round-to-nearest-even; NaN stays a (quiet) NaN. */
    static short toBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) {
            return (short) ((bits >>> 16) | 0x40);
        }
        int rounding = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }

    private static void flush(FileChannel ch, ByteBuffer buf) throws IOException {
        buf.flip();
        writeFully(ch, buf);
        buf.clear();
    }

    private static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) {
            ch.write(buf);
        }
    }
}
