package jdiffusion.io;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.math.BigInteger;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;
import jdiffusion.io.TorchPickle.Storage;
import jdiffusion.io.TorchPickle.TensorRef;
import jdiffusion.io.TorchPickle.Tuple;

/**
 * PyTorch checkpoints ({@code .ckpt}, {@code .pt}, {@code .pth}, {@code .bin}) read safely: the pickle goes through
 * {@link TorchPickle}, which accepts only what a tensor state dict needs, and the tensors map lazily from the file
 * like a safetensors file's. The result is a {@link SafeTensors} view, so every loader works on it unchanged.
 *
 * <p>Two containers: the zip format of torch.save since PyTorch 1.6 (a stored, uncompressed zip holding
 * {@code <prefix>/data.pkl} and one record {@code <prefix>/data/<key>} per storage; the prefix is arbitrary) and the
 * legacy format (pickles of the magic number, protocol version, sys info, the object and the storage key list,
 * then per storage an int64 element count and its raw bytes).
 *
 * <p>Nested dicts: every tensor gets its dotted path ({@code state_dict.model.diffusion_model.out.2.bias}). The
 * tensors shown are those under a root dict chosen as ComfyUI and spandrel do ({@code state_dict}; else the only
 * dict-valued key of a one-key dict; else {@code params_ema}, {@code params-ema}, {@code params}, {@code model},
 * {@code net}); the root's name is stripped. {@link SafeTensors#pickle()} keeps the whole structure, and
 * {@link #open(Path, String)} picks another root.
 */
public final class TorchCheckpoint {
    /** Root dicts tried after {@code state_dict}, in spandrel's order. */
    public static final List<String> WRAPPER_KEYS = List.of("params_ema", "params-ema", "params", "model", "net");
    /** Largest data.pkl read into memory (real ones are a few MB). */
    static final long MAX_PICKLE_BYTES = 512L << 20;
    /** Most zip records (a checkpoint has one per storage). */
    static final int MAX_ZIP_ENTRIES = 1 << 20;
    /** Deepest dict nesting and most values visited while naming tensors. */
    static final int MAX_DEPTH = 64;
    static final int MAX_VISITS = 4 << 20;
    /** Longest dotted tensor name (real ones are under 200 characters). */
    static final int MAX_NAME = 4096;

    private static final ValueLayout.OfShort SHORT_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt INT_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong LONG_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final BigInteger LEGACY_MAGIC = new BigInteger("1950a86a20f9469cfc6c", 16);
    private static final int LEGACY_PROTOCOL = 1001;

    /**
     * What a pickle checkpoint held beyond the tensors shown.
     *
     * @param root the dict whose tensors are shown ("" for the top level), e.g. "state_dict" or "params_ema"
     * @param dicts every dict path holding tensors (directly or below) with its tensor count, "" for the top level
     * @param tensors every tensor's full dotted path to its dtype and shape (also those outside the root)
     * @param scalars scalar values by dotted path (e.g. "global_step" -> "1"), strings shortened
     */
    public record Structure(String root, Map<String, Integer> dicts, Map<String, String> tensors, Map<String, String> scalars) {
    }

    private TorchCheckpoint() {
    }

    /** Opens a pickle checkpoint with the tensors of dict {@code root} ("" = all, dotted path for nested ones). */
    public static SafeTensors open(Path path, String root) throws ModelFormatException {
        return SafeTensors.open(path, root);
    }

    /**
     * Reads a whole checkpoint (either container) from bytes: the entry point for fuzzing. Every failure is a
     * {@link ModelFormatException}.
     */
    public static SafeTensors read(String name, byte[] bytes) throws ModelFormatException {
        MemorySegment all = MemorySegment.ofArray(bytes);
        Container c = Container.sniff(all);
        if (c == Container.SAFETENSORS) {
            throw new ModelFormatException(name + ": not a PyTorch checkpoint (no zip or pickle signature)");
        }
        return read(Path.of("memory"), name, Arena.ofShared(), all, c, null);
    }

