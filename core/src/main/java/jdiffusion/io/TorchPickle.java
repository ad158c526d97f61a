package jdiffusion.io;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.math.BigInteger;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A pickle interpreter that reads PyTorch tensor state dicts and nothing else. It is a data parser, not an
 * unpickler: a GLOBAL names one of a fixed set of known callables (an ordered dict, a tensor or parameter rebuild, a
 * typed storage class) whose effect is implemented here in Java, and every other global is refused at the
 * GLOBAL/STACK_GLOBAL opcode, before anything could be called. Nothing from a file is executed, loaded or
 * instantiated reflectively.
 *
 * <p>Values: {@code null} (None), {@link Boolean}, {@link Long} / {@link BigInteger}, {@link Double}, {@link String},
 * {@code byte[]}, {@link List} (a Python list), {@link Tuple}, {@link Map} (dict and OrderedDict, insertion
 * ordered), {@link Set}, {@link Storage} (a persistent id) and {@link TensorRef} (a tensor view of a storage).
 *
 * <p>Hostile input: every read is bounds-checked; stack, memo, object count, string length and number size are
 * bounded; the interpreter is a loop (no recursion); dict keys must be scalars (so hashing cannot recurse). Every
 * failure is a one-line {@link ModelFormatException}.
 */
public final class TorchPickle {
    /** Most values on the stack at once. */
    static final int MAX_STACK = 1 << 20;
    /** Most memo entries. */
    static final int MAX_MEMO = 1 << 20;
    /** Most objects one pickle may create (a full SDXL state dict needs ~50 000). */
    static final int MAX_OBJECTS = 4 << 20;
    /** Longest string or bytes value (tensor names are short). */
    static final int MAX_STRING = 16 << 20;
    /** Longest text line (GLOBAL module/name, text INT/FLOAT). */
    static final int MAX_LINE = 1024;
    /** Widest LONG1/LONG4 integer in bytes. */
    static final int MAX_LONG_BYTES = 64;
    /** Most tensor dimensions. */
    static final int MAX_RANK = 32;

