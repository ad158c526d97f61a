package jdiffusion.io;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

/**
 * Test-only: writes PyTorch checkpoints the way torch.save does (protocol-2 pickle of dicts, OrderedDicts and
 * {@code _rebuild_tensor_v2} tensors with persistent storage ids; zip or legacy container), so the reader can be
 * checked on layouts the goldens do not contain (strided views, wrappers, full models).
 */
public final class TorchSaveWriter {
    /** A tensor: a view (element offset, shape, stride) of storage {@code storage}. */
    record T(String storage, DType dtype, long[] shape, long[] stride, long offset) {
        static T contiguous(String storage, DType dtype, long... shape) {
            long[] stride = new long[shape.length];
            long s = 1;
            for (int i = shape.length - 1; i >= 0; i--) {
                stride[i] = s;
                s *= shape[i];
            }
            return new T(storage, dtype, shape, stride, 0);
        }
    }

    /** An OrderedDict (a plain {@link Map} is written as a dict). */
    record Ordered(Map<String, Object> items) {
    }

    /** A raw pickle fragment spliced in as it is (for hostile test input). */
    record Raw(byte[] bytes) {
    }

    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final Map<String, byte[]> storages;

    private TorchSaveWriter(Map<String, byte[]> storages) {
        this.storages = storages;
    }

    /** The data.pkl of obj (a Map / Ordered of tensors, nested maps, numbers, strings). */
    static byte[] pickle(Object obj, Map<String, byte[]> storages) {
        TorchSaveWriter w = new TorchSaveWriter(storages);
        w.out.write(0x80);
        w.out.write(2);
        w.value(obj);
        w.out.write('.');
        return w.out.toByteArray();
    }

    private void value(Object o) {
        switch (o) {
            case null -> out.write('N');
            case T t -> tensor(t);
            case Ordered m -> {
                global("collections", "OrderedDict");
                out.write(')');
                out.write('R');
                items(m.items());
            }
            case Map<?, ?> m -> {
                out.write('}');
                items(m);
            }
            case List<?> l -> {
                out.write(']');
                for (Object v : l) {
                    value(v);
                    out.write('a');
                }
            }
            case String s -> string(s);
            case Integer i -> integer(i);
            case Long l -> integer(l);
            case Boolean b -> out.write(b ? 0x88 : 0x89);
            case Raw r -> out.writeBytes(r.bytes());
            default -> throw new IllegalArgumentException(o.getClass().toString());
        }
    }

    private void items(Map<?, ?> m) {
        for (Map.Entry<?, ?> e : m.entrySet()) {
            value(e.getKey());
            value(e.getValue());
            out.write('s');
        }
    }

    private void tensor(T t) {
        global("torch._utils", "_rebuild_tensor_v2");
        out.write('(');
        out.write('(');
        string("storage");
        global("torch", storageClass(t.dtype()));
        string(t.storage());
        string("cpu");
        integer(storages.get(t.storage()).length / t.dtype().size());
        out.write('t');
        out.write('Q');
        integer(t.offset());
        tuple(t.shape());
        tuple(t.stride());
        out.write(0x89);
        global("collections", "OrderedDict");
        out.write(')');
        out.write('R');
        out.write('t');
        out.write('R');
    }

    private void tuple(long[] v) {
        out.write('(');
        for (long x : v) {
            integer(x);
        }
        out.write('t');
    }

    void global(String module, String name) {
        out.write('c');
        out.writeBytes((module + "\n" + name + "\n").getBytes(StandardCharsets.US_ASCII));
    }