    /** Builds the view over a mapped file; the caller closes arena on failure. */
    static SafeTensors read(Path path, String where, Arena arena, MemorySegment all, Container c, String root)
            throws ModelFormatException {
        try {
            return c == Container.TORCH_ZIP ? readZip(path, where, arena, all, root) : readLegacy(path, where, arena, all, root);
        } catch (ModelFormatException e) {
            throw e;
        } catch (ArithmeticException | IndexOutOfBoundsException | IllegalArgumentException | IllegalStateException e) {
            throw new ModelFormatException(where + ": corrupt " + c + " checkpoint (" + e.getClass().getSimpleName()
                    + (e.getMessage() == null ? "" : ": " + oneLine(e.getMessage())) + ")");
        }
    }

    // ---------------------------------------------------------------- zip

    /** A stored zip record: where its bytes start in the file and how many there are. */
    record Entry(long offset, long size) {
    }

    private static SafeTensors readZip(Path path, String where, Arena arena, MemorySegment all, String root)
            throws ModelFormatException {
        Map<String, Entry> entries = zipDirectory(where, all);
        String pkl = null;
        for (String name : entries.keySet()) {
            if (name.equals("data.pkl") || name.endsWith("/data.pkl")) {
                if (pkl == null || name.length() < pkl.length()) {
                    pkl = name;
                }
            }
        }
        if (pkl == null) {
            throw new ModelFormatException(where + ": zip archive without a data.pkl record (not a PyTorch checkpoint)");
        }
        String prefix = pkl.substring(0, pkl.length() - "data.pkl".length());
        Entry byteorder = entries.get(prefix + "byteorder");
        if (byteorder != null) {
            String order = new String(bytes(all, byteorder, 16), StandardCharsets.US_ASCII).strip();
            if (!order.equals("little")) {
                throw new ModelFormatException(where + ": byteorder '" + oneLine(order) + "' (only little-endian checkpoints are read)");
            }
        }
        Entry p = entries.get(pkl);
        if (p.size() > MAX_PICKLE_BYTES) {
            throw new ModelFormatException(where + ": " + pkl + " is " + p.size() + " bytes (more than " + MAX_PICKLE_BYTES + ")");
        }
        TorchPickle.Result r = TorchPickle.read(where, all, p.offset(), p.offset() + p.size());
        Map<String, Entry> storages = new LinkedHashMap<>();
        String dataPrefix = prefix + "data/";
        for (Map.Entry<String, Entry> e : entries.entrySet()) {
            if (e.getKey().startsWith(dataPrefix)) {
                storages.put(e.getKey().substring(dataPrefix.length()), e.getValue());
            }
        }
        return build(path, where, arena, all, r.value(), storages, Container.TORCH_ZIP, root);
    }

    private static byte[] bytes(MemorySegment all, Entry e, int max) {
        return all.asSlice(e.offset(), Math.min(e.size(), max)).toArray(ValueLayout.JAVA_BYTE);
    }

