package jdiffusion.tensor;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Locale;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * oneDNN's C API through the FFM API: the native library of {@code org.bytedeco:dnnl} (linux-x86_64), extracted
 * once from the class path into a cache folder and loaded at first use. Only what the bf16 layers need: memory
 * descriptors, matmul, convolution and reorder primitives, execution on one CPU engine.
 *
 * <p>Usable when the library loads and the CPU has bf16 dot products (oneDNN's effective ISA includes
 * avx512_core_bf16), and neither {@code -Djdiffusion.bf16=off} nor {@code JDIFFUSION_BF16=off} forces the fallback.
 */
final class OneDnn {
    static final String VERSION = "3.8.1-1.5.12";
    private static final String[] LIBS = {
            "org/bytedeco/opencl/linux-x86_64/libOpenCL.so.1",
            "org/bytedeco/dnnl/linux-x86_64/libgomp.so.1",
            "org/bytedeco/dnnl/linux-x86_64/libdnnl.so.3"};

    // enum values from oneapi/dnnl/dnnl_types.h and dnnl_common_types.h (3.8)
    static final int F32 = 3;
    static final int BF16 = 2;
    static final int TAG_ANY = 1;
    static final int TAG_A = 2;
    static final int TAG_AB = 3;
    static final int TAG_BA = 14;
    static final int TAG_ABCD = 5;
    static final int TAG_ACDB = 22;
    static final int FORWARD_INFERENCE = 96;
    static final int CONVOLUTION_DIRECT = 1;
    static final int QUERY_WEIGHTS_MD = 131;
    static final int ARG_SRC = 1;
    static final int ARG_DST = 17;
    static final int ARG_WEIGHTS = 33;
    static final int ARG_BIAS = 41;
    private static final int ISA_AVX512_CORE_BF16 = 0xe7;

    private static final ValueLayout.OfLong DIM = ValueLayout.JAVA_LONG;
    private static final java.lang.foreign.AddressLayout A = ValueLayout.ADDRESS;
    private static final ValueLayout.OfInt I = ValueLayout.JAVA_INT;

    private static final State STATE = load();

    private record State(String problem, String description, Api api, MemorySegment engine) {
    }

    /** The bound functions. */
    record Api(MethodHandle engineCreate, MethodHandle streamCreate, MethodHandle mdWithTag,
               MethodHandle mdDestroy, MethodHandle mdClone, MethodHandle mdEqual, MethodHandle mdSize,
               MethodHandle matmulPd, MethodHandle convPd, MethodHandle reorderPd, MethodHandle pdQueryMd,
               MethodHandle pdDestroy, MethodHandle primCreate, MethodHandle primDestroy, MethodHandle execute,
               MethodHandle streamWait, MethodHandle memCreate, MethodHandle memDestroy, MethodHandle isa,
               MethodHandle version, MethodHandle ompSetThreads, MethodHandle mdWithStrides) {
    }

    private OneDnn() {
    }

    /** Whether the native bf16 path runs (loaded, bf16 CPU, not forced off). */
    static boolean usable() {
        return STATE.problem == null && !forcedOff();
    }

    /** "oneDNN 3.8.1, isa avx512_core_bf16" (when loaded). */
    static String description() {
        return STATE.description;
    }

    /** Why the native path does not run; null when it does. */
    static String unavailableReason() {
        if (forcedOff()) {
            return "forced off by -Djdiffusion.bf16=off or JDIFFUSION_BF16=off";
        }
        return STATE.problem;
    }

    static boolean forcedOff() {
        String p = System.getProperty("jdiffusion.bf16");
        if (p == null) {
            p = System.getenv("JDIFFUSION_BF16");
        }
        return p != null && (p.equalsIgnoreCase("off") || p.equalsIgnoreCase("false") || p.equals("0"));
    }

    static Api api() {
        return STATE.api;
    }

    static MemorySegment engine() {
        return STATE.engine;
    }

