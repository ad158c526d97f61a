package jdiffusion.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.Map;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Multi-head attention with its two products in bf16 on oneDNN's matmul, as PyTorch's CPU autocast runs it: Q, K
 * and V rounded to bf16 (nearest even), S = Q K^T accumulated and written in fp32, the softmax in fp32 (scale, row
 * maximum, exp, sum) in Java, the probabilities rounded to bf16, O = P V accumulated in fp32 and divided by the row
 * sum. Layouts and masking as {@link Reference#attention}.
 *
 * <p>Q, K and V are first copied (rounded) into one dense [batch*heads][tokens][hd] bf16 array each, so every
 * operand of a product is a dense view and no transposing copy is needed (K^T is the weights descriptor with
 * transposed strides). The work is cut into units: a block of one (image, head) pair's queries against all its
 * keys, sized so its scores fit {@link #SCORE_FLOATS}. {@link Parallel}'s workers take units whole: one QK^T
 * product, a plain (not online) softmax per row over all keys, one PV product and the copy into the output, all on
 * one thread with single-threaded primitives that thread built (cached per thread and shape), so the cores never
 * pass the work between OpenMP's team and ours and a unit's scores stay in that core's cache.
 *
 * <p>The probabilities are normalised by the sum of their bf16-rounded values, so each output row is a convex
 * combination of V's rows whatever the rounding.
 */
final class Bf16Attention {
    /**
     * fp32 scores of one unit at most (the probabilities take half as much again): 512K (2 MB, 128 queries against
     * 4096 keys), {@code -Djdiffusion.bf16.attention.scores=N} to tune.
     */
    static final int SCORE_FLOATS = Integer.getInteger("jdiffusion.bf16.attention.scores", 1 << 19);
    /** Fewest query rows of a unit. */
    private static final int MIN_ROWS = 16;

    private static final VectorSpecies<Float> FS = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> IS = IntVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Short> SS =
            VectorSpecies.of(short.class, VectorShape.forBitSize(IS.vectorBitSize() / 2));
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();

    /** A unit's shape: r query rows, nk keys, head size hd. */
    private record Shape(int r, int nk, int hd) {
    }

    /** The two primitives of a unit shape and their descriptors. */
    private record Prims(MemorySegment qk, MemorySegment pv, MemorySegment qMd, MemorySegment kMd,
                         MemorySegment sMd, MemorySegment pMd, MemorySegment vMd, MemorySegment oMd) {
    }

    /** Shapes whose primitives a thread keeps; past that (a server seeing many sizes) it starts over. */
    private static final int MAX_SHAPES = 64;

    /** A thread's primitives (oneDNN's library scratchpad ties them to it) and buffers, freed when it ends. */
    private static final class PerThread {
        final Map<Shape, Prims> prims = new HashMap<>();
        /** The primitives and their descriptors. */
        final NativeWeights.Natives primNatives = new NativeWeights.Natives();
        /** The buffer's arena. */
        final NativeWeights.Natives natives = new NativeWeights.Natives();

        Prims prims(Shape sh) {
            Prims p = prims.get(sh);
            if (p == null) {
                if (prims.size() >= MAX_SHAPES) {
                    primNatives.run();
                    prims.clear();
                }
                p = build(sh, primNatives);
                prims.put(sh, p);
            }
            return p;
        }

        /** Frees everything (run by the cleaner once the thread is gone; holds no reference to it). */
        Runnable freeing() {
            NativeWeights.Natives primitives = primNatives;
            NativeWeights.Natives buffers = natives;
            return () -> {
                primitives.run();
                buffers.run();
            };
        }
        /** The scores, probabilities and output of a unit. */
        final NativeWeights.GrowingBuffer buffer = new NativeWeights.GrowingBuffer(natives);
        /** The row sums of a unit. */
        float[] sums = new float[0];

        float[] sums(int n) {
            if (sums.length < n) {
                sums = new float[n];
            }
            return sums;
        }
    }

    private static final ThreadLocal<PerThread> PER_THREAD = ThreadLocal.withInitial(() -> {
        PerThread t = new PerThread();
        NativeWeights.CLEANER.register(Thread.currentThread(), t.freeing());
        return t;
    });

    private Bf16Attention() {
    }

    /** Same contract as {@link Attention#forward(float[], float[], float[], int, int, int, int, int, boolean)}. */
    static float[] forward(float[] q, float[] k, float[] v, int batch, int nq, int nk, int heads, int hd,
                           boolean causal) {
        return forward(q, k, v, batch, nq, nk, heads, hd, causal, SCORE_FLOATS);
    }

    /** The same with another bound on a unit's scores (tests use small ones to exercise the splits). */
    static float[] forward(float[] q, float[] k, float[] v, int batch, int nq, int nk, int heads, int hd,
                           boolean causal, int scoreFloats) {
        int c = heads * hd;
        float[] out = new float[batch * nq * c];
        if (nq == 0 || nk == 0) {
            return out;
        }
        int pairs = batch * heads;
        int r = (int) Math.min(nq, Math.max(MIN_ROWS, scoreFloats / nk / MIN_ROWS * MIN_ROWS));
        int blocks = (nq + r - 1) / r;
        float scale = (float) (1.0 / Math.sqrt(hd));
        try (Arena arena = Arena.ofShared()) {
            MemorySegment qb = arena.allocate(2L * pairs * nq * hd, 64);
            MemorySegment kb = arena.allocate(2L * pairs * nk * hd, 64);
            MemorySegment vb = arena.allocate(2L * pairs * nk * hd, 64);
            toHeads(q, qb, batch, nq, heads, hd);
            toHeads(k, kb, batch, nk, heads, hd);
            toHeads(v, vb, batch, nk, heads, hd);
            Parallel.forRange(pairs * blocks, u -> {
                int bh = u / blocks;
                int r0 = u % blocks * r;
                unit(qb, kb, vb, out, bh, r0, Math.min(r, nq - r0), nq, nk, heads, hd, scale, causal);
            });
        }
        return out;
    }

    /** Queries r0..r0+rn of pair bh against all its keys, into out. */
    private static void unit(MemorySegment qb, MemorySegment kb, MemorySegment vb, float[] out, int bh, int r0,
                             int rn, int nq, int nk, int heads, int hd, float scale, boolean causal) {
        PerThread t = PER_THREAD.get();
        Prims pr = t.prims(new Shape(rn, nk, hd));
        long sBytes = 4L * rn * nk;
        long pBytes = (2L * rn * nk + 63) & ~63L;
        MemorySegment buf = t.buffer.atLeast(sBytes + pBytes + 4L * rn * hd);
        MemorySegment s = buf.asSlice(0, sBytes);
        MemorySegment p = buf.asSlice(sBytes, pBytes);
        MemorySegment o = buf.asSlice(sBytes + pBytes, 4L * rn * hd);
        long kvOff = 2L * bh * nk * hd;
        OneDnn.executeHere(pr.qk(), new int[] {OneDnn.ARG_SRC, OneDnn.ARG_WEIGHTS, OneDnn.ARG_DST},
                new MemorySegment[] {pr.qMd(), pr.kMd(), pr.sMd()},
                new MemorySegment[] {qb.asSlice(2L * ((long) bh * nq + r0) * hd), kb.asSlice(kvOff), s});
        float[] sums = t.sums(rn);
        for (int i = 0; i < rn; i++) {
            int visible = causal ? Math.min(nk, r0 + i + 1) : nk;
            sums[i] = softmaxRow(s, 4L * i * nk, p, 2L * i * nk, nk, visible, scale);
        }
        OneDnn.executeHere(pr.pv(), new int[] {OneDnn.ARG_SRC, OneDnn.ARG_WEIGHTS, OneDnn.ARG_DST},
                new MemorySegment[] {pr.pMd(), pr.vMd(), pr.oMd()}, new MemorySegment[] {p, vb.asSlice(kvOff), o});
        int c = heads * hd;
        int dst0 = ((bh / heads) * nq + r0) * c + (bh % heads) * hd;
        for (int i = 0; i < rn; i++) {
            int dst = dst0 + i * c;
            float inv = 1f / sums[i];
            long src = 4L * i * hd;
            int e = 0;
            for (; e <= hd - FS.length(); e += FS.length()) {
                FloatVector.fromMemorySegment(FS, o, src + 4L * e, NATIVE).mul(inv).intoArray(out, dst + e);
            }
            for (; e < hd; e++) {
                out[dst + e] = o.get(ValueLayout.JAVA_FLOAT, src + 4L * e) * inv;
            }
        }
    }

    /** x [batch][n][heads*hd] fp32 to dst [batch*heads][n][hd] bf16 (round to nearest even). */
    private static void toHeads(float[] x, MemorySegment dst, int batch, int n, int heads, int hd) {
        int c = heads * hd;
        int chunk = Math.max(1, (1 << 15) / c);
        int perImage = (n + chunk - 1) / chunk;
        Parallel.forRange(batch * perImage, t -> {
            int b = t / perImage;
            int i0 = t % perImage * chunk;
            int i1 = Math.min(n, i0 + chunk);
            for (int i = i0; i < i1; i++) {
                for (int h = 0; h < heads; h++) {
                    OneDnn.toBf16(x, (b * n + i) * c + h * hd, dst, 2L * (((long) b * heads + h) * n + i) * hd, hd);
                }
            }
        });
    }

    /** Single-threaded primitives for one unit shape, built on (and for) this thread. */
    private static Prims build(Shape sh, NativeWeights.Natives natives) {
        OneDnn.singleThreaded();
        long r = sh.r();
        long nk = sh.nk();
        long hd = sh.hd();
        MemorySegment qMd = natives.md(OneDnn.md(new long[] {r, hd}, OneDnn.BF16, new long[] {hd, 1}));
        // K^T as a (hd x nk) matrix read from K's [nk][hd] rows: transposed strides
        MemorySegment kMd = natives.md(OneDnn.md(new long[] {hd, nk}, OneDnn.BF16, new long[] {1, hd}));
        MemorySegment sMd = natives.md(OneDnn.md(new long[] {r, nk}, OneDnn.F32, new long[] {nk, 1}));
        MemorySegment pMd = natives.md(OneDnn.md(new long[] {r, nk}, OneDnn.BF16, new long[] {nk, 1}));
        MemorySegment vMd = natives.md(OneDnn.md(new long[] {nk, hd}, OneDnn.BF16, new long[] {hd, 1}));
        MemorySegment oMd = natives.md(OneDnn.md(new long[] {r, hd}, OneDnn.F32, new long[] {hd, 1}));
        MemorySegment qk = natives.primitive(matmul(qMd, kMd, sMd, "bf16 attention scores " + sh));
        MemorySegment pv = natives.primitive(matmul(pMd, vMd, oMd, "bf16 attention output " + sh));
        return new Prims(qk, pv, qMd, kMd, sMd, pMd, vMd, oMd);
    }

    private static MemorySegment matmul(MemorySegment src, MemorySegment wei, MemorySegment dst, String what) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment pd = a.allocate(ValueLayout.ADDRESS);
            int st = (int) OneDnn.api().matmulPd().invokeExact(pd, OneDnn.engine(), src, wei, MemorySegment.NULL,
                    dst, MemorySegment.NULL);
            OneDnn.check(st, what);
            return OneDnn.build(pd, st, false).primitive();
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /**
     * One row of scores s (fp32, from sOff) to probabilities p (bf16, from pOff): exp(scale * (s - max)) over the
     * visible keys, rounded to bf16, 0 for the masked ones; returns the sum of the rounded values.
     */
    private static float softmaxRow(MemorySegment s, long sOff, MemorySegment p, long pOff, int nk, int visible,
                                    float scale) {
        // read and written in place in the native buffers (no copy of the row through a Java array and back)
        int step = FS.length();
        int bound = visible - visible % step;
        FloatVector vmax = FloatVector.broadcast(FS, Float.NEGATIVE_INFINITY);
        int j = 0;
        for (; j < bound; j += step) {
            vmax = vmax.max(FloatVector.fromMemorySegment(FS, s, sOff + 4L * j, NATIVE));
        }
        float max = vmax.reduceLanes(VectorOperators.MAX);
        for (; j < visible; j++) {
            max = Math.max(max, s.get(ValueLayout.JAVA_FLOAT, sOff + 4L * j));
        }
        float shift = max * scale;
        FloatVector acc = FloatVector.zero(FS);
        for (j = 0; j < bound; j += step) {
            FloatVector e = expNonPositive(FloatVector.fromMemorySegment(FS, s, sOff + 4L * j, NATIVE)
                    .fma(scale, -shift));
            IntVector bits = e.reinterpretAsInts();
            IntVector hi = bits.add(bits.lanewise(VectorOperators.LSHR, 16).and(1)).add(0x7FFF)
                    .lanewise(VectorOperators.LSHR, 16);
            acc = acc.add(hi.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats());
            ((ShortVector) hi.convertShape(VectorOperators.I2S, SS, 0)).intoMemorySegment(p, pOff + 2L * j, NATIVE);
        }
        float sum = Vec.sumLanes(acc);
        for (; j < visible; j++) {
            short h = OneDnn.bf16(expNonPositive(Math.fma(s.get(ValueLayout.JAVA_FLOAT, sOff + 4L * j), scale, -shift)));
            p.set(ValueLayout.JAVA_SHORT_UNALIGNED, pOff + 2L * j, h);
            sum += Float.intBitsToFloat(h << 16);
        }
        if (visible < nk) {
            p.asSlice(pOff + 2L * visible, 2L * (nk - visible)).fill((byte) 0);
        }
        return sum;
    }

    // exp(x) for x <= 0 (scores minus their row maximum): Vec's range reduction with the degree-6 Taylor
    // polynomial, relative error < 1.3e-7 (|r| <= ln2/2: r^7/7!), two fp32 ulps, far below the bf16 rounding that
    // follows (2^-9). x below -87 gives exp(-87) ~ 1.6e-38 instead of less, which no sum of probabilities (at least
    // 1) can tell. Cheaper than Vec.exp: no upper clamp, no blend, one term less.
    private static final float[] EXP_POLY = {1f / 720, 1f / 120, 1f / 24, 1f / 6, 0.5f, 1f, 1f};

    static FloatVector expNonPositive(FloatVector x) {
        return Vec.expReduced(x.max(Vec.EXP_LO), EXP_POLY);
    }

    /** The scalar twin of {@link #expNonPositive(FloatVector)}, bit-identical lane by lane. */
    static float expNonPositive(float x) {
        return Vec.expReduced(Math.max(x, Vec.EXP_LO), EXP_POLY);
    }
}