    private static final ValueLayout.OfInt INT_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong LONG_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble DOUBLE_BE = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);

    /** A Python tuple (immutable). */
    public record Tuple(List<Object> items) {
        public int size() {
            return items.size();
        }

        public Object get(int i) {
            return items.get(i);
        }
    }

    /** A typed storage named by a persistent id: its element type, key (zip record / legacy key) and element count. */
    public record Storage(DType dtype, String key, long numel) {
    }

    /** A tensor: a strided view of a storage, in elements. */
    public record TensorRef(Storage storage, long offset, long[] shape, long[] stride) {
        public long numel() {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            return n;
        }

        /** Row-major with no gaps, so its bytes are one range of the storage (size-1 dims may have any stride). */
        public boolean contiguous() {
            long expect = 1;
            for (int i = shape.length - 1; i >= 0; i--) {
                if (shape[i] != 1 && stride[i] != expect) {
                    return numel() == 0;
                }
                expect *= shape[i];
            }
            return true;
        }

        @Override
        public String toString() {
            return storage.dtype() + Arrays.toString(shape) + " stride " + Arrays.toString(stride) + " offset " + offset;
        }
    }

    /** The callables a tensor state dict needs; anything else is refused by name. */
    private enum Global {
        ORDERED_DICT, REBUILD_TENSOR_V2, REBUILD_PARAMETER, REBUILD_PARAMETER_WITH_STATE, STORAGE
    }

    /** A GLOBAL that was accepted: what it is and, for storage classes, the element type. */
    private record GlobalRef(Global kind, String name, DType dtype) {
    }

    private static final Map<String, GlobalRef> ALLOWED = new HashMap<>();

    static {
        allow(new GlobalRef(Global.ORDERED_DICT, "collections.OrderedDict", null));
        allow(new GlobalRef(Global.REBUILD_TENSOR_V2, "torch._utils._rebuild_tensor_v2", null));
        allow(new GlobalRef(Global.REBUILD_PARAMETER, "torch._utils._rebuild_parameter", null));
        allow(new GlobalRef(Global.REBUILD_PARAMETER_WITH_STATE, "torch._utils._rebuild_parameter_with_state", null));
        String[][] storages = {{"Half", "F16"}, {"Float", "F32"}, {"BFloat16", "BF16"}, {"Double", "F64"}, {"Long", "I64"},
            {"Int", "I32"}, {"Short", "I16"}, {"Char", "I8"}, {"Byte", "U8"}, {"Bool", "BOOL"}};
        for (String[] s : storages) {
            allow(new GlobalRef(Global.STORAGE, "torch." + s[0] + "Storage", DType.valueOf(s[1])));
        }
    }

    private static void allow(GlobalRef g) {
        ALLOWED.put(g.name(), g);
    }

    private final String where;
    private final MemorySegment in;
    private final long limit;
    private long pos;
    private final ArrayList<Object> stack = new ArrayList<>();
    private final ArrayList<Integer> marks = new ArrayList<>();
    private final Map<Long, Object> memo = new HashMap<>();
    private int objects;

    private TorchPickle(String where, MemorySegment in, long start, long limit) {
        this.where = where;
        this.in = in;
        this.pos = start;
        this.limit = limit;
    }

    /** The result of one pickle: its value and the offset just past its STOP opcode. */
    public record Result(Object value, long end) {
    }

    /** Reads the pickle in bytes [start, limit) of in; trailing bytes after STOP are not read. */
    public static Result read(String where, MemorySegment in, long start, long limit) throws ModelFormatException {
        TorchPickle p = new TorchPickle(where, in, start, Math.min(limit, in.byteSize()));
        try {
            Object v = p.run();
            return new Result(v, p.pos);
        } catch (ModelFormatException e) {
            throw e;
        } catch (ArithmeticException | IndexOutOfBoundsException | ClassCastException | IllegalArgumentException e) {
            throw new ModelFormatException(where + ": corrupt pickle at byte " + p.pos + " (" + e.getClass().getSimpleName() + ")");
        }
    }

    /** Reads one whole pickle from bytes (the entry point for fuzzing the interpreter alone). */
    public static Object read(String where, byte[] pickle) throws ModelFormatException {
        return read(where, MemorySegment.ofArray(pickle), 0, pickle.length).value();
    }

    private ModelFormatException bad(String what) {
        return new ModelFormatException(where + ": corrupt pickle at byte " + pos + " (" + what + ")");
    }

    private int u8() throws ModelFormatException {
        need(1);
        return in.get(ValueLayout.JAVA_BYTE, pos++) & 0xff;
    }

    private int u16() throws ModelFormatException {
        return u8() | (u8() << 8);
    }

    private long u32() throws ModelFormatException {
        need(4);
        long v = in.get(INT_LE, pos) & 0xffffffffL;
        pos += 4;
        return v;
    }

    private int i32() throws ModelFormatException {
        need(4);
        int v = in.get(INT_LE, pos);
        pos += 4;
        return v;
    }

    private long u64() throws ModelFormatException {
        need(8);
        long v = in.get(LONG_LE, pos);
        pos += 8;
        if (v < 0) {
            throw bad("length " + Long.toUnsignedString(v) + " too large");
        }
        return v;
    }

    private void need(long n) throws ModelFormatException {
        if (n < 0 || limit - pos < n) {
            throw new ModelFormatException(where + ": truncated pickle (needs " + n + " more bytes at byte " + pos
                    + ", has " + Math.max(0, limit - pos) + ")");
        }
    }

    private byte[] bytes(long n) throws ModelFormatException {
        if (n > MAX_STRING) {
            throw bad("string of " + n + " bytes is longer than the " + MAX_STRING + " allowed");
        }
        need(n);
        byte[] b = in.asSlice(pos, n).toArray(ValueLayout.JAVA_BYTE);
        pos += n;
        return b;
    }

    private String utf8(long n) throws ModelFormatException {
        return new String(bytes(n), StandardCharsets.UTF_8);
    }

    /** A text line without its newline (text opcodes of protocol 0). */
    private String line() throws ModelFormatException {
        StringBuilder sb = new StringBuilder();
        while (true) {
            int c = u8();
            if (c == '\n') {
                return sb.toString();
            }
            if (sb.length() >= MAX_LINE) {
                throw bad("text line longer than " + MAX_LINE + " bytes");
            }
            sb.append((char) c);
        }
    }

    private void push(Object v) throws ModelFormatException {
        if (stack.size() >= MAX_STACK) {
            throw bad("stack deeper than " + MAX_STACK);
        }
        stack.add(v);
    }

    private <T> T created(T v) throws ModelFormatException {
        if (++objects > MAX_OBJECTS) {
            throw bad("more than " + MAX_OBJECTS + " objects");
        }
        return v;
    }

    private Object pop() throws ModelFormatException {
        if (stack.isEmpty() || (!marks.isEmpty() && marks.getLast() == stack.size())) {
            throw bad("stack underflow");
        }
        return stack.removeLast();
    }

    private Object top() throws ModelFormatException {
        if (stack.isEmpty() || (!marks.isEmpty() && marks.getLast() == stack.size())) {
            throw bad("stack underflow");
        }
        return stack.getLast();
    }

    /** Pops everything above the last MARK (and the mark). */
    private List<Object> popMark() throws ModelFormatException {
        if (marks.isEmpty()) {
            throw bad("no MARK on the stack");
        }
        int m = marks.removeLast();
        List<Object> items = new ArrayList<>(stack.subList(m, stack.size()));
        stack.subList(m, stack.size()).clear();
        return items;
    }

    private void memoPut(long key) throws ModelFormatException {
        if (memo.size() >= MAX_MEMO && !memo.containsKey(key)) {
            throw bad("memo larger than " + MAX_MEMO);
        }
        memo.put(key, top());
    }

    private Object memoGet(long key) throws ModelFormatException {
        if (!memo.containsKey(key)) {
            throw bad("memo key " + key + " not set");
        }
        return memo.get(key);
    }

    private Object run() throws ModelFormatException {
        while (true) {
            int op = u8();
            switch (op) {
                case 0x80 -> { // PROTO
                    int v = u8();
                    if (v > 5) {
                        throw bad("unsupported pickle protocol " + v);
                    }
                }
                case 0x95 -> u64(); // FRAME: a length hint; frames need no special handling
                case '.' -> { // STOP
                    Object v = pop();
                    if (!stack.isEmpty() || !marks.isEmpty()) {
                        throw bad("values left on the stack at STOP");
                    }
                    return v;
                }
                case '(' -> {
                    if (marks.size() >= MAX_STACK) {
                        throw bad("too many MARKs");
                    }
                    marks.add(stack.size());
                }
                case '0' -> pop(); // POP
                case '1' -> popMark(); // POP_MARK
                case '2' -> push(top()); // DUP
                case 'N' -> push(null);
                case 0x88 -> push(Boolean.TRUE);
                case 0x89 -> push(Boolean.FALSE);
                case 'I' -> push(textInt(line()));
                case 'J' -> push((long) i32());
                case 'K' -> push((long) u8());
                case 'M' -> push((long) u16());
                case 'L' -> {
                    String s = line();
                    push(textInt(s.endsWith("L") ? s.substring(0, s.length() - 1) : s));
                }
                case 0x8a -> push(longBytes(u8()));
                case 0x8b -> {
                    long n = i32();
                    if (n < 0 || n > MAX_LONG_BYTES) {
                        throw bad("LONG4 of " + n + " bytes");
                    }
                    push(longBytes((int) n));
                }
                case 'F' -> {
                    try {
                        push(Double.parseDouble(line()));
                    } catch (NumberFormatException e) {
                        throw bad("malformed FLOAT");
                    }
                }
                case 'G' -> {
                    need(8);
                    double d = in.get(DOUBLE_BE, pos);
                    pos += 8;
                    push(d);
                }
                case 'X' -> push(created(utf8(u32())));
                case 0x8c -> push(created(utf8(u8())));
                case 0x8d -> push(created(utf8(u64())));
                case 'V' -> push(created(line())); // raw-unicode-escape text; escapes are kept as written
                case 'T' -> {
                    long n = i32();
                    if (n < 0) {
                        throw bad("negative BINSTRING length");
                    }
                    push(created(new String(bytes(n), StandardCharsets.ISO_8859_1)));
                }
                case 'U' -> push(created(new String(bytes(u8()), StandardCharsets.ISO_8859_1)));
                case 'S' -> push(created(quoted(line())));
                case 'B' -> push(created(bytes(u32())));
                case 'C' -> push(created(bytes(u8())));
                case 0x8e -> push(created(bytes(u64())));
                case ']' -> push(created(new ArrayList<>()));
                case 'l' -> push(created(new ArrayList<>(popMark())));
                case 'a' -> { // APPEND
                    Object v = pop();
                    list(top()).add(v);
                }
                case 'e' -> { // APPENDS
                    List<Object> items = popMark();
                    list(top()).addAll(items);
                }
                case ')' -> push(created(new Tuple(List.of())));
                case 't' -> push(created(tuple(popMark())));
                case 0x85 -> push(created(tuple(java.util.Collections.singletonList(pop()))));
                case 0x86 -> {
                    Object b = pop();
                    Object a = pop();
                    push(created(tuple(Arrays.asList(a, b))));
                }
                case 0x87 -> {
                    Object c = pop();
                    Object b = pop();
                    Object a = pop();
                    push(created(tuple(Arrays.asList(a, b, c))));
                }
                case '}' -> push(created(new LinkedHashMap<>()));
                case 'd' -> {
                    List<Object> items = popMark();
                    Map<Object, Object> m = created(new LinkedHashMap<>());
                    putAll(m, items);
                    push(m);
                }
                case 's' -> { // SETITEM
                    Object v = pop();
                    Object k = pop();
                    dict(top()).put(key(k), v);
                }
                case 'u' -> { // SETITEMS
                    List<Object> items = popMark();
                    putAll(dict(top()), items);
                }
                case 0x8f -> push(created(new LinkedHashSet<>()));
                case 0x90 -> { // ADDITEMS
                    List<Object> items = popMark();
                    Set<Object> s = set(top());
                    for (Object o : items) {
                        s.add(key(o));
                    }
                }
                case 0x91 -> { // FROZENSET
                    Set<Object> s = created(new LinkedHashSet<>());
                    for (Object o : popMark()) {
                        s.add(key(o));
                    }
                    push(java.util.Collections.unmodifiableSet(s));
                }
                case 'g' -> push(memoGet(textIndex(line())));
                case 'h' -> push(memoGet(u8()));
                case 'j' -> push(memoGet(u32()));
                case 'p' -> memoPut(textIndex(line()));
                case 'q' -> memoPut(u8());
                case 'r' -> memoPut(u32());
                case 0x94 -> memoPut(memo.size()); // MEMOIZE
                case 'c' -> { // GLOBAL
                    String module = line();
                    String name = line();
                    push(global(module, name));
                }
                case 0x93 -> { // STACK_GLOBAL
                    Object name = pop();
                    Object module = pop();
                    if (!(module instanceof String m) || !(name instanceof String n)) {
                        throw bad("STACK_GLOBAL needs two strings");
                    }
                    push(global(m, n));
                }
                case 'R' -> { // REDUCE
                    Object args = pop();
                    Object callable = pop();
                    push(reduce(callable, args));
                }
                case 'b' -> build();
                case 'Q' -> push(persistent(pop())); // BINPERSID
                case 'P' -> throw refused("text persistent id (PERSID)");
                case 'i' -> throw refused("INST opcode (instantiates a class)");
                case 'o' -> throw refused("OBJ opcode (instantiates a class)");
                case 0x81 -> throw refused("NEWOBJ opcode (instantiates a class)");
                case 0x92 -> throw refused("NEWOBJ_EX opcode (instantiates a class)");
                case 0x82, 0x83, 0x84 -> throw refused("EXT opcode (extension registry)");
                case 0x96, 0x97, 0x98 -> throw refused("out-of-band buffer opcode");
                default -> throw bad(String.format("unknown opcode 0x%02x", op));
            }
        }
    }

    private ModelFormatException refused(String what) {
        return new ModelFormatException("refused " + what + " in " + where + " at byte " + (pos - 1)
                + " (only tensor state dicts are read; nothing was run)");
    }

    private GlobalRef global(String module, String name) throws ModelFormatException {
        GlobalRef g = ALLOWED.get(module + "." + name);
        if (g == null) {
            String shown = (module + "." + name).replaceAll("[^\\x20-\\x7e]", "?");
            if (shown.length() > 200) {
                shown = shown.substring(0, 200) + "...";
            }
            throw new ModelFormatException("refused pickle global '" + shown + "' in " + where
                    + " (only tensor state dicts are read; nothing was run)");
        }
        return g;
    }

    private Object reduce(Object callable, Object args) throws ModelFormatException {
        if (!(callable instanceof GlobalRef g)) {
            throw bad("REDUCE of a value that is not a callable");
        }
        if (!(args instanceof Tuple t)) {
            throw bad("REDUCE arguments are not a tuple");
        }
        return switch (g.kind()) {
            case ORDERED_DICT -> {
                Map<Object, Object> m = created(new LinkedHashMap<>());
                if (t.size() == 1 && t.get(0) instanceof List<?> pairs) {
                    for (Object p : pairs) {
                        if (!(p instanceof Tuple kv) || kv.size() != 2) {
                            throw bad("OrderedDict items are not (key, value) pairs");
                        }
                        m.put(key(kv.get(0)), kv.get(1));
                    }
                } else if (t.size() != 0) {
                    throw bad("OrderedDict called with " + t.size() + " arguments");
                }
                yield m;
            }
            case REBUILD_TENSOR_V2 -> created(rebuildTensor(t));
            case REBUILD_PARAMETER, REBUILD_PARAMETER_WITH_STATE -> {
                if (t.size() < 1 || !(t.get(0) instanceof TensorRef tensor)) {
                    throw bad(g.name() + " needs a tensor");
                }
                yield tensor;
            }
            case STORAGE -> throw new ModelFormatException("refused calling " + g.name() + " in " + where
                    + " (storages come only from persistent ids; nothing was run)");
        };
    }

    /** _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]). */
    private TensorRef rebuildTensor(Tuple t) throws ModelFormatException {
        if (t.size() < 4 || !(t.get(0) instanceof Storage s)) {
            throw bad("_rebuild_tensor_v2 needs (storage, offset, size, stride, ...)");
        }
        long offset = nonNegative(t.get(1), "storage offset");
        long[] shape = longs(t.get(2), "size");
        long[] stride = longs(t.get(3), "stride");
        if (shape.length != stride.length) {
            throw bad("tensor size " + Arrays.toString(shape) + " and stride " + Arrays.toString(stride) + " differ in rank");
        }
        long numel = 1;
        long last = offset;
        for (int i = 0; i < shape.length; i++) {
            numel = Math.multiplyExact(numel, shape[i]);
            if (shape[i] > 0) {
                last = Math.addExact(last, Math.multiplyExact(shape[i] - 1, stride[i]));
            }
        }
        if (numel > 0 && last >= s.numel()) {
            throw new ModelFormatException(where + ": tensor view " + Arrays.toString(shape) + " stride " + Arrays.toString(stride)
                    + " offset " + offset + " reaches element " + last + " of a storage of " + s.numel());
        }
        if (shape.length > 0) {
            for (long d : shape) {
                if (d > Integer.MAX_VALUE) {
                    throw bad("tensor dimension " + d + " too large");
                }
            }
        }
        return new TensorRef(s, offset, shape, stride);
    }

    private long[] longs(Object v, String what) throws ModelFormatException {
        if (!(v instanceof Tuple t)) {
            throw bad("tensor " + what + " is not a tuple");
        }
        if (t.size() > MAX_RANK) {
            throw bad("tensor of rank " + t.size());
        }
        long[] out = new long[t.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = nonNegative(t.get(i), what);
        }
        return out;
    }

    private long nonNegative(Object v, String what) throws ModelFormatException {
        if (!(v instanceof Long l) || l < 0) {
            throw bad("tensor " + what + " is not a non-negative integer");
        }
        return l;
    }

    /** BUILD: state for an OrderedDict (its _metadata attribute) or a parameter is accepted and ignored. */
    private void build() throws ModelFormatException {
        Object state = pop();
        Object target = top();
        if (!(target instanceof Map<?, ?>) && !(target instanceof TensorRef)) {
            throw bad("BUILD on a " + typeName(target));
        }
        if (state != null && !(state instanceof Map<?, ?>) && !(state instanceof Tuple)) {
            throw bad("BUILD state is a " + typeName(state));
        }
    }

    /** ('storage', torch.XStorage, key, location, numel[, view_metadata None]) -> Storage. */
    private Storage persistent(Object pid) throws ModelFormatException {
        if (!(pid instanceof Tuple t) || t.size() < 5 || t.size() > 6 || !"storage".equals(t.get(0))) {
            throw new ModelFormatException("refused persistent id other than ('storage', <storage class>, key, location, numel) in "
                    + where + " at byte " + pos);
        }
        if (!(t.get(1) instanceof GlobalRef g) || g.kind() != Global.STORAGE) {
            throw bad("persistent id names no torch storage class");
        }
        if (!(t.get(2) instanceof String key) || key.isEmpty() || key.length() > 64) {
            throw bad("storage key is not a short string");
        }
        if (!(t.get(3) instanceof String)) {
            throw bad("storage location is not a string");
        }
        long numel = nonNegative(t.get(4), "storage size");
        if (t.size() == 6 && t.get(5) != null) {
            throw new ModelFormatException(where + ": storage views of the old legacy format are not supported");
        }
        return created(new Storage(g.dtype(), key, numel));
    }

    private void putAll(Map<Object, Object> m, List<Object> items) throws ModelFormatException {
        if (items.size() % 2 != 0) {
            throw bad("odd number of items for a dict");
        }
        for (int i = 0; i < items.size(); i += 2) {
            m.put(key(items.get(i)), items.get(i + 1));
        }
    }

    /** Dict keys and set members must be scalars, so that hashing and equality never recurse. */
    private Object key(Object k) throws ModelFormatException {
        if (k == null || k instanceof String || k instanceof Long || k instanceof BigInteger || k instanceof Double
                || k instanceof Boolean) {
            return k;
        }
        throw bad("dict key of type " + typeName(k));
    }

    @SuppressWarnings("unchecked")
    private List<Object> list(Object o) throws ModelFormatException {
        if (o instanceof ArrayList<?> l) {
            return (List<Object>) l;
        }
        throw bad("APPEND to a " + typeName(o));
    }

    @SuppressWarnings("unchecked")
    private Map<Object, Object> dict(Object o) throws ModelFormatException {
        if (o instanceof LinkedHashMap<?, ?> m) {
            return (Map<Object, Object>) m;
        }
        throw bad("SETITEM on a " + typeName(o));
    }

    @SuppressWarnings("unchecked")
    private Set<Object> set(Object o) throws ModelFormatException {
        if (o instanceof LinkedHashSet<?> s) {
            return (Set<Object>) s;
        }
        throw bad("ADDITEMS to a " + typeName(o));
    }

    private static Tuple tuple(List<Object> items) {
        return new Tuple(java.util.Collections.unmodifiableList(new ArrayList<>(items)));
    }

    private Object longBytes(int n) throws ModelFormatException {
        if (n == 0) {
            return 0L;
        }
        byte[] le = bytes(n);
        byte[] be = new byte[n];
        for (int i = 0; i < n; i++) {
            be[i] = le[n - 1 - i];
        }
        BigInteger b = new BigInteger(be);
        return b.bitLength() < 64 ? (Object) b.longValue() : b;
    }

    private Object textInt(String s) throws ModelFormatException {
        if (s.equals("00")) {
            return Boolean.FALSE;
        }
        if (s.equals("01")) {
            return Boolean.TRUE;
        }
        try {
            BigInteger b = new BigInteger(s.strip());
            if (b.bitLength() > MAX_LONG_BYTES * 8) {
                throw bad("integer too large");
            }
            return b.bitLength() < 64 ? (Object) b.longValue() : b;
        } catch (NumberFormatException e) {
            throw bad("malformed integer");
        }
    }

    private long textIndex(String s) throws ModelFormatException {
        try {
            long v = Long.parseLong(s.strip());
            if (v < 0) {
                throw bad("negative memo index");
            }
            return v;
        } catch (NumberFormatException e) {
            throw bad("malformed memo index");
        }
    }

    private String quoted(String s) throws ModelFormatException {
        if (s.length() >= 2 && (s.charAt(0) == '\'' || s.charAt(0) == '"') && s.charAt(s.length() - 1) == s.charAt(0)) {
            return s.substring(1, s.length() - 1);
        }
        throw bad("malformed STRING");
    }

    static String typeName(Object o) {
        return switch (o) {
            case null -> "None";
            case String s -> "str";
            case Long l -> "int";
            case BigInteger b -> "int";
            case Double d -> "float";
            case Boolean b -> "bool";
            case byte[] b -> "bytes";
            case Tuple t -> "tuple";
            case List<?> l -> "list";
            case Map<?, ?> m -> "dict";
            case Set<?> s -> "set";
            case Storage s -> "storage";
            case TensorRef t -> "tensor";
            case GlobalRef g -> g.name();
            default -> o.getClass().getSimpleName();
        };
    }
}