    private static State load() {
        if (!System.getProperty("os.name", "").toLowerCase(Locale.ROOT).contains("linux")
                || !System.getProperty("os.arch", "").matches("amd64|x86_64")) {
            return new State("oneDNN natives are packaged for linux-x86_64 only", null, null, null);
        }
        try {
            Path dir = extract();
            Linker linker = Linker.nativeLinker();
            // OpenMP workers that spin long after each product would take the cores from the Java kernels between
            // them: keep the spin short unless the user chose otherwise (read when libgomp initialises)
            MethodHandle setenv = linker.downcallHandle(linker.defaultLookup().find("setenv").orElseThrow(),
                    FunctionDescriptor.of(I, A, A, I));
            try (Arena a = Arena.ofConfined()) {
                int ignored = (int) setenv.invokeExact(a.allocateFrom("GOMP_SPINCOUNT"), a.allocateFrom("20000"), 0);
            }
            Arena global = Arena.global();
            SymbolLookup gomp = SymbolLookup.libraryLookup(dir.resolve("libgomp.so.1"), global);
            SymbolLookup.libraryLookup(dir.resolve("libOpenCL.so.1"), global);
            SymbolLookup dnnl = SymbolLookup.libraryLookup(dir.resolve("libdnnl.so.3"), global);
            Api api = new Api(
                    h(linker, dnnl, "dnnl_engine_create", FunctionDescriptor.of(I, A, I, ValueLayout.JAVA_LONG)),
                    h(linker, dnnl, "dnnl_stream_create", FunctionDescriptor.of(I, A, A, I)),
                    h(linker, dnnl, "dnnl_memory_desc_create_with_tag", FunctionDescriptor.of(I, A, I, A, I, I)),
                    h(linker, dnnl, "dnnl_memory_desc_destroy", FunctionDescriptor.of(I, A)),
                    h(linker, dnnl, "dnnl_memory_desc_clone", FunctionDescriptor.of(I, A, A)),
                    h(linker, dnnl, "dnnl_memory_desc_equal", FunctionDescriptor.of(I, A, A)),
                    h(linker, dnnl, "dnnl_memory_desc_get_size", FunctionDescriptor.of(ValueLayout.JAVA_LONG, A)),
                    h(linker, dnnl, "dnnl_matmul_primitive_desc_create", FunctionDescriptor.of(I, A, A, A, A, A, A, A)),
                    h(linker, dnnl, "dnnl_convolution_forward_primitive_desc_create",
                            FunctionDescriptor.of(I, A, A, I, I, A, A, A, A, A, A, A, A, A)),
                    h(linker, dnnl, "dnnl_reorder_primitive_desc_create", FunctionDescriptor.of(I, A, A, A, A, A, A)),
                    h(linker, dnnl, "dnnl_primitive_desc_query_md", FunctionDescriptor.of(A, A, I, I)),
                    h(linker, dnnl, "dnnl_primitive_desc_destroy", FunctionDescriptor.of(I, A)),
                    h(linker, dnnl, "dnnl_primitive_create", FunctionDescriptor.of(I, A, A)),
                    h(linker, dnnl, "dnnl_primitive_destroy", FunctionDescriptor.of(I, A)),
                    h(linker, dnnl, "dnnl_primitive_execute", FunctionDescriptor.of(I, A, A, I, A)),
                    h(linker, dnnl, "dnnl_stream_wait", FunctionDescriptor.of(I, A)),
                    h(linker, dnnl, "dnnl_memory_create", FunctionDescriptor.of(I, A, A, A, A)),
                    h(linker, dnnl, "dnnl_memory_destroy", FunctionDescriptor.of(I, A)),
                    h(linker, dnnl, "dnnl_get_effective_cpu_isa", FunctionDescriptor.of(I)),
                    h(linker, dnnl, "dnnl_version", FunctionDescriptor.of(A)),
                    h(linker, gomp, "omp_set_num_threads", FunctionDescriptor.ofVoid(I)),
                    h(linker, dnnl, "dnnl_memory_desc_create_with_strides", FunctionDescriptor.of(I, A, I, A, I, A)));
            int isa = (int) api.isa.invokeExact();
            MemorySegment v = ((MemorySegment) api.version.invokeExact()).reinterpret(12);
            String version = v.get(I, 0) + "." + v.get(I, 4) + "." + v.get(I, 8);
            if ((isa & ISA_AVX512_CORE_BF16) != ISA_AVX512_CORE_BF16) {
                return new State("the CPU has no avx512_bf16 (oneDNN " + version + " isa 0x"
                        + Integer.toHexString(isa) + ")", null, null, null);
            }
            MemorySegment engine;
            try (Arena a = Arena.ofConfined()) {
                MemorySegment out = a.allocate(A);
                check((int) api.engineCreate.invokeExact(out, 1, 0L), "engine create");
                engine = out.get(ValueLayout.ADDRESS, 0);
            }
            return new State(null, "oneDNN " + version + ", isa " + isaName(isa), api, engine);
        } catch (Throwable t) {
            return new State("oneDNN did not load: " + (t.getMessage() == null ? t.toString() : t.getMessage()),
                    null, null, null);
        }
    }

