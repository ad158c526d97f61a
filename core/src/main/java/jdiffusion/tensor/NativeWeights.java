package jdiffusion.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.ref.Cleaner;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The bf16 weights of one native layer and the oneDNN primitives it made, per input shape. The weights are kept
 * plain (the checkpoint's order) until the first primitive says which blocked layout it wants; they are reordered
 * into it once and the plain copy dropped. A shape whose primitive wants another layout gets its own copy (oneDNN
 * picks the layout from the channel counts, so in practice one layout serves every shape).
 */
final class NativeWeights {
    static final Cleaner CLEANER = Cleaner.create();

    private MemorySegment plain;
    /** Owns the plain copy: closed once the weights are packed (off-heap memory the collector would not hurry to free). */
    private Arena plainArena;
    private final MemorySegment plainMd;
    private final List<MemorySegment[]> layouts = new ArrayList<>();
    /** Native objects to free with the layer: primitives and descriptors. */
    final Natives natives = new Natives();

    NativeWeights(float[] weights, long[] dims, int plainTag) {
        plainArena = natives.arena(Arena.ofShared());
        plain = OneDnn.bf16Copy(weights, plainArena);
        plainMd = natives.md(OneDnn.md(dims, OneDnn.BF16, plainTag));
    }

    /** The weights laid out as md asks (reordered on first request). */
    synchronized MemorySegment layout(MemorySegment md) {
        for (MemorySegment[] l : layouts) {
            if (OneDnn.mdEqual(l[0], md)) {
                return l[1];
            }
        }
        MemorySegment data;
        if (OneDnn.mdEqual(plainMd, md) && plain != null) {
            data = plain;
        } else {
            MemorySegment srcMd = plain != null ? plainMd : layouts.get(0)[0];
            MemorySegment src = plain != null ? plain : layouts.get(0)[1];
            data = OneDnn.reorder(src, srcMd, md, Arena.ofAuto());
        }
        layouts.add(new MemorySegment[] {md, data});
        if (data != plain && plain != null) {
            plain = null; // the first layout is the source of any later one
            natives.close(plainArena);
            plainArena = null;
        } else if (data == plain) {
            plain = null; // now a layout of its own, kept with the layer
        }
        return data;
    }

    long bytes() {
        long b = plain == null ? 0 : plain.byteSize();
        synchronized (this) {
            for (MemorySegment[] l : layouts) {
                b += l[1].byteSize();
            }
        }
        return b;
    }

    /** Primitives by a shape key, built once. */
    /** A primitive built on these weights: its descriptors and the weights reordered to the layout it picked. */
    record Prim(MemorySegment primitive, MemorySegment srcMd, MemorySegment weightsMd, MemorySegment dstMd,
                MemorySegment weights) {
    }

    /** Writes a primitive descriptor into pdOut and returns oneDNN's status. */
    interface DescriptorCall {
        int create(Arena arena, MemorySegment pdOut) throws Throwable;
    }

    /**
     * Builds the primitive that call describes over src / dst (descriptors owned by {@link #natives}) and these
     * weights given as any (a format_any descriptor, destroyed here); what names it in a failure.
     */
    Prim primitive(MemorySegment src, MemorySegment any, MemorySegment dst, String what, DescriptorCall call) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment pd = a.allocate(java.lang.foreign.ValueLayout.ADDRESS);
            int s = call.create(a, pd);
            OneDnn.check(s, what);
            OneDnn.Built b = OneDnn.build(pd, s, true);
            natives.primitive(b.primitive());
            MemorySegment wmd = natives.md(b.weightsMd());
            return new Prim(b.primitive(), src, wmd, dst, layout(wmd));
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        } finally {
            OneDnn.destroyMd(any);
        }
    }

    static final class Prims<K, P> {
        private final Map<K, P> map = new ConcurrentHashMap<>();

        P get(K key, java.util.function.Function<K, P> make) {
            return map.computeIfAbsent(key, make);
        }
    }

    /** Native handles freed when the layer is collected (never touches the layer itself). */
    static final class Natives implements Runnable {
        private final List<MemorySegment> mds = new ArrayList<>();
        private final List<MemorySegment> prims = new ArrayList<>();
        private final List<Arena> arenas = new ArrayList<>();

        synchronized Arena arena(Arena a) {
            arenas.add(a);
            return a;
        }

        synchronized void close(Arena a) {
            if (arenas.remove(a)) {
                a.close();
            }
        }

        synchronized MemorySegment md(MemorySegment md) {
            mds.add(md);
            return md;
        }

        synchronized MemorySegment primitive(MemorySegment p) {
            prims.add(p);
            return p;
        }

        @Override
        public synchronized void run() {
            for (MemorySegment p : prims) {
                OneDnn.destroyPrimitive(p);
            }
            for (MemorySegment m : mds) {
                OneDnn.destroyMd(m);
            }
            for (Arena a : arenas) {
                a.close();
            }
            prims.clear();
            mds.clear();
            arenas.clear();
        }
    }

    /** Per-thread buffers for the bf16 input and the fp32 output of a product. */
    static final class Scratch {
        private static final ThreadLocal<Scratch> TL = ThreadLocal.withInitial(() -> {
            Scratch s = new Scratch();
            CLEANER.register(Thread.currentThread(), s.owned);
            return s;
        });
        /** The live buffers' arenas, freed when the thread is gone. */
        private final Natives owned = new Natives();
        private final GrowingBuffer src = new GrowingBuffer(owned);
        private final GrowingBuffer dst = new GrowingBuffer(owned);

        static Scratch get() {
            return TL.get();
        }

        MemorySegment src(long bytes) {
            return src.atLeast(bytes);
        }

        MemorySegment dst(long bytes) {
            return dst.atLeast(bytes);
        }
    }

    /**
     * A native buffer of one thread's kernels that grows: a larger request replaces (and frees at once) the smaller
     * one, which the kernels on this thread are done with; its arenas belong to owner, which frees what is left.
     */
    static final class GrowingBuffer {
        private final Natives owner;
        private Arena arena;
        private MemorySegment segment = MemorySegment.NULL;

        GrowingBuffer(Natives owner) {
            this.owner = owner;
        }

        /** At least bytes, 64-byte aligned (contents undefined). */
        MemorySegment atLeast(long bytes) {
            if (segment.byteSize() < bytes) {
                if (arena != null) {
                    owner.close(arena);
                }
                arena = owner.arena(Arena.ofShared());
                segment = arena.allocate(bytes, 64);
            }
            return segment;
        }
    }
}
