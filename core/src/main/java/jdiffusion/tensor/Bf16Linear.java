package jdiffusion.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * y = x W^T + b on oneDNN's bf16 matmul: W stored as bf16 (packed once in the layout the primitive picks), each
 * call rounds the rows of x to bf16, accumulates in fp32 and writes fp32. One primitive per row count.
 */
final class Bf16Linear {
    private static final VectorSpecies<Float> FS = FloatVector.SPECIES_PREFERRED;

    private final int out;
    private final int in;
    private final NativeWeights weights;
    private final MemorySegment bias;
    private final MemorySegment biasMd;
    private final NativeWeights.Prims<Integer, NativeWeights.Prim> prims = new NativeWeights.Prims<>();

    /** weight is [out][in] row-major, that is B = W^T as a K x N matrix in "ba" order. */
    Bf16Linear(float[] weight, float[] bias, int out, int in) {
        this.out = out;
        this.in = in;
        this.weights = new NativeWeights(weight, new long[] {in, out}, OneDnn.TAG_BA);
        if (bias != null) {
            this.bias = Arena.ofAuto().allocate(4L * out, 64);
            MemorySegment.copy(bias, 0, this.bias, ValueLayout.JAVA_FLOAT, 0, out);
            this.biasMd = weights.natives.md(OneDnn.md(new long[] {1, out}, OneDnn.F32, OneDnn.TAG_AB));
        } else {
            this.bias = null;
            this.biasMd = MemorySegment.NULL;
        }
        NativeWeights.CLEANER.register(this, weights.natives);
    }

    long bytes() {
        return weights.bytes() + (bias == null ? 0 : bias.byteSize());
    }

    private NativeWeights.Prim prim(int rows) {
        return prims.get(rows, m -> {
            NativeWeights.Natives n = weights.natives;
            MemorySegment src = n.md(OneDnn.md(new long[] {m, in}, OneDnn.BF16, OneDnn.TAG_AB));
            MemorySegment any = OneDnn.md(new long[] {in, out}, OneDnn.BF16, OneDnn.TAG_ANY);
            MemorySegment dst = n.md(OneDnn.md(new long[] {m, out}, OneDnn.F32, OneDnn.TAG_AB));
            return weights.primitive(src, any, dst, "bf16 matmul " + m + "x" + in + "x" + out,
                    (a, pd) -> (int) OneDnn.api().matmulPd().invokeExact(pd, OneDnn.engine(), src, any, biasMd, dst,
                            MemorySegment.NULL));
        });
    }

    /** The general form of {@link Linear#forward(float[], int, int, int, float[], int, int, boolean)}. */
    void forward(float[] x, int xOff, int ldx, int rows, float[] y, int yOff, int ldy, boolean accumulate) {
        if (rows == 0) {
            return;
        }
        NativeWeights.Prim p = prim(rows);
        NativeWeights.Scratch s = NativeWeights.Scratch.get();
        MemorySegment src = s.src(2L * rows * in);
        MemorySegment dst = s.dst(4L * rows * out);
        int chunk = Math.max(1, (1 << 16) / in);
        int chunks = (rows + chunk - 1) / chunk;
        Parallel.forRange(chunks, c -> {
            int r1 = Math.min(rows, (c + 1) * chunk);
            for (int r = c * chunk; r < r1; r++) {
                OneDnn.toBf16(x, xOff + r * ldx, src, 2L * r * in, in);
            }
        });
        if (bias != null) {
            OneDnn.execute(p.primitive(), new int[] {OneDnn.ARG_SRC, OneDnn.ARG_WEIGHTS, OneDnn.ARG_BIAS, OneDnn.ARG_DST},
                    new MemorySegment[] {p.srcMd(), p.weightsMd(), biasMd, p.dstMd()},
                    new MemorySegment[] {src, p.weights(), bias, dst});
        } else {
            OneDnn.execute(p.primitive(), new int[] {OneDnn.ARG_SRC, OneDnn.ARG_WEIGHTS, OneDnn.ARG_DST},
                    new MemorySegment[] {p.srcMd(), p.weightsMd(), p.dstMd()}, new MemorySegment[] {src, p.weights(), dst});
        }
        copyOut(dst, rows, out, y, yOff, ldy, accumulate);
    }

    /** Copies rows x n fp32 values of dst (dense) into y (row stride ldy), or adds them when accumulate. */
    static void copyOut(MemorySegment dst, int rows, int n, float[] y, int yOff, int ldy, boolean accumulate) {
        if (!accumulate && ldy == n) {
            MemorySegment.copy(dst, ValueLayout.JAVA_FLOAT, 0, y, yOff, rows * n);
            return;
        }
        int chunk = Math.max(1, (1 << 16) / n);
        int chunks = (rows + chunk - 1) / chunk;
        Parallel.forRange(chunks, c -> {
            int r1 = Math.min(rows, (c + 1) * chunk);
            for (int r = c * chunk; r < r1; r++) {
                long d = 4L * r * n;
                int o = yOff + r * ldy;
                if (!accumulate) {
                    MemorySegment.copy(dst, ValueLayout.JAVA_FLOAT, d, y, o, n);
                    continue;
                }
                int i = 0;
                for (; i <= n - FS.length(); i += FS.length()) {
                    FloatVector.fromMemorySegment(FS, dst, d + 4L * i, ByteOrder.nativeOrder())
                            .add(FloatVector.fromArray(FS, y, o + i)).intoArray(y, o + i);
                }
                for (; i < n; i++) {
                    y[o + i] += dst.get(ValueLayout.JAVA_FLOAT, d + 4L * i);
                }
            }
        });
    }
}
