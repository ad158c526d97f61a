package jdiffusion.io;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParseException;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadFeature;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A safetensors file, memory-mapped and validated before anything in it is trusted.
 *
 * <p>Layout: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}} plus an
 * optional "__metadata__" map of strings, then the data section. Tensor data is never copied until a caller asks
 * for floats; {@link #segment(String)} gives the mapped bytes directly. Files far above 2 GB work (one mapped
 * segment, FFM API).
 *
 * <p>{@link #open(Path)} also opens PyTorch checkpoints ({@code .ckpt/.pt/.pth/.bin}, recognised by content) through
 * the safe pickle reader ({@link TorchCheckpoint}): they are presented through this same view, tensor byte ranges
 * pointing into the mapped file, so loaders need not know the container ({@link #container()}).
 */
public final class SafeTensors implements AutoCloseable {
    /** Real headers are a few hundred KB; anything near this is hostile or corrupt. */
    public static final long MAX_HEADER_BYTES = 100L << 20;

    /** Strict JSON: a duplicated tensor name is an error, not a guess (trailing content is checked after parsing). */
    private static final JsonFactory JSON = JsonFactory.builder().enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();
    private static final ValueLayout.OfShort SHORT_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat FLOAT_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble DOUBLE_LE = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong LONG_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt INT_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Path path;
    private final Arena arena;
    private final MemorySegment data;
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;
    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();
    private final Container container;
    /** Tensors that are strided views of a pickle storage: copied out row-major when read. */
    private final Map<String, java.util.function.Supplier<MemorySegment>> views;
    private final TorchCheckpoint.Structure pickle;

    private SafeTensors(Path path, Arena arena, MemorySegment data, Map<String, TensorInfo> tensors,
                        Map<String, String> metadata) {
        this(path, arena, data, tensors, metadata, Container.SAFETENSORS, Map.of(), null);
    }

    private SafeTensors(Path path, Arena arena, MemorySegment data, Map<String, TensorInfo> tensors,
                        Map<String, String> metadata, Container container,
                        Map<String, java.util.function.Supplier<MemorySegment>> views, TorchCheckpoint.Structure pickle) {
        this.path = path;
        this.arena = arena;
        this.data = data;
        this.tensors = tensors;
        this.metadata = metadata;
        this.container = container;
        this.views = views;
        this.pickle = pickle;
    }

    /**
     * A PyTorch checkpoint read by {@link TorchCheckpoint}: tensor byte ranges are offsets into the whole mapped file
     * (data), strided tensors come from views.
     */
    static SafeTensors ofPickle(Path path, Arena arena, MemorySegment file, Map<String, TensorInfo> tensors,
                                Map<String, String> scalars, Container container,
                                Map<String, java.util.function.Supplier<MemorySegment>> views, TorchCheckpoint.Structure structure) {
        return new SafeTensors(path, arena, file, tensors, scalars, container, Map.copyOf(views), structure);
    }

    /**
     * Opens and validates a tensor file of any container, recognised by its content (not its extension): a
     * safetensors file, or a PyTorch checkpoint ({@code .ckpt/.pt/.pth/.bin}, zip or legacy) read through the safe
     * pickle reader ({@link TorchCheckpoint}). Every failure is a {@link ModelFormatException} naming the file and
     * problem.
     */
    public static SafeTensors open(Path path) throws ModelFormatException {
        return open(path, null);
    }

    /**
     * As {@link #open(Path)}; for a PyTorch checkpoint, root names the dict whose tensors are shown ("" for all,
     * null to choose as ComfyUI and spandrel do, see {@link TorchCheckpoint}). Ignored for safetensors files.
     */
    public static SafeTensors open(Path path, String root) throws ModelFormatException {
        String where = path.toString();
        if (Files.isDirectory(path)) {
            throw new ModelFormatException(where + ": is a directory, not a safetensors file");
        }
        RegularFiles.require(path); // a FIFO or a device would block or never end
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) {
                throw new ModelFormatException(where + ": truncated file (" + size + " bytes; a safetensors file starts with an 8-byte header length)");
            }
            MemorySegment all = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            Container container = Container.sniff(all);
            if (container != Container.SAFETENSORS) {
                return TorchCheckpoint.read(path, where, arena, all, container, root);
            }
            long headerLen = all.get(LONG_LE, 0);
            if (headerLen < 2 || headerLen > MAX_HEADER_BYTES) {
                // only now guess at other formats: a valid header length may well start with any byte pattern
                String otherFormat = otherFormat(all);
                if (otherFormat != null) {
                    throw new ModelFormatException(where + ": not a safetensors file (" + otherFormat + ")");
                }
                throw new ModelFormatException(where + ": not a safetensors file (header length " + Long.toUnsignedString(headerLen)
                        + " is outside 2.." + MAX_HEADER_BYTES + ")");
            }
            if (8 + headerLen > size) {
                throw new ModelFormatException(where + ": truncated file (header length " + headerLen + " runs past the end of the "
                        + size + "-byte file)");
            }
            byte[] headerBytes = all.asSlice(8, headerLen).toArray(ValueLayout.JAVA_BYTE);
            MemorySegment dataSection = all.asSlice(8 + headerLen);
            Map<String, String> meta = new LinkedHashMap<>();
            Map<String, TensorInfo> infos = parseHeader(where, headerBytes, dataSection.byteSize(), meta);
            return new SafeTensors(path, arena, dataSection, infos, meta);
        } catch (ModelFormatException e) {
            arena.close();
            throw e;
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw describe(path, e);
        }
    }

    /** Names the format of files people commonly mistake for safetensors, from their first bytes; else null. */
    private static String otherFormat(MemorySegment all) {
        byte b0 = all.get(ValueLayout.JAVA_BYTE, 0);
        byte b1 = all.get(ValueLayout.JAVA_BYTE, 1);
        byte b2 = all.get(ValueLayout.JAVA_BYTE, 2);
        byte b3 = all.get(ValueLayout.JAVA_BYTE, 3);
        if (b0 == 'P' && b1 == 'K' && b2 == 3 && b3 == 4) {
            return "a zip archive";
        }
        if (b0 == 'G' && b1 == 'G' && b2 == 'U' && b3 == 'F') {
            return "a GGUF file";
        }
        if ((b0 & 0xff) == 0x80 && b1 >= 2 && b1 <= 5) {
            return "a Python pickle";
        }
        return null;
    }

    /** Turns a low-level failure while opening or mapping a file into one line that names the file and the cause. */
    static ModelFormatException describe(Path path, Exception e) {
        String where = path.toString();
        return switch (e) {
            case NoSuchFileException x -> new ModelFormatException(where + ": file not found");
            case AccessDeniedException x -> new ModelFormatException(where + ": file is not readable (permission denied)");
            case java.nio.file.FileSystemException x when x.getReason() != null ->
                    new ModelFormatException(where + ": cannot read file (" + x.getReason() + ")", e);
            default -> new ModelFormatException(where + ": cannot read file (" + (e.getMessage() == null ? e.toString() : e.getMessage()) + ")", e);
        };
    }

    /**
     * Parses the header with Jackson's streaming parser: no tree, no databind (its start-up alone costs more than
     * reading an SDXL header), one pass over the bytes.
     */
    static Map<String, TensorInfo> parseHeader(String where, byte[] headerBytes, long dataSize,
                                                       Map<String, String> meta) throws ModelFormatException {
        try {
            StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(headerBytes));
        } catch (CharacterCodingException e) {
            throw new ModelFormatException(where + ": header is not valid UTF-8 text (not a safetensors file?)");
        }
        Map<String, TensorInfo> infos = new LinkedHashMap<>();
        try (JsonParser p = JSON.createParser(headerBytes)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw new ModelFormatException(where + ": header is not a JSON object");
            }
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                JsonToken value = p.nextToken();
                if (name.equals("__metadata__")) {
                    readMetadata(where, p, value, meta);
                } else {
                    infos.put(name, parseEntry(where, name, p, value, dataSize));
                }
            }
            if (p.nextToken() != null) {
                throw new ModelFormatException(where + ": header is not valid JSON (trailing content after the header object)");
            }
        } catch (JsonParseException e) {
            throw new ModelFormatException(where + ": header is not valid JSON (" + oneLine(e.getOriginalMessage()) + ")");
        } catch (ModelFormatException e) {
            throw e;
        } catch (IOException e) {
            throw new ModelFormatException(where + ": header is not valid JSON (" + oneLine(e.getMessage()) + ")");
        }
        checkOverlaps(where, infos);
        return Collections.unmodifiableMap(infos);
    }

    /** __metadata__: a string-to-string map; other scalar values are kept as their text, nested values skipped. */
    private static void readMetadata(String where, JsonParser p, JsonToken value, Map<String, String> meta) throws IOException {
        if (value != JsonToken.START_OBJECT) {
            throw new ModelFormatException(where + ": __metadata__ is not a JSON object");
        }
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String key = p.currentName();
            JsonToken v = p.nextToken();
            if (v.isStructStart()) {
                p.skipChildren();
            } else {
                meta.put(key, p.getText());
            }
        }
    }

    private static String oneLine(String s) {
        if (s == null) {
            return "unknown error";
        }
        String flat = s.replace('\n', ' ').replace('\r', ' ');
        return flat.length() > 200 ? flat.substring(0, 200) + "..." : flat;
    }

    private static TensorInfo parseEntry(String where, String name, JsonParser p, JsonToken value, long dataSize)
            throws IOException {
        String prefix = where + ": tensor '" + name + "'";
        if (value != JsonToken.START_OBJECT) {
            if (value.isStructStart()) {
                p.skipChildren();
            }
            throw new ModelFormatException(prefix + " has no {dtype, shape, data_offsets} entry");
        }
        String dtypeName = null;
        List<String> shapeText = null;
        List<String> offsetText = null;
        boolean malformed = false;
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String field = p.currentName();
            JsonToken v = p.nextToken();
            switch (field) {
                case "dtype" -> {
                    if (v == JsonToken.VALUE_STRING) {
                        dtypeName = p.getText();
                    } else {
                        malformed = true;
                        p.skipChildren();
                    }
                }
                case "shape" -> shapeText = numbers(p, v);
                case "data_offsets" -> offsetText = numbers(p, v);
                default -> p.skipChildren();
            }
        }
        if (malformed || dtypeName == null || shapeText == null || offsetText == null || offsetText.size() != 2) {
            throw new ModelFormatException(prefix + " has a malformed entry (needs dtype, shape and two data_offsets)");
        }
        DType dtype = DType.fromName(dtypeName);
        if (dtype == null) {
            throw new ModelFormatException(prefix + " has unknown dtype '" + dtypeName + "'");
        }
        String shapeString = "[" + String.join(",", shapeText) + "]";
        long[] shape = new long[shapeText.size()];
        long numel = 1;
        for (int i = 0; i < shape.length; i++) {
            Long d = integer(shapeText.get(i));
            if (d == null || d < 0) {
                throw new ModelFormatException(prefix + " has an invalid shape " + shapeString);
            }
            shape[i] = d;
            try {
                numel = Math.multiplyExact(numel, shape[i]);
            } catch (ArithmeticException ex) {
                throw new ModelFormatException(prefix + " has an impossibly large shape " + shapeString);
            }
        }
        Long b0 = integer(offsetText.get(0));
        Long b1 = integer(offsetText.get(1));
        if (b0 == null || b1 == null) {
            throw new ModelFormatException(prefix + " has invalid data_offsets [" + String.join(",", offsetText) + "]");
        }
        long begin = b0;
        long end = b1;
        if (begin < 0 || end < begin || end > dataSize) {
            throw new ModelFormatException(prefix + " has data_offsets [" + begin + ", " + end + "] outside the data section of "
                    + dataSize + " bytes (truncated or corrupt file)");
        }
        long expected;
        try {
            expected = Math.multiplyExact(numel, dtype.size());
        } catch (ArithmeticException ex) {
            throw new ModelFormatException(prefix + " has an impossibly large shape " + shapeString);
        }
        if (end - begin != expected) {
            throw new ModelFormatException(prefix + " holds " + (end - begin) + " bytes but shape " + shapeString + " of " + dtype
                    + " needs " + expected);
        }
        return new TensorInfo(name, dtype, shape, begin, end);
    }

    /** The elements of a JSON array of scalars as their text (null when the value is not such an array). */
    private static List<String> numbers(JsonParser p, JsonToken v) throws IOException {
        if (v != JsonToken.START_ARRAY) {
            if (v.isStructStart()) {
                p.skipChildren();
            }
            return null;
        }
        List<String> out = new ArrayList<>();
        JsonToken t;
        while ((t = p.nextToken()) != JsonToken.END_ARRAY) {
            if (t.isStructStart()) {
                p.skipChildren();
                out.add("?");
            } else if (t == JsonToken.VALUE_NUMBER_INT) {
                out.add(p.getText());
            } else {
                out.add(t == JsonToken.VALUE_STRING ? '"' + p.getText() + '"' : p.getText());
            }
        }
        return out;
    }

    /** A JSON integer's value, or null for anything else (fractions, strings, numbers beyond a long). */
    private static Long integer(String text) {
        try {
            return Long.parseLong(text);
        } catch (NumberFormatException e) {
            return null;
        }
    }

    private static void checkOverlaps(String where, Map<String, TensorInfo> infos) throws ModelFormatException {
        List<TensorInfo> sorted = new ArrayList<>(infos.values());
        sorted.removeIf(t -> t.end() == t.begin());
        sorted.sort((a, b) -> Long.compare(a.begin(), b.begin()));
        for (int i = 1; i < sorted.size(); i++) {
            TensorInfo prev = sorted.get(i - 1);
            TensorInfo cur = sorted.get(i);
            if (cur.begin() < prev.end()) {
                throw new ModelFormatException(where + ": tensors '" + prev.name() + "' and '" + cur.name() + "' overlap in the data section");
            }
        }
    }

    public Path path() {
        return path;
    }

    /** The container the tensors came from (safetensors, pytorch zip, pytorch legacy). */
    public Container container() {
        return container;
    }

    /** For a PyTorch checkpoint, its structure (root dict shown, other dicts, scalars); null for safetensors. */
    public TorchCheckpoint.Structure pickle() {
        return pickle;
    }

    /** Tensor names in header order. */
    public java.util.Set<String> names() {
        return tensors.keySet();
    }

    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    /** The header's __metadata__ (empty when absent). */
    public Map<String, String> metadata() {
        return Collections.unmodifiableMap(metadata);
    }

    public TensorInfo info(String name) {
        TensorInfo t = tensors.get(name);
        if (t == null) {
            throw new IllegalArgumentException(path + ": no tensor named '" + name + "'");
        }
        return t;
    }

    /** The mapped bytes of one tensor (little-endian, no copy). */
    public MemorySegment segment(String name) {
        TensorInfo t = info(name);
        java.util.function.Supplier<MemorySegment> view = views.get(name);
        if (view != null) {
            return view.get();
        }
        return data.asSlice(t.begin(), t.end() - t.begin());
    }

    /** The element count of a tensor copied into one Java array; a clear error naming file and tensor past 2^31 - 1. */
    private int arrayLength(TensorInfo t) {
        long n = t.numel();
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(path + ": tensor '" + t.name() + "' has " + n + " elements "
                    + java.util.Arrays.toString(t.shape()) + ", more than one array can hold (2^31 - 1)");
        }
        return (int) n;
    }

    /** A tensor's values widened (or narrowed from F64) to float32, in row-major order. */
    public float[] floats(String name) {
        TensorInfo t = info(name);
        MemorySegment s = segment(name);
        float[] values = toFloats(s, t.dtype(), arrayLength(t), name);
        release(s);
        return values;
    }

    /**
     * Drops the pages of a tensor that was just copied out from this process's resident set (the page cache keeps
     * them): models copy their weights into their own layout, and otherwise a 7 GB checkpoint's mapped pages would
     * count on top of the copies. The pages come back on demand if read again.
     */
    private static void release(MemorySegment s) {
        if (s.isMapped() && s.byteSize() >= (1 << 20)) {
            try {
                s.unload();
            } catch (UnsupportedOperationException | IllegalStateException ignored) {
                // not a file mapping after all, or closed: nothing to release
            }
        }
    }

    /** A float tensor's values as float64 (exact for F64). */
    public double[] doubles(String name) {
        TensorInfo t = info(name);
        MemorySegment s = segment(name);
        int n = arrayLength(t);
        double[] out = new double[n];
        if (t.dtype() == DType.F64) {
            for (int i = 0; i < n; i++) {
                out[i] = s.getAtIndex(DOUBLE_LE, i);
            }
        } else {
            float[] f = toFloats(s, t.dtype(), n, name);
            for (int i = 0; i < n; i++) {
                out[i] = f[i];
            }
        }
        return out;
    }

    /** An integer tensor's values as longs. */
    public long[] longs(String name) {
        TensorInfo t = info(name);
        MemorySegment s = segment(name);
        int n = arrayLength(t);
        long[] out = new long[n];
        for (int i = 0; i < n; i++) {
            out[i] = switch (t.dtype()) {
                case I64 -> s.getAtIndex(LONG_LE, i);
                case I32 -> s.getAtIndex(INT_LE, i);
                case I16 -> s.getAtIndex(SHORT_LE, i);
                case I8 -> s.get(ValueLayout.JAVA_BYTE, i);
                case U8, BOOL -> s.get(ValueLayout.JAVA_BYTE, i) & 0xff;
                default -> throw new IllegalArgumentException(path + ": tensor '" + name + "' is " + t.dtype() + ", not an integer type");
            };
        }
        return out;
    }

    /** Converts n little-endian elements of dtype to float32. */
    public static float[] toFloats(MemorySegment s, DType dtype, int n, String name) {
        float[] out = new float[n];
        switch (dtype) {
            case F32 -> MemorySegment.copy(s, FLOAT_LE, 0, out, 0, n);
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = Float.float16ToFloat(s.getAtIndex(SHORT_LE, i));
                }
            }
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = Float.intBitsToFloat((s.getAtIndex(SHORT_LE, i) & 0xffff) << 16);
                }
            }
            case F64 -> {
                for (int i = 0; i < n; i++) {
                    out[i] = (float) s.getAtIndex(DOUBLE_LE, i);
                }
            }
            default -> throw new IllegalArgumentException("tensor '" + name + "' is " + dtype + ", not a float type");
        }
        return out;
    }

    /**
     * Drops the file's pages from this process's resident memory (the mapping stays valid: a later read brings them
     * back from the page cache or the disk). Models copy and pack their weights at load, so the mapped pages would
     * otherwise count against the process's memory for nothing (2 GB for an SD1.5 checkpoint, 7 GB for SDXL).
     */
    public void releaseResidentPages() {
        if (!closed.get() && data.isMapped()) {
            data.unload();
        }
    }

    /** Unmaps the file; closing twice is harmless (a Checkpoint and its derived views may share a file). */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            arena.close();
        }
    }
}