    private void string(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        out.write('X');
        out.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(b.length).array());
        out.writeBytes(b);
    }

    private void integer(long v) {
        if (v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE) {
            out.write('J');
            out.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt((int) v).array());
        } else {
            out.write(0x8a);
            out.write(8);
            out.writeBytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array());
        }
    }

    static String storageClass(DType d) {
        return switch (d) {
            case F32 -> "FloatStorage";
            case F16 -> "HalfStorage";
            case BF16 -> "BFloat16Storage";
            case F64 -> "DoubleStorage";
            case I64 -> "LongStorage";
            case I32 -> "IntStorage";
            case I16 -> "ShortStorage";
            case I8 -> "CharStorage";
            case U8 -> "ByteStorage";
            case BOOL -> "BoolStorage";
        };
    }

    /** The zip format: {@code <prefix>/data.pkl}, {@code <prefix>/data/<key>}, byteorder, version (all stored). */
    static byte[] zip(String prefix, Object obj, Map<String, byte[]> storages, boolean deflatePickle) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ZipOutputStream z = new ZipOutputStream(bytes)) {
            entry(z, prefix + "/data.pkl", pickle(obj, storages), deflatePickle);
            entry(z, prefix + "/byteorder", "little".getBytes(StandardCharsets.US_ASCII), false);
            for (Map.Entry<String, byte[]> s : storages.entrySet()) {
                entry(z, prefix + "/data/" + s.getKey(), s.getValue(), false);
            }
            entry(z, prefix + "/version", "3\n".getBytes(StandardCharsets.US_ASCII), false);
        }
        return bytes.toByteArray();
    }

    private static void entry(ZipOutputStream z, String name, byte[] data, boolean deflate) throws IOException {
        ZipEntry e = new ZipEntry(name);
        if (!deflate) {
            e.setMethod(ZipEntry.STORED);
            e.setSize(data.length);
            e.setCompressedSize(data.length);
            CRC32 crc = new CRC32();
            crc.update(data);
            e.setCrc(crc.getValue());
        }
        z.putNextEntry(e);
        z.write(data);
        z.closeEntry();
    }

    /** The legacy format: magic, protocol, sys info, object, key list pickles, then count + bytes per storage. */
    static byte[] legacy(Object obj, Map<String, byte[]> storages, Map<String, DType> dtypes) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        b.writeBytes(new byte[] {(byte) 0x80, 2, (byte) 0x8a, 10, 0x6c, (byte) 0xfc, (byte) 0x9c, 0x46, (byte) 0xf9, 0x20, 0x6a,
            (byte) 0xa8, 0x50, 0x19, '.'});
        b.writeBytes(new byte[] {(byte) 0x80, 2, 'M', (byte) 0xe9, 0x03, '.'});
        Map<String, Object> sys = new LinkedHashMap<>();
        sys.put("protocol_version", 1001);
        sys.put("little_endian", true);
        b.writeBytes(pickle(sys, storages));
        b.writeBytes(pickle(obj, storages));
        b.writeBytes(pickle(List.copyOf(storages.keySet()), storages));
        for (Map.Entry<String, byte[]> s : storages.entrySet()) {
            b.writeBytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN)
                    .putLong(s.getValue().length / dtypes.get(s.getKey()).size()).array());
            b.writeBytes(s.getValue());
        }
        return b.toByteArray();
    }

    /**
     * Writes every tensor of a safetensors file into a zip (or legacy) checkpoint {@code {wrapper: OrderedDict}}
     * (no wrapper when null), one storage per tensor, as torch.save of a loaded state dict would.
     */
    public static void convert(SafeTensors src, Path dst, String wrapper, boolean legacyFormat) throws IOException {
        Map<String, byte[]> storages = new LinkedHashMap<>();
        Map<String, DType> dtypes = new LinkedHashMap<>();
        Map<String, Object> sd = new LinkedHashMap<>();
        int k = 0;
        for (String name : src.names()) {
            TensorInfo info = src.info(name);
            String key = Integer.toString(k++);
            storages.put(key, src.segment(name).toArray(ValueLayout.JAVA_BYTE));
            dtypes.put(key, info.dtype());
            sd.put(name, T.contiguous(key, info.dtype(), info.shape()));
        }
        Object obj = wrapper == null ? new Ordered(sd) : Map.of(wrapper, new Ordered(sd));
        byte[] bytes = legacyFormat ? legacy(obj, storages, dtypes) : zip(dst.getFileName().toString().replaceFirst("\\.[^.]*$", ""),
                obj, storages, false);
        try (OutputStream o = Files.newOutputStream(dst)) {
            o.write(bytes);
        }
    }
}
