package jdiffusion.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Multi-head attention with its two products in bf16 on oneDNN's batched matmul, as PyTorch's CPU autocast runs
 * it: Q, K and V rounded to bf16 (nearest even), S = Q K^T accumulated and written in fp32, the softmax in fp32
 * (scale, row maximum, exp, sum) in Java, the probabilities rounded to bf16, O = P V accumulated in fp32 and
 * divided by the row sum. Layouts and masking as {@link Reference#attention}.
 *
 * <p>Q, K and V are first copied (rounded) into one dense [batch*heads][tokens][hd] bf16 array each, so every
 * operand of a product is a dense view and no transposing copy is needed (K^T is the weights descriptor with
 * transposed strides). The work is cut into units of whole score rows: a group of (image, head) pairs with all
 * their queries when that fits {@link #SCORE_BYTES}, else a block of one head's queries against all its keys. Each
 * unit is one QK^T call, a plain (not online) softmax per row over all keys, and one PV call; oneDNN threads each
 * call with OpenMP, the softmax and the copy-out run on {@link Parallel}. Primitives are cached per unit shape.
 *
 * <p>The probabilities are normalised by the sum of their bf16-rounded values, so each output row is a convex
 * combination of V's rows whatever the rounding.
 */
final class Bf16Attention {
    /** Bytes of fp32 scores one unit writes at most (the probabilities take half as much again). */
    static final long SCORE_BYTES = 8L << 20;
    /** Fewest query rows of a unit when one head's rows must be split. */
    private static final int MIN_ROWS = 16;

    private static final VectorSpecies<Float> FS = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> IS = IntVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Short> SS =
            VectorSpecies.of(short.class, VectorShape.forBitSize(IS.vectorBitSize() / 2));
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();

    /** A unit's shape: g (image, head) pairs, r query rows each, nk keys, head size hd. */
    private record Shape(int g, int r, int nk, int hd) {
    }

    /** The two primitives of a unit shape and their descriptors (process-lifetime, like the engine). */
    private record Prims(MemorySegment qk, MemorySegment pv, MemorySegment qMd, MemorySegment kMd,
                         MemorySegment sMd, MemorySegment pMd, MemorySegment vMd, MemorySegment oMd) {
    }

    private static final Map<Shape, Prims> PRIMS = new ConcurrentHashMap<>();

    private Bf16Attention() {
    }

    /** Same contract as {@link Attention#forward(float[], float[], float[], int, int, int, int, int, boolean)}. */
    static float[] forward(float[] q, float[] k, float[] v, int batch, int nq, int nk, int heads, int hd,
                           boolean causal) {
        return forward(q, k, v, batch, nq, nk, heads, hd, causal, SCORE_BYTES);
    }

    /** The same with another bound on a unit's score bytes (tests use small ones to exercise the splits). */
    static float[] forward(float[] q, float[] k, float[] v, int batch, int nq, int nk, int heads, int hd,
                           boolean causal, long scoreBytes) {
        int c = heads * hd;
        float[] out = new float[batch * nq * c];
        if (nq == 0 || nk == 0) {
            return out;
        }
        int bhCount = batch * heads;
        long rowBytes = 4L * nk;
        long rowsFit = Math.max(1, scoreBytes / rowBytes);
        int g;
        int r;
        if (rowsFit >= nq) {
            g = (int) Math.min(bhCount, rowsFit / nq);
            r = nq;
        } else {
            g = 1;
            r = (int) Math.max(Math.min(nq, MIN_ROWS), rowsFit / MIN_ROWS * MIN_ROWS);
        }
        float scale = (float) (1.0 / Math.sqrt(hd));
        try (Arena arena = Arena.ofShared()) {
            MemorySegment qb = arena.allocate(2L * bhCount * nq * hd, 64);
            MemorySegment kb = arena.allocate(2L * bhCount * nk * hd, 64);
            MemorySegment vb = arena.allocate(2L * bhCount * nk * hd, 64);
            MemorySegment s = arena.allocate(4L * g * r * nk, 64);
            MemorySegment p = arena.allocate(2L * g * r * nk, 64);
            MemorySegment o = arena.allocate(4L * g * r * hd, 64);
            float[] sums = new float[g * r];
            toHeads(q, qb, batch, nq, heads, hd);
            toHeads(k, kb, batch, nk, heads, hd);
            toHeads(v, vb, batch, nk, heads, hd);
            for (int bh0 = 0; bh0 < bhCount; bh0 += g) {
                int gn = Math.min(g, bhCount - bh0);
                for (int r0 = 0; r0 < nq; r0 += r) {
                    int rn = Math.min(r, nq - r0);
                    Prims pr = prims(new Shape(gn, rn, nk, hd));
                    long qOff = 2L * ((long) bh0 * nq + r0) * hd;
                    long kvOff = 2L * bh0 * nk * hd;
                    OneDnn.execute(pr.qk(), new int[] {OneDnn.ARG_SRC, OneDnn.ARG_WEIGHTS, OneDnn.ARG_DST},
                            new MemorySegment[] {pr.qMd(), pr.kMd(), pr.sMd()},
                            new MemorySegment[] {qb.asSlice(qOff), kb.asSlice(kvOff), s});
                    softmax(s, p, sums, gn * rn, rn, r0, nk, scale, causal);
                    OneDnn.execute(pr.pv(), new int[] {OneDnn.ARG_SRC, OneDnn.ARG_WEIGHTS, OneDnn.ARG_DST},
                            new MemorySegment[] {pr.pMd(), pr.vMd(), pr.oMd()},
                            new MemorySegment[] {p, vb.asSlice(kvOff), o});
                    copyOut(o, sums, out, bh0, gn, rn, r0, nq, heads, hd);
                }
            }
        }
        return out;
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

    private static Prims prims(Shape sh) {
        return PRIMS.computeIfAbsent(sh, Bf16Attention::build);
    }

    private static Prims build(Shape sh) {
        long g = sh.g();
        long r = sh.r();
        long nk = sh.nk();
        long hd = sh.hd();
        MemorySegment qMd = OneDnn.md(new long[] {g, r, hd}, OneDnn.BF16, new long[] {r * hd, hd, 1});
        // K^T as a (hd x nk) matrix per pair, read from K's [nk][hd] rows: transposed strides
        MemorySegment kMd = OneDnn.md(new long[] {g, hd, nk}, OneDnn.BF16, new long[] {nk * hd, 1, hd});
        MemorySegment sMd = OneDnn.md(new long[] {g, r, nk}, OneDnn.F32, new long[] {r * nk, nk, 1});
        MemorySegment pMd = OneDnn.md(new long[] {g, r, nk}, OneDnn.BF16, new long[] {r * nk, nk, 1});
        MemorySegment vMd = OneDnn.md(new long[] {g, nk, hd}, OneDnn.BF16, new long[] {nk * hd, hd, 1});
        MemorySegment oMd = OneDnn.md(new long[] {g, r, hd}, OneDnn.F32, new long[] {r * hd, hd, 1});
        MemorySegment qk = matmul(qMd, kMd, sMd, "bf16 attention scores " + sh);
        MemorySegment pv = matmul(pMd, vMd, oMd, "bf16 attention output " + sh);
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
     * Rows of scores s (rows x nk fp32) to probabilities p (bf16): exp(scale * (s - max)) over the visible keys,
     * rounded, 0 for masked keys; sums[i] the sum of the rounded values. Row i is query r0 + i % rowsPerPair.
     */
    private static void softmax(MemorySegment s, MemorySegment p, float[] sums, int rows, int rowsPerPair, int r0,
                                int nk, float scale, boolean causal) {
        int chunk = Math.max(1, (1 << 14) / nk);
        Parallel.forRange((rows + chunk - 1) / chunk, t -> {
            int i1 = Math.min(rows, (t + 1) * chunk);
            for (int i = t * chunk; i < i1; i++) {
                int visible = causal ? Math.min(nk, r0 + i % rowsPerPair + 1) : nk;
                sums[i] = softmaxRow(s, 4L * i * nk, p, 2L * i * nk, nk, visible, scale);
            }
        });
    }

    private static float softmaxRow(MemorySegment s, long sOff, MemorySegment p, long pOff, int nk, int visible,
                                    float scale) {
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
            FloatVector e = Vec.exp(FloatVector.fromMemorySegment(FS, s, sOff + 4L * j, NATIVE).mul(scale).sub(shift));
            IntVector bits = e.reinterpretAsInts();
            IntVector hi = bits.add(bits.lanewise(VectorOperators.LSHR, 16).and(1)).add(0x7FFF)
                    .lanewise(VectorOperators.LSHR, 16);
            acc = acc.add(hi.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats());
            ((ShortVector) hi.convertShape(VectorOperators.I2S, SS, 0)).intoMemorySegment(p, pOff + 2L * j, NATIVE);
        }
        float sum = Vec.sumLanes(acc);
        for (; j < visible; j++) {
            short h = OneDnn.bf16(Vec.exp(s.get(ValueLayout.JAVA_FLOAT, sOff + 4L * j) * scale - shift));
            p.set(ValueLayout.JAVA_SHORT_UNALIGNED, pOff + 2L * j, h);
            sum += Float.intBitsToFloat(h << 16);
        }
        if (visible < nk) {
            p.asSlice(pOff + 2L * visible, 2L * (nk - visible)).fill((byte) 0);
        }
        return sum;
    }

    /** o (gn pairs x rn rows x hd) divided by the row sums into out [batch][nq][heads*hd]. */
    private static void copyOut(MemorySegment o, float[] sums, float[] out, int bh0, int gn, int rn, int r0, int nq,
                                int heads, int hd) {
        int c = heads * hd;
        int rows = gn * rn;
        int chunk = Math.max(1, (1 << 14) / hd);
        Parallel.forRange((rows + chunk - 1) / chunk, t -> {
            int i1 = Math.min(rows, (t + 1) * chunk);
            for (int i = t * chunk; i < i1; i++) {
                int bh = bh0 + i / rn;
                int dst = ((bh / heads) * nq + r0 + i % rn) * c + (bh % heads) * hd;
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
        });
    }
}
