package jdiffusion.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * A linear layer whose weights stay where they are: the [out][in] matrix of a mapped checkpoint, in its stored width
 * (fp32, fp16, bf16, fp8). Nothing of it is copied to the heap beyond one call: each forward packs a block of output
 * columns at a time (about {@link #CHUNK_BYTES}) into a per-thread scratch in the GEMM's panel layout, both threads
 * packing panels side by side, and multiplies it before packing the next. Packing reads each weight once per call, a
 * cost of 1 / (2 x rows) of the multiply's (0.01% for SD3.5 at 1024x1024's 4,429 tokens), and the file's pages can be
 * dropped and read back by the OS under memory pressure instead of the process holding a second copy.
 *
 * <p>The result is bit-identical to {@link Linear#of} over the same values: same k blocks, same panels, same
 * micro-kernel; only the moment of packing differs.
 */
final class MappedLinear {
    /** Bytes of packed float32 weights per block of columns. */
    static final int CHUNK_BYTES = 8 << 20;

    private static final ValueLayout.OfShort SHORT_LE =
            ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat FLOAT_LE =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Per thread: the packed block of columns, one weight row widened, one raw row. */
    private static final ThreadLocal<float[][]> PACKED = ThreadLocal.withInitial(() -> new float[1][]);
    private static final ThreadLocal<float[][]> ROW = ThreadLocal.withInitial(() -> new float[1][]);
    private static final ThreadLocal<short[][]> HALF_ROW = ThreadLocal.withInitial(() -> new short[1][]);
    private static final ThreadLocal<byte[][]> BYTE_ROW = ThreadLocal.withInitial(() -> new byte[1][]);

    private final MemorySegment weight;
    private final WeightFormat format;
    private final int out;
    private final int in;
    private final int chunk;
    private final int[] starts;
    /** The bias of each block of columns, padded to whole panels; null without bias. */
    private final float[][] biasChunks;

    MappedLinear(MemorySegment weight, WeightFormat format, float[] bias, int out, int in) {
        if (weight.byteSize() != (long) out * in * format.bytes()) {
            throw new IllegalArgumentException("mapped linear weight has " + weight.byteSize() + " bytes, expected "
                    + out + "x" + in + " " + format + " values (" + (long) out * in * format.bytes() + " bytes)");
        }
        if (bias != null && bias.length != out) {
            throw new IllegalArgumentException("linear bias has " + bias.length + " values, expected " + out);
        }
        this.weight = weight;
        this.format = format;
        this.out = out;
        this.in = in;
        this.chunk = chunkColumns(in, out);
        this.starts = Gemm.kBlocks(in, Integer.MAX_VALUE);
        if (bias == null) {
            biasChunks = null;
        } else {
            int n = (out + chunk - 1) / chunk;
            biasChunks = new float[n][];
            for (int i = 0; i < n; i++) {
                int c0 = i * chunk;
                biasChunks[i] = java.util.Arrays.copyOfRange(bias, c0, Math.min(out, c0 + chunk));
            }
        }
    }

    /** Columns per block: whole panels, about CHUNK_BYTES of packed floats, at least one panel. */
    static int chunkColumns(int in, int out) {
        long cols = CHUNK_BYTES / (4L * Math.max(1, in));
        int panels = (int) Math.max(1, cols / Gemm.NR);
        return Math.min(panels * Gemm.NR, Gemm.roundUp(out, Gemm.NR));
    }

    long bytes() {
        return weight.byteSize();
    }

    WeightFormat format() {
        return format;
    }

    void forward(float[] x, int xOff, int ldx, int rows, float[] y, int yOff, int ldy, boolean accumulate) {
        Gemm.Dense a = new Gemm.Dense(x, xOff, ldx);
        for (int i = 0, c0 = 0; c0 < out; i++, c0 += chunk) {
            int width = Math.min(chunk, out - c0);
            Gemm.PackedB b = pack(c0, width);
            Gemm.multiply(a, rows, b, y, yOff + c0, ldy, biasChunks == null ? null : biasChunks[i], accumulate);
        }
    }

    /** Columns c0 .. c0 + width of W^T packed as a GEMM B operand, into this thread's scratch. */
    Gemm.PackedB pack(int c0, int width) {
        float[][] holder = PACKED.get();
        int size = Gemm.roundUp(width, Gemm.NR) * in;
        float[] into = Gemm.grow(holder, 0, size);
        Gemm.PackedB b = new Gemm.PackedB(in, width, starts, into);
        int panels = b.panels();
        Parallel.forRange(panels, panel -> packPanel(b, into, c0, panel));
        return b;
    }

    /** One panel: each of its weight rows read once from the mapping, widened, written down its k blocks. */
    private void packPanel(Gemm.PackedB b, float[] d, int c0, int panel) {
        float[] row = Gemm.grow(ROW.get(), 0, in);
        int j0 = panel * Gemm.NR;
        int width = Math.min(Gemm.NR, b.n() - j0);
        for (int j = 0; j < width; j++) {
            readRow(c0 + j0 + j, row);
            for (int blk = 0; blk + 1 < starts.length; blk++) {
                int k0 = starts[blk];
                int kc = starts[blk + 1] - k0;
                int o = b.offset(blk, panel, 0) + j;
                for (int p = 0; p < kc; p++) {
                    d[o + p * Gemm.NR] = row[k0 + p];
                }
            }
        }
        if (width < Gemm.NR) {
            for (int blk = 0; blk + 1 < starts.length; blk++) {
                int kc = starts[blk + 1] - starts[blk];
                for (int p = 0; p < kc; p++) {
                    Gemm.padPartialPanelRow(d, b.offset(blk, panel, p), width);
                }
            }
        }
    }

    /** The whole [out][in] matrix widened to float32 (for kernels that pack into a layout of their own). */
    float[] widen() {
        float[] w = new float[Math.multiplyExact(out, in)];
        float[] row = new float[in];
        for (int r = 0; r < out; r++) {
            readRow(r, row);
            System.arraycopy(row, 0, w, r * in, in);
        }
        return w;
    }

    /** Weight row r (output r's in values) widened to float32. */
    private void readRow(int r, float[] row) {
        long off = (long) r * in * format.bytes();
        switch (format) {
            case F32 -> MemorySegment.copy(weight, FLOAT_LE, off, row, 0, in);
            case F16, BF16 -> {
                short[] raw = growShorts(HALF_ROW.get(), in);
                MemorySegment.copy(weight, SHORT_LE, off, raw, 0, in);
                format.decode(raw, 0, row, 0, in);
            }
            case F8_E4M3, F8_E5M2 -> {
                byte[] raw = growBytes(BYTE_ROW.get(), in);
                MemorySegment.copy(weight, ValueLayout.JAVA_BYTE, off, raw, 0, in);
                format.decode(raw, 0, row, 0, in);
            }
        }
    }

    private static short[] growShorts(short[][] holder, int size) {
        if (holder[0] == null || holder[0].length < size) {
            holder[0] = new short[size];
        }
        return holder[0];
    }

    private static byte[] growBytes(byte[][] holder, int size) {
        if (holder[0] == null || holder[0].length < size) {
            holder[0] = new byte[size];
        }
        return holder[0];
    }
}