    private static String isaName(int isa) {
        return switch (isa) {
            case 0xe7 -> "avx512_core_bf16";
            case 0x1ef -> "avx10_1_512 (avx512_core_fp16)";
            case 0xfef -> "avx512_core_amx";
            case 0x1fef -> "avx512_core_amx_fp16";
            default -> "0x" + Integer.toHexString(isa);
        };
    }

    private static MethodHandle h(Linker linker, SymbolLookup lib, String name, FunctionDescriptor fd) {
        return linker.downcallHandle(lib.find(name).orElseThrow(() -> new IllegalStateException("no symbol " + name)), fd);
    }

    /** Copies the three libraries out of the class path into a cache folder (once per version). */
    private static Path extract() throws IOException {
        String base = System.getProperty("jdiffusion.nativeCache");
        Path root;
        if (base != null) {
            root = Path.of(base);
        } else {
            String xdg = System.getenv("XDG_CACHE_HOME");
            root = xdg != null && !xdg.isEmpty() ? Path.of(xdg, "jdiffusion")
                    : Path.of(System.getProperty("user.home"), ".cache", "jdiffusion");
        }
        Path dir = root.resolve("dnnl-" + VERSION);
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            // a read-only home: the temporary directory, one folder per user
            dir = Path.of(System.getProperty("java.io.tmpdir"),
                    "jdiffusion-" + System.getProperty("user.name", "user"), "dnnl-" + VERSION);
            Files.createDirectories(dir);
        }
        for (String res : LIBS) {
            Path target = dir.resolve(res.substring(res.lastIndexOf('/') + 1));
            try (InputStream in = OneDnn.class.getClassLoader().getResourceAsStream(res)) {
                if (in == null) {
                    throw new IOException(res + " is not on the class path");
                }
                if (Files.isRegularFile(target)) {
                    continue; // extracted earlier (names carry the version)
                }
                Path tmp = Files.createTempFile(dir, target.getFileName().toString(), ".part");
                Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            }
        }
        return dir;
    }

    static void check(int status, String what) {
        if (status != 0) {
            throw new IllegalStateException("oneDNN " + what + " failed (status " + status + ")");
        }
    }

    // ---- small wrappers -------------------------------------------------------------------------------------

    /** A memory descriptor (owned by the caller: destroy it). */
    static MemorySegment md(long[] dims, int type, int tag) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment d = a.allocate(DIM, 12);
            for (int i = 0; i < dims.length; i++) {
                d.setAtIndex(DIM, i, dims[i]);
            }
            MemorySegment out = a.allocate(A);
            check((int) api().mdWithTag.invokeExact(out, dims.length, d, type, tag), "memory desc");
            return out.get(ValueLayout.ADDRESS, 0);
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /** A memory descriptor with explicit strides in elements (owned by the caller: destroy it). */
    static MemorySegment md(long[] dims, int type, long[] strides) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment d = a.allocate(DIM, 12);
            MemorySegment st = a.allocate(DIM, 12);
            for (int i = 0; i < dims.length; i++) {
                d.setAtIndex(DIM, i, dims[i]);
                st.setAtIndex(DIM, i, strides[i]);
            }
            MemorySegment out = a.allocate(A);
            check((int) api().mdWithStrides.invokeExact(out, dims.length, d, type, st), "memory desc");
            return out.get(ValueLayout.ADDRESS, 0);
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    static void destroyMd(MemorySegment md) {
        try {
            int ignored = (int) api().mdDestroy.invokeExact(md);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    static boolean mdEqual(MemorySegment a, MemorySegment b) {
        try {
            return (int) api().mdEqual.invokeExact(a, b) != 0;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    static long mdSize(MemorySegment md) {
        try {
            return (long) api().mdSize.invokeExact(md);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /** A primitive and the weights descriptor its descriptor asked for (a clone: destroy it). */
    record Built(MemorySegment primitive, MemorySegment weightsMd) {
    }

    /** Creates the primitive of a primitive descriptor (returned status != 0: null), cloning its weights md. */
    static Built build(MemorySegment pdOut, int status, boolean wantWeights) {
        if (status != 0) {
            return null;
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment pd = pdOut.get(ValueLayout.ADDRESS, 0);
            MemorySegment wmd = MemorySegment.NULL;
            if (wantWeights) {
                MemorySegment q = (MemorySegment) api().pdQueryMd.invokeExact(pd, QUERY_WEIGHTS_MD, 0);
                MemorySegment out = a.allocate(A);
                check((int) api().mdClone.invokeExact(out, q), "md clone");
                wmd = out.get(ValueLayout.ADDRESS, 0);
            }
            MemorySegment out = a.allocate(A);
            int s = (int) api().primCreate.invokeExact(out, pd);
            int ignored = (int) api().pdDestroy.invokeExact(pd);
            check(s, "primitive create");
            return new Built(out.get(ValueLayout.ADDRESS, 0), wmd);
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    static void destroyPrimitive(MemorySegment p) {
        try {
            int ignored = (int) api().primDestroy.invokeExact(p);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /** Converts src in layout srcMd to a new buffer in layout dstMd (the weights' one-time packing). */
    static MemorySegment reorder(MemorySegment src, MemorySegment srcMd, MemorySegment dstMd, Arena arena) {
        MemorySegment dst = arena.allocate(mdSize(dstMd), 64);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment pdOut = a.allocate(A);
            int s = (int) api().reorderPd.invokeExact(pdOut, srcMd, engine(), dstMd, engine(), MemorySegment.NULL);
            check(s, "reorder descriptor");
            Built b = build(pdOut, s, false);
            try {
                execute(b.primitive(), new int[] {1, 17}, new MemorySegment[] {srcMd, dstMd},
                        new MemorySegment[] {src, dst});
            } finally {
                destroyPrimitive(b.primitive());
            }
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        return dst;
    }

    private static final MemoryLayout EXEC_ARG = MemoryLayout.structLayout(I, MemoryLayout.paddingLayout(4), A);
    private static final ThreadLocal<MemorySegment> STREAM = new ThreadLocal<>();
    private static final ThreadLocal<int[]> OMP_THREADS = ThreadLocal.withInitial(() -> new int[] {-1});

    /**
     * Runs a primitive on this thread's stream with the given (arg, md, data) triples, OpenMP running as many
     * threads as {@link Parallel#threads()}. Calls are serialised: each one already uses every thread.
     */
    static void execute(MemorySegment primitive, int[] args, MemorySegment[] mds, MemorySegment[] data) {
        withMemories(args, mds, data, argv -> {
            synchronized (OneDnn.class) {
                Parallel.rest(); // our idle workers park: OpenMP's threads get the cores
                MemorySegment stream = stream();
                ompThreads(Parallel.threads());
                check((int) api().execute.invokeExact(primitive, stream, args.length, argv), "execute");
                check((int) api().streamWait.invokeExact(stream), "stream wait");
            }
        });
    }

    /**
     * Runs a primitive on this thread alone (OpenMP team of one, no lock): for many small products spread over
     * {@link Parallel}'s workers, each running primitives it created itself (oneDNN's library scratchpad ties a
     * primitive to its creating thread). Create such primitives after {@link #singleThreaded()}.
     */
    static void executeHere(MemorySegment primitive, int[] args, MemorySegment[] mds, MemorySegment[] data) {
        withMemories(args, mds, data, argv -> {
            singleThreaded();
            MemorySegment stream = stream();
            check((int) api().execute.invokeExact(primitive, stream, args.length, argv), "execute");
            check((int) api().streamWait.invokeExact(stream), "stream wait");
        });
    }

    /** What runs with a primitive's argument list. */
    private interface WithArgs {
        void run(MemorySegment argv) throws Throwable;
    }

    /**
     * Wraps each (md, data) pair in a oneDNN memory, builds the execute argument list (arg, memory), runs the body
     * with it and destroys the memories whatever happens.
     */
    private static void withMemories(int[] args, MemorySegment[] mds, MemorySegment[] data, WithArgs body) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment[] mems = new MemorySegment[args.length];
            MemorySegment argv = a.allocate(EXEC_ARG, args.length);
            try {
                for (int i = 0; i < args.length; i++) {
                    MemorySegment out = a.allocate(A);
                    check((int) api().memCreate.invokeExact(out, mds[i], engine(), data[i]), "memory create");
                    mems[i] = out.get(ValueLayout.ADDRESS, 0);
                    argv.set(I, i * 16L, args[i]);
                    argv.set(A, i * 16L + 8, mems[i]);
                }
                body.run(argv);
            } finally {
                for (MemorySegment m : mems) {
                    if (m != null) {
                        int ignored = (int) api().memDestroy.invokeExact(m);
                    }
                }
            }
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /** OpenMP teams started by this thread have one thread (until {@link #execute} sets it back). */
    static void singleThreaded() {
        ompThreads(1);
    }

    /** OpenMP teams started by this thread have n threads (set only when it changes: the call is not free). */
    private static void ompThreads(int n) {
        int[] omp = OMP_THREADS.get();
        if (omp[0] != n) {
            omp[0] = n;
            try {
                api().ompSetThreads.invokeExact(n);
            } catch (Throwable t) {
                throw new IllegalStateException(t);
            }
        }
    }

    private static MemorySegment stream() throws Throwable {
        MemorySegment s = STREAM.get();
        if (s == null) {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment out = a.allocate(A);
                check((int) api().streamCreate.invokeExact(out, engine(), 1), "stream create");
                s = out.get(ValueLayout.ADDRESS, 0);
            }
            STREAM.set(s);
        }
        return s;
    }

    // ---- bf16 conversion --------------------------------------------------------------------------------------

    private static final VectorSpecies<Integer> IS = IntVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Float> FS = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Short> SS =
            VectorSpecies.of(short.class, VectorShape.forBitSize(IS.vectorBitSize() / 2));

    /** Rounds n floats of src from off to bf16 (nearest, ties to even) into dst from byte offset dOff. */
    static void toBf16(float[] src, int off, MemorySegment dst, long dOff, int n) {
        int i = 0;
        int step = IS.length();
        for (; i <= n - step; i += step) {
            IntVector bits = FloatVector.fromArray(FS, src, off + i).reinterpretAsInts();
            IntVector r = bits.add(bits.lanewise(VectorOperators.LSHR, 16).and(1)).add(0x7FFF)
                    .lanewise(VectorOperators.LSHR, 16);
            ShortVector s = (ShortVector) r.convertShape(VectorOperators.I2S, SS, 0);
            s.intoMemorySegment(dst, dOff + 2L * i, ByteOrder.nativeOrder());
        }
        for (; i < n; i++) {
            dst.set(ValueLayout.JAVA_SHORT_UNALIGNED, dOff + 2L * i, bf16(src[off + i]));
        }
    }

    /** The scalar rounding (NaN stays NaN). */
    static short bf16(float x) {
        int bits = Float.floatToRawIntBits(x);
        if (Float.isNaN(x)) {
            return (short) ((bits >>> 16) | 0x40);
        }
        return (short) ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16);
    }

    /** A weight array as plain bf16 in a new buffer of arena. */
    static MemorySegment bf16Copy(float[] w, Arena arena) {
        MemorySegment seg = arena.allocate(2L * w.length, 64);
        toBf16(w, 0, seg, 0, w.length);
        return seg;
    }
}