    /**
     * The zip's records from its central directory (zip64 included), each resolved through its local header to the
     * start of its bytes. Only stored (uncompressed, unencrypted) records are accepted: torch writes nothing else,
     * and a stored record is what can be mapped.
     */
    static Map<String, Entry> zipDirectory(String where, MemorySegment all) throws ModelFormatException {
        long n = all.byteSize();
        long eocd = -1;
        for (long i = n - 22; i >= Math.max(0, n - 22 - 65535); i--) {
            if (all.get(INT_LE, i) == 0x06054b50) {
                eocd = i;
                break;
            }
        }
        if (eocd < 0) {
            throw new ModelFormatException(where + ": truncated zip archive (no end of central directory record)");
        }
        long count = u16(all, eocd + 10);
        long cdSize = u32(all, eocd + 12);
        long cdOffset = u32(all, eocd + 16);
        if (count == 0xffff || cdSize == 0xffffffffL || cdOffset == 0xffffffffL) {
            long loc = eocd - 20;
            if (loc < 0 || all.get(INT_LE, loc) != 0x07064b50) {
                throw new ModelFormatException(where + ": corrupt zip64 archive (no zip64 end locator)");
            }
            long z = all.get(LONG_LE, loc + 8);
            if (z < 0 || z > n - 56 || all.get(INT_LE, z) != 0x06064b50) {
                throw new ModelFormatException(where + ": corrupt zip64 archive (bad zip64 end record offset)");
            }
            count = all.get(LONG_LE, z + 32);
            cdSize = all.get(LONG_LE, z + 40);
            cdOffset = all.get(LONG_LE, z + 48);
        }
        if (count < 0 || count > MAX_ZIP_ENTRIES) {
            throw new ModelFormatException(where + ": zip archive claims " + count + " records");
        }
        if (cdOffset < 0 || cdSize < 0 || cdOffset > n || cdSize > n - cdOffset) {
            throw new ModelFormatException(where + ": truncated zip archive (central directory at " + cdOffset + "+" + cdSize
                    + " outside the " + n + "-byte file)");
        }
        Map<String, Entry> out = new LinkedHashMap<>();
        long at = cdOffset;
        long end = cdOffset + cdSize;
        for (long k = 0; k < count; k++) {
            if (at + 46 > end || all.get(INT_LE, at) != 0x02014b50) {
                throw new ModelFormatException(where + ": corrupt zip central directory (record " + k + ")");
            }
            int flags = u16(all, at + 8);
            int method = u16(all, at + 10);
            long csize = u32(all, at + 20);
            long usize = u32(all, at + 24);
            int nameLen = u16(all, at + 28);
            int extraLen = u16(all, at + 30);
            int commentLen = u16(all, at + 32);
            long local = u32(all, at + 42);
            long next = at + 46 + nameLen + extraLen + commentLen;
            if (next > end) {
                throw new ModelFormatException(where + ": corrupt zip central directory (record " + k + " runs past it)");
            }
            String name = new String(all.asSlice(at + 46, nameLen).toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
            // zip64 extra field: the 0xffffffff fields, in the order usize, csize, local offset
            long x = at + 46 + nameLen;
            long xEnd = x + extraLen;
            while (x + 4 <= xEnd) {
                int id = u16(all, x);
                int len = u16(all, x + 2);
                long v = x + 4;
                if (v + len > xEnd) {
                    break;
                }
                if (id == 0x0001) {
                    if (usize == 0xffffffffL && v + 8 <= x + 4 + len) {
                        usize = all.get(LONG_LE, v);
                        v += 8;
                    }
                    if (csize == 0xffffffffL && v + 8 <= x + 4 + len) {
                        csize = all.get(LONG_LE, v);
                        v += 8;
                    }
                    if (local == 0xffffffffL && v + 8 <= x + 4 + len) {
                        local = all.get(LONG_LE, v);
                    }
                }
                x += 4 + len;
            }
            if ((flags & 1) != 0) {
                throw new ModelFormatException(where + ": zip record '" + oneLine(name) + "' is encrypted");
            }
            if (method != 0 || csize != usize) {
                throw new ModelFormatException(where + ": zip record '" + oneLine(name) + "' is compressed (method " + method
                        + "); PyTorch writes stored records, re-save it with torch.save or convert it to safetensors");
            }
            if (local < 0 || local > n - 30 || all.get(INT_LE, local) != 0x04034b50) {
                throw new ModelFormatException(where + ": corrupt zip archive (record '" + oneLine(name) + "' has no local header)");
            }
            long data = local + 30 + u16(all, local + 26) + u16(all, local + 28);
            if (usize < 0 || data > n || usize > n - data) {
                throw new ModelFormatException(where + ": truncated zip archive (record '" + oneLine(name) + "' of " + usize
                        + " bytes runs past the end of the " + n + "-byte file)");
            }
            if (out.put(name, new Entry(data, usize)) != null) {
                throw new ModelFormatException(where + ": zip archive has two records named '" + oneLine(name) + "'");
            }
            at = next;
        }
        return out;
    }

    private static int u16(MemorySegment s, long at) {
        return s.get(SHORT_LE, at) & 0xffff;
    }

    private static long u32(MemorySegment s, long at) {
        return s.get(INT_LE, at) & 0xffffffffL;
    }

    // ---------------------------------------------------------------- legacy

    private static SafeTensors readLegacy(Path path, String where, Arena arena, MemorySegment all, String root)
            throws ModelFormatException {
        long n = all.byteSize();
        TorchPickle.Result magic = TorchPickle.read(where, all, 0, n);
        if (!LEGACY_MAGIC.equals(magic.value())) {
            throw new ModelFormatException(where + ": a pickle, but not a PyTorch checkpoint (no legacy magic number)");
        }
        TorchPickle.Result protocol = TorchPickle.read(where, all, magic.end(), n);
        if (!Long.valueOf(LEGACY_PROTOCOL).equals(protocol.value())) {
            throw new ModelFormatException(where + ": unsupported legacy PyTorch protocol " + describe(protocol.value()));
        }
        TorchPickle.Result sysInfo = TorchPickle.read(where, all, protocol.end(), n);
        if (sysInfo.value() instanceof Map<?, ?> info && Boolean.FALSE.equals(info.get("little_endian"))) {
            throw new ModelFormatException(where + ": big-endian legacy checkpoint (only little-endian ones are read)");
        }
        TorchPickle.Result object = TorchPickle.read(where, all, sysInfo.end(), n);
        TorchPickle.Result keys = TorchPickle.read(where, all, object.end(), n);
        if (!(keys.value() instanceof List<?> keyList)) {
            throw new ModelFormatException(where + ": corrupt legacy checkpoint (storage key list is a "
                    + TorchPickle.typeName(keys.value()) + ")");
        }
        Map<String, DType> dtypes = new LinkedHashMap<>();
        collectStorages(where, object.value(), dtypes);
        Map<String, Entry> storages = new LinkedHashMap<>();
        long at = keys.end();
        for (Object k : keyList) {
            if (!(k instanceof String key)) {
                throw new ModelFormatException(where + ": corrupt legacy checkpoint (storage key is a " + TorchPickle.typeName(k) + ")");
            }
            DType dtype = dtypes.get(key);
            if (dtype == null) {
                throw new ModelFormatException(where + ": corrupt legacy checkpoint (storage '" + oneLine(key) + "' is used by no tensor)");
            }
            if (at + 8 > n) {
                throw new ModelFormatException(where + ": truncated legacy checkpoint (storage '" + oneLine(key) + "' at byte " + at
                        + " of a " + n + "-byte file)");
            }
            long count = all.get(LONG_LE, at);
            long bytes = count < 0 ? -1 : Math.multiplyExact(count, (long) dtype.size());
            if (bytes < 0 || bytes > n - at - 8) {
                throw new ModelFormatException(where + ": truncated legacy checkpoint (storage '" + oneLine(key) + "' of " + count
                        + " elements runs past the end of the " + n + "-byte file)");
            }
            if (storages.put(key, new Entry(at + 8, bytes)) != null) {
                throw new ModelFormatException(where + ": corrupt legacy checkpoint (storage '" + oneLine(key) + "' listed twice)");
            }
            at += 8 + bytes;
        }
        return build(path, where, arena, all, object.value(), storages, Container.TORCH_LEGACY, root);
    }

    /** Storage key to dtype over every tensor of the object (iterative walk, bounded). */
    private static void collectStorages(String where, Object top, Map<String, DType> dtypes) throws ModelFormatException {
        List<Object> todo = new ArrayList<>();
        todo.add(top);
        Set<Object> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        int visits = 0;
        while (!todo.isEmpty()) {
            Object o = todo.removeLast();
            if (++visits > MAX_VISITS) {
                throw new ModelFormatException(where + ": checkpoint structure too large");
            }
            switch (o) {
                case TensorRef t -> dtypes.putIfAbsent(t.storage().key(), t.storage().dtype());
                case Map<?, ?> m -> {
                    if (seen.add(o)) {
                        todo.addAll(m.values());
                    }
                }
                case List<?> l -> {
                    if (seen.add(o)) {
                        todo.addAll(l);
                    }
                }
                case Tuple t -> {
                    if (seen.add(o)) {
                        todo.addAll(t.items());
                    }
                }
                case null, default -> {
                }
            }
        }
    }

    // ---------------------------------------------------------------- naming and views

    private static SafeTensors build(Path path, String where, Arena arena, MemorySegment all, Object top,
                                     Map<String, Entry> storages, Container container, String root) throws ModelFormatException {
        if (!(top instanceof Map<?, ?> topMap)) {
            throw new ModelFormatException(where + ": the checkpoint holds a " + TorchPickle.typeName(top)
                    + ", not a dict of tensors");
        }
        Map<String, TensorRef> flat = new LinkedHashMap<>();
        Map<String, Integer> dicts = new LinkedHashMap<>();
        Map<String, String> scalars = new LinkedHashMap<>();
        flatten(where, top, "", 0, flat, dicts, scalars, Collections.newSetFromMap(new IdentityHashMap<>()), new int[1]);
        String chosen = root != null ? root : chooseRoot(topMap);
        if (!chosen.isEmpty() && !dicts.containsKey(chosen)) {
            throw new ModelFormatException(where + ": no dict of tensors named '" + oneLine(chosen) + "' (has: "
                    + String.join(", ", dicts.keySet().stream().filter(d -> !d.isEmpty()).limit(10).toList()) + ")");
        }
        String prefix = chosen.isEmpty() ? "" : chosen + ".";
        Map<String, TensorInfo> infos = new LinkedHashMap<>();
        Map<String, Supplier<MemorySegment>> views = new LinkedHashMap<>();
        Map<String, String> described = new LinkedHashMap<>();
        Map<String, DType> storageTypes = new LinkedHashMap<>();
        for (Map.Entry<String, TensorRef> e : flat.entrySet()) {
            TensorRef t = e.getValue();
            described.put(e.getKey(), t.storage().dtype() + java.util.Arrays.toString(t.shape()));
            DType known = storageTypes.putIfAbsent(t.storage().key(), t.storage().dtype());
            if (known != null && known != t.storage().dtype()) {
                throw new ModelFormatException(where + ": storage '" + oneLine(t.storage().key()) + "' is used as both " + known
                        + " and " + t.storage().dtype());
            }
            if (!e.getKey().startsWith(prefix)) {
                continue;
            }
            String name = e.getKey().substring(prefix.length());
            Entry s = storages.get(t.storage().key());
            if (s == null) {
                throw new ModelFormatException(where + ": tensor '" + oneLine(e.getKey()) + "' uses storage '"
                        + oneLine(t.storage().key()) + "' which the file does not hold");
            }
            int es = t.storage().dtype().size();
            if (Math.multiplyExact(t.storage().numel(), (long) es) > s.size()) {
                throw new ModelFormatException(where + ": storage '" + oneLine(t.storage().key()) + "' holds " + s.size()
                        + " bytes, fewer than its " + t.storage().numel() + " " + t.storage().dtype() + " elements");
            }
            long numel = t.numel();
            long begin = numel == 0 ? s.offset() : s.offset() + t.offset() * es;
            if (!t.contiguous() && numel * es > Integer.MAX_VALUE - 64) {
                throw new ModelFormatException(where + ": tensor '" + oneLine(e.getKey()) + "' is a strided view of "
                        + numel + " elements, too large to copy out (unsupported)");
            }
            TensorInfo info = new TensorInfo(name, t.storage().dtype(), t.shape(), begin, begin + numel * es);
            infos.put(name, info);
            if (!t.contiguous()) {
                MemorySegment storage = all.asSlice(s.offset(), t.storage().numel() * es);
                views.put(name, () -> gather(storage, t, es));
            }
        }
        if (infos.isEmpty() && !flat.isEmpty() && chosen.isEmpty()) {
            throw new ModelFormatException(where + ": no tensors");
        }
        Structure structure = new Structure(chosen, Collections.unmodifiableMap(dicts), Collections.unmodifiableMap(described),
                Collections.unmodifiableMap(scalars));
        return SafeTensors.ofPickle(path, arena, all, Collections.unmodifiableMap(infos), scalars, container, views, structure);
    }

    /** ComfyUI's load_torch_file root, then spandrel's wrapper keys. */
    private static String chooseRoot(Map<?, ?> top) {
        if (top.get("state_dict") instanceof Map<?, ?>) {
            return "state_dict";
        }
        if (top.size() == 1) {
            Map.Entry<?, ?> only = top.entrySet().iterator().next();
            if (only.getValue() instanceof Map<?, ?> && only.getKey() != null) {
                return keyText(only.getKey());
            }
        }
        for (String k : WRAPPER_KEYS) {
            if (top.get(k) instanceof Map<?, ?>) {
                return k;
            }
        }
        return "";
    }

    /** Names every tensor by its dotted path; counts tensors per dict; keeps short scalars. */
    private static int flatten(String where, Object o, String path, int depth, Map<String, TensorRef> flat,
                               Map<String, Integer> dicts, Map<String, String> scalars, Set<Object> ancestors, int[] visits)
            throws ModelFormatException {
        if (++visits[0] > MAX_VISITS) {
            throw new ModelFormatException(where + ": checkpoint structure too large (more than " + MAX_VISITS + " values)");
        }
        if (depth > MAX_DEPTH) {
            throw new ModelFormatException(where + ": checkpoint nested deeper than " + MAX_DEPTH + " levels");
        }
        switch (o) {
            case TensorRef t -> {
                if (flat.put(path, t) != null) {
                    throw new ModelFormatException(where + ": two tensors named '" + oneLine(path) + "'");
                }
                return 1;
            }
            case Map<?, ?> m -> {
                return children(where, o, path, depth, m.entrySet().stream()
                        .map(e -> (Map.Entry<String, Object>) new java.util.AbstractMap.SimpleImmutableEntry<String, Object>(keyText(e.getKey()), e.getValue()))
                        .toList(), flat, dicts, scalars, ancestors, visits, true);
            }
            case List<?> l -> {
                return children(where, o, path, depth, indexed(l), flat, dicts, scalars, ancestors, visits, false);
            }
            case Tuple t -> {
                return children(where, o, path, depth, indexed(t.items()), flat, dicts, scalars, ancestors, visits, false);
            }
            case String s -> {
                scalar(scalars, path, s.length() > 200 ? s.substring(0, 200) + "..." : s);
                return 0;
            }
            case Long l -> {
                scalar(scalars, path, l.toString());
                return 0;
            }
            case Double d -> {
                scalar(scalars, path, d.toString());
                return 0;
            }
            case Boolean b -> {
                scalar(scalars, path, b.toString());
                return 0;
            }
            case null, default -> {
                return 0;
            }
        }
    }

    private static void scalar(Map<String, String> scalars, String path, String value) {
        if (scalars.size() < 1000) {
            scalars.put(path, value.replace('\n', ' '));
        }
    }

    private static List<Map.Entry<String, Object>> indexed(List<?> l) {
        List<Map.Entry<String, Object>> out = new ArrayList<>(l.size());
        for (int i = 0; i < l.size(); i++) {
            out.add(new java.util.AbstractMap.SimpleImmutableEntry<>(Integer.toString(i), l.get(i)));
        }
        return out;
    }

    private static int children(String where, Object container, String path, int depth, List<? extends Map.Entry<String, ?>> items,
                                Map<String, TensorRef> flat, Map<String, Integer> dicts, Map<String, String> scalars,
                                Set<Object> ancestors, int[] visits, boolean isDict) throws ModelFormatException {
        if (!ancestors.add(container)) {
            throw new ModelFormatException(where + ": checkpoint structure contains itself at '" + oneLine(path) + "'");
        }
        int count = 0;
        for (Map.Entry<String, ?> e : items) {
            if (path.length() + e.getKey().length() + 1 > MAX_NAME) {
                throw new ModelFormatException(where + ": a key path longer than " + MAX_NAME + " characters");
            }
            String child = path.isEmpty() ? e.getKey() : path + "." + e.getKey();
            count += flatten(where, e.getValue(), child, depth + 1, flat, dicts, scalars, ancestors, visits);
        }
        ancestors.remove(container);
        if (isDict && count > 0) {
            dicts.put(path, count);
        }
        return count;
    }

    private static String keyText(Object k) {
        return String.valueOf(k);
    }

    /** Copies a strided view into a fresh row-major segment. */
    private static MemorySegment gather(MemorySegment storage, TensorRef t, int es) {
        long numel = t.numel();
        MemorySegment out = MemorySegment.ofArray(new byte[Math.toIntExact(numel * es)]);
        int rank = t.shape().length;
        long[] idx = new long[rank];
        for (long i = 0; i < numel; i++) {
            long src = t.offset();
            for (int d = 0; d < rank; d++) {
                src += idx[d] * t.stride()[d];
            }
            MemorySegment.copy(storage, src * es, out, i * es, es);
            for (int d = rank - 1; d >= 0; d--) {
                if (++idx[d] < t.shape()[d]) {
                    break;
                }
                idx[d] = 0;
            }
        }
        return out;
    }

    private static String describe(Object v) {
        return v instanceof Long || v instanceof String ? oneLine(String.valueOf(v)) : TorchPickle.typeName(v);
    }

    static String oneLine(String s) {
        String flat = s.replaceAll("[\\x00-\\x1f\\x7f]", "?");
        return flat.length() > 120 ? flat.substring(0, 120) + "..." : flat;
    }
}
