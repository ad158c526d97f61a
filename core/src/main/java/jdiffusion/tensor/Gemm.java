package jdiffusion.tensor;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * The packed, register-blocked, cache-blocked GEMM every linear layer, convolution and attention product runs on:
 * C (m x n) (+)= A (m x k) B (k x n).
 *
 * <p>B is packed into column panels of {@link #NR} floats (see {@link PackedB}), once at load for weights
 * ({@link Linear}, {@link Conv2d}, optionally in 16 bits) or on the fly for activation products. A is read in
 * place through an {@link ASource} (a row-major matrix, or a convolution's shifted input rows), in blocks of at
 * most {@link #MC} rows by {@link #KC} k. The micro-kernel keeps an MR x NR tile of C in registers (8 x 3 vectors:
 * 24 accumulators, 3 FMAs per broadcast A element; measured about 10% faster than 6 x 2 and 4 x 3 here), with
 * 1- and 2-vector variants for a last panel that is narrower (n = 320 ends in 32 columns) and a paired-rows variant
 * for one two and a half vectors wide (n = 40, attention at head size 40: {@link #microPair}), while a B micro-panel
 * (KC x NR) streams from L2 and the A block sits in L2. Threads split
 * the rows (and, when there are few row blocks, the panels) of C; see {@link #multiply}.
 */
public final class Gemm {
    static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    /** Vector width in floats. */
    public static final int L = S.length();
    /** Rows of C per micro-tile. */
    public static final int MR = 8;
    /** Columns of C per packed B panel (three vectors). */
    public static final int NR = 3 * L;
    /**
     * k per cache block. A B micro-panel KC x NR (72 KB at 512 bits) streams from L2, which keeps up; longer blocks
     * mean fewer round trips of each C tile. Measured on the SD1.5 layer shapes, alternating in one JVM: 384 and 512
     * both 2-4 points of the FMA peak above 256 (a micro-panel that fits L1), 128 5 points below.
     */
    static final int KC = 384;
    /**
     * Rows per block: the A block, MC x KC (about 660 KB), stays in L2 while the panels of B stream past it; each
     * B micro-panel fetched is used for MC/MR tiles, which matters when B comes from memory (large convolutions,
     * or an L3 shared with other work).
     */
    static final int MC = 432;
    static {
        if (MC % MR != 0) {
            throw new AssertionError("MC must be a multiple of MR");
        }
    }
    /** Up to this k per block, C is computed row tile by row tile across all panels (see kBlock). */
    static final int SHORT_K = 64;
    /**
     * Bytes of B panels a few-panel product keeps in L2 while it streams its rows of A past them (see rowStreams):
     * the 786 KB of P V's whole B, re-read for every row tile, shared L2 with the A stream and fell out of it.
     */
    static final int STREAM_BYTES = 256 << 10;
    /** Up to this many panels, a product runs micro-tile by micro-tile rather than panel by panel. */
    static final int FEW_PANELS = 4;
    /** Bounds the search for the parallel split (tasks per thread considered). */
    static final int TASKS_PER_THREAD = 4;

    private static final ThreadLocal<float[]> A_BLOCK = ThreadLocal.withInitial(() -> new float[MR * KC]);
    private static final ThreadLocal<float[][]> WIDE = ThreadLocal.withInitial(() -> new float[1][]);
    private static final ThreadLocal<float[][]> PACK = ThreadLocal.withInitial(() -> new float[1][]);
    private static final ThreadLocal<float[]> PAIRS = ThreadLocal.withInitial(() -> new float[MR / 2 * L]);
    private static final ThreadLocal<float[]> EDGE = ThreadLocal.withInitial(() -> new float[MR * NR]);

    private Gemm() {
    }

    /**
     * Where A's elements are: element (i, p) at array()[index(i, p)], with index affine in i (step rowStride()) and,
     * within one segment of k (p / segment() constant), affine in p with step 1. A is read in place, never copied:
     * packing would cost as much as the work when n is small (attention's P V), and a convolution's shifted rows
     * are such a source over a zero-padded copy of its input.
     */
    public interface ASource {
        float[] array();

        int rowStride();

        int index(int row, int p);

        /** Length of the k segments within which index is contiguous in p. */
        default int segment() {
            return Integer.MAX_VALUE;
        }
    }

    /** A row-major matrix: element (i, p) at a[off + i*lda + p]. off may be negative when k starts past 0. */
    public record Dense(float[] a, int off, int lda) implements ASource {
        @Override
        public float[] array() {
            return a;
        }

        @Override
        public int rowStride() {
            return lda;
        }

        @Override
        public int index(int row, int p) {
            return off + row * lda + p;
        }
    }

    /**
     * B packed for the micro-kernel: k is cut into blocks (at most KC, never across a segment of the A source it
     * will meet), and each block holds all panels of NR columns one after another, [block][panel][kc][NR], zero
     * padded. A thread walking its panels within a k block therefore reads one contiguous stream, which the
     * hardware prefetcher runs ahead of; weights too large for the caches (an SD1.5 3x3 convolution at 1280
     * channels is 59 MB) then arrive from memory without a stall at every panel.
     */
    public static final class PackedB {
        private final float[] data;
        private final short[] half;
        private final byte[] quarter;
        private final WeightFormat format;
        private final int k;
        private final int n;
        private final int[] starts;

        PackedB(int k, int n, int[] starts) {
            this(k, n, starts, null);
        }

        /** Packed into the given array when it is large enough (a caller's scratch), else into a new one. */
        PackedB(int k, int n, int[] starts, float[] into) {
            this.k = k;
            this.n = n;
            this.starts = starts;
            int size = panels() * NR * k;
            this.data = into != null && into.length >= size ? into : new float[size];
            this.half = null;
            this.quarter = null;
            this.format = WeightFormat.F32;
        }

        /** The same values stored in 16 or 8 bits. */
        PackedB(PackedB f32, WeightFormat format) {
            this.k = f32.k;
            this.n = f32.n;
            this.starts = f32.starts;
            this.data = null;
            this.format = format;
            if (format.bytes() == 1) {
                this.half = null;
                this.quarter = new byte[f32.data.length];
                for (int i = 0; i < quarter.length; i++) {
                    quarter[i] = format.encode8(f32.data[i]);
                }
            } else {
                this.quarter = null;
                this.half = new short[f32.data.length];
                for (int i = 0; i < half.length; i++) {
                    half[i] = format.encode(f32.data[i]);
                }
            }
        }

        public WeightFormat format() {
            return format;
        }

        /** Bytes of packed weights held in memory. */
        public long bytes() {
            return data != null ? 4L * data.length : half != null ? 2L * half.length : quarter.length;
        }

        public int k() {
            return k;
        }

        public int n() {
            return n;
        }

        public int panels() {
            return (n + NR - 1) / NR;
        }

        /** B as a row-major k x n float matrix (16- and 8-bit values widened), e.g. to derive other packings. */
        float[] unpack() {
            float[] out = new float[k * n];
            float[] row = new float[NR];
            for (int blk = 0; blk + 1 < starts.length; blk++) {
                int k0 = starts[blk];
                for (int panel = 0; panel < panels(); panel++) {
                    int width = Math.min(NR, n - panel * NR);
                    for (int p = 0; p < starts[blk + 1] - k0; p++) {
                        int o = offset(blk, panel, p);
                        if (data != null) {
                            System.arraycopy(data, o, row, 0, width);
                        } else if (half != null) {
                            format.decode(half, o, row, 0, width);
                        } else {
                            format.decode(quarter, o, row, 0, width);
                        }
                        System.arraycopy(row, 0, out, (k0 + p) * n + panel * NR, width);
                    }
                }
            }
            return out;
        }

        /** Index of the k block starting at k0, which must be a block boundary. */
        int blockAt(int k0) {
            int i = java.util.Arrays.binarySearch(starts, k0);
            if (i < 0) {
                throw new IllegalArgumentException("k = " + k0 + " is not a block boundary of this packed operand");
            }
            return i;
        }

        int blockStart(int block) {
            return starts[block];
        }

        /** Offset of element (k0 + p, panel*NR) where k0 starts the given block. */
        int offset(int block, int panel, int p) {
            int k0 = starts[block];
            int kc = starts[block + 1] - k0;
            return (k0 * panels() + panel * kc + p) * NR;
        }
    }

    /** k block boundaries: each segment (a convolution tap's channels) split into equal blocks of at most KC. */
    static int[] kBlocks(int k, int segment) {
        java.util.List<Integer> starts = new java.util.ArrayList<>();
        for (int s0 = 0; s0 < k; ) {
            int s1 = (int) Math.min(k, (long) s0 + segment);
            int nb = (s1 - s0 + KC - 1) / KC;
            int kc = (s1 - s0 + nb - 1) / nb;
            for (int k0 = s0; k0 < s1; k0 += kc) {
                starts.add(k0);
            }
            s0 = s1;
        }
        starts.add(k);
        return starts.stream().mapToInt(Integer::intValue).toArray();
    }

    /** Packs B where element (p, j) of the k x n matrix is src[off + p*sk + j*sn]. */
    public static PackedB pack(float[] src, int off, int sk, int sn, int k, int n) {
        return pack(src, off, sk, sn, k, n, Integer.MAX_VALUE);
    }

    /** The same, with k blocks that never cross a multiple of segment (the A source's segment). */
    public static PackedB pack(float[] src, int off, int sk, int sn, int k, int n, int segment) {
        return pack(src, off, sk, sn, k, n, segment, null);
    }

    /** The same, into the given array when it is large enough (a caller's scratch). */
    private static PackedB pack(float[] src, int off, int sk, int sn, int k, int n, int segment, float[] into) {
        PackedB b = new PackedB(k, n, kBlocks(k, segment), into);
        packInto(src, off, sk, sn, b);
        return b;
    }

    /** The same, with k blocks of exactly blockK (attention's V, consumed one key block at a time). */
    static PackedB packFixedBlocks(float[] src, int off, int sk, int sn, int k, int n, int blockK) {
        int nb = (k + blockK - 1) / blockK;
        int[] starts = new int[nb + 1];
        for (int i = 0; i <= nb; i++) {
            starts[i] = Math.min(k, i * blockK);
        }
        PackedB b = new PackedB(k, n, starts);
        packInto(src, off, sk, sn, b);
        return b;
    }

    private static void packInto(float[] src, int off, int sk, int sn, PackedB b) {
        float[] d = b.data;
        int n = b.n;
        for (int blk = 0; blk + 1 < b.starts.length; blk++) {
            int k0 = b.starts[blk];
            int kc = b.starts[blk + 1] - k0;
            for (int panel = 0; panel < b.panels(); panel++) {
                int j0 = panel * NR;
                int width = Math.min(NR, n - j0);
                for (int p = 0; p < kc; p++) {
                    int o = b.offset(blk, panel, p);
                    int s = off + (k0 + p) * sk + j0 * sn;
                    if (sn == 1) {
                        System.arraycopy(src, s, d, o, width);
                    } else {
                        for (int j = 0; j < width; j++) {
                            d[o + j] = src[s + j * sn];
                        }
                    }
                    if (width < NR) {
                        padPartialPanelRow(d, o, width);
                    }
                }
            }
        }
    }

    /**
     * The padding of one packed k-row (at o) of a panel holding width < NR columns: the padding lanes are zero (a
     * reused scratch array holds old values there), and where {@link #pairs} runs it, the third vector's upper half
     * repeats its lower half for microPair.
     */
    static void padPartialPanelRow(float[] d, int o, int width) {
        java.util.Arrays.fill(d, o + width, o + NR, 0f);
        if (pairs(width)) {
            System.arraycopy(d, o + 2 * L, d, o + 2 * L + HALF, HALF);
        }
    }

    /** Packs linear weights W [n][k] (the checkpoint layout) as B = W^T. */
    public static PackedB packWeights(float[] w, int n, int k) {
        return pack(w, 0, 1, k, k, n);
    }

    /** Packs weights W [n][k] for an A source whose k segments have the given length. */
    public static PackedB packWeights(float[] w, int n, int k, int segment) {
        return pack(w, 0, 1, k, k, n, segment);
    }

    /** The same, stored in the given format (16-bit formats are widened block by block inside the GEMM). */
    public static PackedB packWeights(float[] w, int n, int k, int segment, WeightFormat format) {
        PackedB f32 = packWeights(w, n, k, segment);
        return format == WeightFormat.F32 ? f32 : new PackedB(f32, format);
    }

    /**
     * C = A B (+ bias per column), or C += A B when accumulate, over the thread pool; c is m x n row-major with row
     * stride ldc from cOff. bias (length n, or already padded to whole panels) may be null.
     */
    public static void multiply(ASource a, int m, PackedB b, float[] c, int cOff, int ldc, float[] bias,
                                boolean accumulate) {
        if (b.n > ldc) {
            throw new IllegalArgumentException("C row stride " + ldc + " is narrower than n = " + b.n);
        }
        if (m <= 0 || b.n == 0) {
            return;
        }
        float[] pb = padBias(bias, b);
        int mBlocks = (m + MC - 1) / MC;
        // even row blocks, rounded to whole micro-tiles, so the last block is not a sliver
        int mc = roundUp((m + mBlocks - 1) / mBlocks, MR);
        mBlocks = (m + mc - 1) / mc;
        int panels = b.panels();
        int pc = panelsPerTask(mBlocks, panels, Parallel.threads());
        int nb = (panels + pc - 1) / pc;
        int nBlocks = nb;
        int mcc = mc;
        Parallel.forRange(mBlocks * nBlocks, t -> {
            int m0 = (t / nb) * mcc;
            int p0 = (t % nb) * pc;
            int rows = Math.min(mcc, m - m0);
            int p1 = Math.min(panels, p0 + pc);
            block(a, m0, rows, b, p0, p1, 0, b.k, c, cOff + m0 * ldc + p0 * NR, ldc, pb, accumulate);
        });
    }

    /**
     * Panels per task: the split over n that (with the row blocks) finishes soonest on the given threads, counting
     * whole rounds of equal tasks; among equal splits the one with fewest column blocks, since every column block
     * reads its rows of A again.
     */
    static int panelsPerTask(int mBlocks, int panels, int threads) {
        int best = panels;
        long bestCost = Long.MAX_VALUE;
        for (int nb = 1; nb <= panels; nb++) {
            int pc = (panels + nb - 1) / nb;
            if (nb > 1 && pc == best) {
                continue;
            }
            long tasks = (long) mBlocks * ((panels + pc - 1) / pc);
            long cost = (tasks + threads - 1) / threads * pc;
            if (cost < bestCost) {
                bestCost = cost;
                best = pc;
            }
            if (tasks >= (long) TASKS_PER_THREAD * threads * 4) {
                break;
            }
        }
        return best;
    }

    /** The bias padded with zeros to whole panels (the micro-kernel loads it as two full vectors). */
    public static float[] padBias(float[] bias, PackedB b) {
        if (bias == null || bias.length >= b.panels() * NR) {
            return bias;
        }
        return java.util.Arrays.copyOf(bias, b.panels() * NR);
    }

    /**
     * Single-threaded: C[i][j] (+)= sum over p in [kStart, kEnd) of A[m0+i][p] B[p][j] for rows i < rows and the
     * columns of panels [p0, p1); C element (i, panel p, column jj) is c[cOff + i*ldc + (p-p0)*NR + jj]. Unless
     * accumulate, C starts from zero instead of its old contents; the padded bias (if any) is added.
     */
    public static void block(ASource a, int m0, int rows, PackedB b, int p0, int p1, int kStart, int kEnd,
                             float[] c, int cOff, int ldc, float[] paddedBias, boolean accumulate) {
        block(a, m0, rows, b, p0, p1, kStart, kEnd, c, cOff, ldc, paddedBias, accumulate, false);
    }

    /**
     * The same; paddedC says C's rows have room for whole panels (columns up to (p1-p0)*NR are scratch the caller
     * ignores), so partial panels are written in place instead of through a scratch tile.
     */
    public static void block(ASource a, int m0, int rows, PackedB b, int p0, int p1, int kStart, int kEnd,
                             float[] c, int cOff, int ldc, float[] paddedBias, boolean accumulate, boolean paddedC) {
        if (paddedC && ldc < (p1 - p0) * NR) {
            throw new IllegalArgumentException("padded C needs a row stride of " + (p1 - p0) * NR + ", got " + ldc);
        }
        int seg = a.segment();
        int first = b.blockAt(kStart);
        int last = b.blockAt(kEnd);
        for (int blk = first; blk < last; blk++) {
            int k0 = b.blockStart(blk);
            if (seg != Integer.MAX_VALUE && k0 / seg != (b.blockStart(blk + 1) - 1) / seg) {
                throw new IllegalArgumentException("k block at " + k0 + " crosses an A segment of " + seg);
            }
        }
        if (p1 - p0 <= FEW_PANELS && b.data != null && last - first > 1) {
            rowStreams(a, m0, rows, b, p0, p1, first, last, c, cOff, ldc, paddedBias, accumulate, paddedC);
            return;
        }
        for (int r0 = 0; r0 < rows; r0 += MC) {
            int mr = Math.min(MC, rows - r0);
            for (int blk = first; blk < last; blk++) {
                boolean load = accumulate || blk > first;
                float[] bias = blk == first ? paddedBias : null;
                kBlock(a, m0 + r0, mr, b, p0, p1, blk, c, cOff + r0 * ldc, ldc, load, bias, paddedC);
            }
        }
    }

    /**
     * Few panels (n up to FEW_PANELS * NR, as attention's P V or a layer with few outputs): each micro-tile of rows
     * runs through a stretch of k blocks (B panels of at most STREAM_BYTES, which stay in L2) before the next, so
     * every A row is read in long sequential runs (which the hardware prefetcher follows; k blocks of 1 KB per row
     * would restart it every block) and used for all panels while in L1. A is then read exactly once, from wherever
     * it is. (A whole A block kept in L2 instead fails when A's row stride is a multiple of 4 KB, as the 4096-key
     * rows of P: its rows fall into the same cache sets and evict each other.)
     */
    private static void rowStreams(ASource a, int m0, int rows, PackedB b, int p0, int p1, int first, int last,
                                   float[] c, int cOff, int ldc, float[] paddedBias, boolean accumulate,
                                   boolean paddedC) {
        float[] arr = a.array();
        int lda = a.rowStride();
        int full = rows / MR * MR;
        long panelFloats = (long) (p1 - p0) * NR;
        for (int s0 = first, s1; s0 < last; s0 = s1) {
            // a stretch of k blocks whose B panels fit in STREAM_BYTES, run over all rows before the next stretch
            s1 = s0 + 1;
            while (s1 < last && 4 * panelFloats * (b.blockStart(s1 + 1) - b.blockStart(s0)) <= STREAM_BYTES) {
                s1++;
            }
            for (int i = 0; i < full; i += MR) {
                for (int blk = s0; blk < s1; blk++) {
                    int k0 = b.blockStart(blk);
                    int kc = b.blockStart(blk + 1) - k0;
                    boolean load = accumulate || blk > first;
                    float[] bias = blk == first ? paddedBias : null;
                    int ao = a.index(m0 + i, k0);
                    for (int p = p0; p < p1; p++) {
                        tileDirect(arr, ao, lda, b.data, b.offset(blk, p, 0), kc, c, cOff + (p - p0) * NR + i * ldc,
                                ldc, Math.min(NR, b.n - p * NR), load, bias, bias == null ? -1 : p * NR, paddedC);
                    }
                }
            }
        }
        if (full < rows) {
            float[] tail = A_BLOCK.get();
            for (int blk = first; blk < last; blk++) {
                int k0 = b.blockStart(blk);
                int kc = b.blockStart(blk + 1) - k0;
                boolean load = accumulate || blk > first;
                float[] bias = blk == first ? paddedBias : null;
                copyTail(a, m0 + full, rows - full, k0, kc, tail);
                for (int p = p0; p < p1; p++) {
                    tile(tail, 0, b.data, b.offset(blk, p, 0), kc, c, cOff + (p - p0) * NR + full * ldc, ldc,
                            rows - full, Math.min(NR, b.n - p * NR), load, bias, bias == null ? -1 : p * NR);
                }
            }
        }
    }

    /** One k block (inside one segment) of rows [m0, m0+mr): all panels, each B micro-panel reused over the rows. */
    private static void kBlock(ASource a, int m0, int mr, PackedB b, int p0, int p1, int blk, float[] c,
                               int cOff, int ldc, boolean load, float[] bias, boolean paddedC) {
        int k0 = b.blockStart(blk);
        int kc = b.blockStart(blk + 1) - k0;
        float[] arr = a.array();
        int lda = a.rowStride();
        int ao = a.index(m0, k0);
        int full = mr / MR * MR;
        float[] tail = null;
        if (full < mr) {
            tail = A_BLOCK.get();
            copyTail(a, m0 + full, mr - full, k0, kc, tail);
        }
        if (p1 - p0 <= FEW_PANELS || (kc <= SHORT_K && b.data != null)) {
            // few panels, one k block (or 16-bit B): as rowStreams, each A micro-panel serves every panel in L1.
            // Short k (attention's Q K^T at head size 40): each tile is little work per store of C, and C (far larger
            // than any cache) is the traffic; row tile by row tile, C is written as whole sequential rows while the
            // B panels (k x n, small) stay in L2
            Panels bp = panels(b, blk, p0, p1);
            for (int i = 0; i < full; i += MR) {
                for (int p = p0; p < p1; p++) {
                    tileDirect(arr, ao + i * lda, lda, bp.data, bp.offset(p), kc, c, cOff + (p - p0) * NR + i * ldc,
                            ldc, Math.min(NR, b.n - p * NR), load, bias, bias == null ? -1 : p * NR, paddedC);
                }
            }
            for (int p = p0; tail != null && p < p1; p++) {
                tile(tail, 0, bp.data, bp.offset(p), kc, c, cOff + (p - p0) * NR + full * ldc, ldc, mr - full,
                        Math.min(NR, b.n - p * NR), load, bias, bias == null ? -1 : p * NR);
            }
            return;
        }
        for (int p = p0; p < p1; p++) {
            Panels bp = panels(b, blk, p, p + 1);
            int cols = Math.min(NR, b.n - p * NR);
            int bo = bp.offset(p);
            int co = cOff + (p - p0) * NR;
            int bi = bias == null ? -1 : p * NR;
            for (int i = 0; i < full; i += MR) {
                tileDirect(arr, ao + i * lda, lda, bp.data, bo, kc, c, co + i * ldc, ldc, cols, load, bias, bi,
                        paddedC);
            }
            if (tail != null) {
                tile(tail, 0, bp.data, bo, kc, c, co + full * ldc, ldc, mr - full, cols, load, bias, bi);
            }
        }
    }

    /** Float32 micro-panels of B for one k block: the packed array itself, or 16-bit weights widened once. */
    private record Panels(float[] data, int base, PackedB b, int blk) {
        int offset(int panel) {
            return base + b.offset(blk, panel, 0);
        }
    }

    private static Panels panels(PackedB b, int blk, int p0, int p1) {
        if (b.data != null) {
            return new Panels(b.data, 0, b, blk);
        }
        int first = b.offset(blk, p0, 0);
        int size = b.offset(blk, p1 - 1, 0) - first + (b.blockStart(blk + 1) - b.blockStart(blk)) * NR;
        float[] wide = grow(WIDE.get(), 0, size);
        if (b.half != null) {
            b.format.decode(b.half, first, wide, 0, size);
        } else {
            b.format.decode(b.quarter, first, wide, 0, size);
        }
        return new Panels(wide, -first, b, blk);
    }

    /**
     * The last rows (fewer than MR) copied as a small row-major block (row stride kc) with zero rows below, so the
     * same in-place kernels run them (a separate kernel only the tails use would rarely get hot enough for the JIT).
     */
    private static void copyTail(ASource a, int m0, int rows, int k0, int kc, float[] dst) {
        float[] arr = a.array();
        java.util.Arrays.fill(dst, rows * kc, MR * kc, 0f);
        for (int r = 0; r < rows; r++) {
            System.arraycopy(arr, a.index(m0 + r, k0), dst, r * kc, kc);
        }
    }

    /** A full-height tile with A read in place (rows lda apart). */
    private static void tileDirect(float[] a, int ao, int lda, float[] b, int bo, int kc, float[] c, int co,
                                   int ldc, int cols, boolean load, float[] bias, int bi, boolean paddedC) {
        int vectors = (cols + L - 1) / L;
        if (paddedC || cols == vectors * L || pairs(cols)) {
            direct(cols, a, ao, lda, b, bo, kc, c, co, ldc, load, bias, bi);
            return;
        }
        float[] e = EDGE.get();
        if (load) {
            java.util.Arrays.fill(e, 0f);
            for (int i = 0; i < MR; i++) {
                System.arraycopy(c, co + i * ldc, e, i * NR, cols);
            }
        }
        direct(cols, a, ao, lda, b, bo, kc, e, 0, NR, load, bias, bi);
        for (int i = 0; i < MR; i++) {
            System.arraycopy(e, i * NR, c, co + i * ldc, cols);
        }
    }

    /**
     * The kernel as wide as the panel's real columns (a 320-wide layer's last panel needs two vectors of three; a
     * 40-wide one, attention's P V at head size 40, two and a half: {@link #microPair}).
     */
    private static void direct(int cols, float[] a, int ao, int lda, float[] b, int bo, int kc, float[] c, int co,
                               int ldc, boolean load, float[] bias, int bi) {
        int vectors = (cols + L - 1) / L;
        boolean pair = pairs(cols);
        // where the accumulators start: C itself, zeros or the bias (the last two with row stride 0)
        float[] si = c;
        int so = co;
        int lds = ldc;
        if (!load) {
            si = bi < 0 ? ZEROS : bias;
            so = bi < 0 ? 0 : bi;
            lds = 0;
        } else if (bi >= 0) {
            addBias(c, co, ldc, pair ? cols : vectors * L, bias, bi);
        }
        if (pair) {
            // the pair accumulators start from and end in a small scratch: masked loads and stores in the kernel
            // kept C1 from compiling it at its profiling tier (a kernel C1 had compiled at its plain tier first
            // then never reached C2 and ran boxed), and as helpers C2 would not inline them (boxing every call)
            int w = cols - 2 * L;
            float[] pb = PAIRS.get();
            for (int q = 0; q < MR / 2; q++) {
                System.arraycopy(si, so + 2 * q * lds + 2 * L, pb, q * L, w);
                System.arraycopy(si, so + (2 * q + 1) * lds + 2 * L, pb, q * L + HALF, w);
            }
            microPair(a, ao, lda, b, bo, kc, si, so, lds, c, co, ldc, pb);
            for (int q = 0; q < MR / 2; q++) {
                System.arraycopy(pb, q * L, c, co + 2 * q * ldc + 2 * L, w);
                System.arraycopy(pb, q * L + HALF, c, co + (2 * q + 1) * ldc + 2 * L, w);
            }
            return;
        }
        switch (vectors) {
            case 1 -> microDirect1(a, ao, lda, b, bo, kc, si, so, lds, c, co, ldc);
            case 2 -> microDirect2(a, ao, lda, b, bo, kc, si, so, lds, c, co, ldc);
            default -> microDirect3(a, ao, lda, b, bo, kc, si, so, lds, c, co, ldc);
        }
    }

    /** Half a vector, in floats. */
    static final int HALF = L / 2;

    /**
     * Whether a panel this wide runs on {@link #microPair}: two vectors and at most half a third. Its packed B
     * carries the columns past the second vector twice (both halves of the third vector).
     */
    static boolean pairs(int cols) {
        return cols > 2 * L && cols <= 2 * L + HALF;
    }

    /** A zero row as wide as a panel: the start of tiles that do not accumulate and have no bias. */
    private static final float[] ZEROS = new float[NR];

    /** A tile of fewer than MR rows (copied by copyTail); it goes through a scratch tile so C is never overrun. */
    private static void tile(float[] a, int ao, float[] b, int bo, int kc, float[] c, int co, int ldc, int rows,
                             int cols, boolean load, float[] bias, int bi) {
        float[] e = EDGE.get();
        if (load) {
            java.util.Arrays.fill(e, 0f);
            for (int i = 0; i < rows; i++) {
                System.arraycopy(c, co + i * ldc, e, i * NR, cols);
            }
        }
        direct(cols, a, ao, kc, b, bo, kc, e, 0, NR, load, bias, bi);
        for (int i = 0; i < rows; i++) {
            System.arraycopy(e, i * NR, c, co + i * ldc, cols);
        }
    }

    /**
     * C += bias before a tile that accumulates onto C (the kernels read their start values from one array: C, or
     * zeros or the bias with row stride 0). The kernels take no branch on how they start: a kernel that chose its
     * start (zero or C, with or without bias) merged vector values from two branches, and once both branches had
     * run, C2 no longer kept the accumulators in registers: convolutions with a bias ran at a tenth of the speed.
     */
    private static void addBias(float[] c, int co, int ldc, int width, float[] bias, int bi) {
        for (int r = 0; r < MR; r++) {
            int o = co + r * ldc;
            for (int j = 0; j < width; j++) {
                c[o + j] += bias[bi + j];
            }
        }
    }

    /**
     * C tile of 8 rows x (2L + w) columns, w at most half a vector (attention's P V at head size 40: 2.5 vectors).
     * Rows run in pairs: the columns past the second vector of rows r and r+1 share one accumulator, row r in the
     * lower half and row r+1 in the upper, against a B vector whose two halves hold the same columns (see
     * {@link #pairs}); its A operand blends the two rows' broadcasts. 20 FMAs per k step instead of the 24 of the
     * three-vector kernel, every lane useful. Start tile and stores as {@link #microDirect3} for the first two
     * vectors; the pair accumulators start from and end in pairAcc (pair q at q*L, rows 2q and 2q+1 in its halves).
     */
    static void microPair(float[] a, int ao, int lda, float[] b, int bo, int kc, float[] s0, int so, int lds,
            float[] c, int co, int ldc, float[] pairAcc) {
        VectorMask<Float> upper = VectorMask.fromLong(S, ((1L << L) - 1) & ~((1L << HALF) - 1));
        int s1 = so + lds;
        int s2 = s1 + lds;
        int s3 = s2 + lds;
        int s4 = s3 + lds;
        int s5 = s4 + lds;
        int s6 = s5 + lds;
        int s7 = s6 + lds;
        int c1 = co + ldc;
        int c2 = c1 + ldc;
        int c3 = c2 + ldc;
        int c4 = c3 + ldc;
        int c5 = c4 + ldc;
        int c6 = c5 + ldc;
        int c7 = c6 + ldc;
        FloatVector x00 = FloatVector.fromArray(S, s0, so);
        FloatVector x01 = FloatVector.fromArray(S, s0, so + L);
        FloatVector x10 = FloatVector.fromArray(S, s0, s1);
        FloatVector x11 = FloatVector.fromArray(S, s0, s1 + L);
        FloatVector x20 = FloatVector.fromArray(S, s0, s2);
        FloatVector x21 = FloatVector.fromArray(S, s0, s2 + L);
        FloatVector x30 = FloatVector.fromArray(S, s0, s3);
        FloatVector x31 = FloatVector.fromArray(S, s0, s3 + L);
        FloatVector x40 = FloatVector.fromArray(S, s0, s4);
        FloatVector x41 = FloatVector.fromArray(S, s0, s4 + L);
        FloatVector x50 = FloatVector.fromArray(S, s0, s5);
        FloatVector x51 = FloatVector.fromArray(S, s0, s5 + L);
        FloatVector x60 = FloatVector.fromArray(S, s0, s6);
        FloatVector x61 = FloatVector.fromArray(S, s0, s6 + L);
        FloatVector x70 = FloatVector.fromArray(S, s0, s7);
        FloatVector x71 = FloatVector.fromArray(S, s0, s7 + L);
        FloatVector y0 = FloatVector.fromArray(S, pairAcc, 0 * L);
        FloatVector y1 = FloatVector.fromArray(S, pairAcc, 1 * L);
        FloatVector y2 = FloatVector.fromArray(S, pairAcc, 2 * L);
        FloatVector y3 = FloatVector.fromArray(S, pairAcc, 3 * L);
        int a1 = ao + lda;
        int a2 = a1 + lda;
        int a3 = a2 + lda;
        int a4 = a3 + lda;
        int a5 = a4 + lda;
        int a6 = a5 + lda;
        int a7 = a6 + lda;
        for (int p = 0; p < kc; p++) {
            int bx = bo + p * NR;
            FloatVector b0 = FloatVector.fromArray(S, b, bx);
            FloatVector b1 = FloatVector.fromArray(S, b, bx + L);
            FloatVector b2 = FloatVector.fromArray(S, b, bx + 2 * L);
            FloatVector u = FloatVector.broadcast(S, a[ao + p]);
            FloatVector v = FloatVector.broadcast(S, a[a1 + p]);
            x00 = u.fma(b0, x00);
            x01 = u.fma(b1, x01);
            x10 = v.fma(b0, x10);
            x11 = v.fma(b1, x11);
            y0 = u.blend(v, upper).fma(b2, y0);
            u = FloatVector.broadcast(S, a[a2 + p]);
            v = FloatVector.broadcast(S, a[a3 + p]);
            x20 = u.fma(b0, x20);
            x21 = u.fma(b1, x21);
            x30 = v.fma(b0, x30);
            x31 = v.fma(b1, x31);
            y1 = u.blend(v, upper).fma(b2, y1);
            u = FloatVector.broadcast(S, a[a4 + p]);
            v = FloatVector.broadcast(S, a[a5 + p]);
            x40 = u.fma(b0, x40);
            x41 = u.fma(b1, x41);
            x50 = v.fma(b0, x50);
            x51 = v.fma(b1, x51);
            y2 = u.blend(v, upper).fma(b2, y2);
            u = FloatVector.broadcast(S, a[a6 + p]);
            v = FloatVector.broadcast(S, a[a7 + p]);
            x60 = u.fma(b0, x60);
            x61 = u.fma(b1, x61);
            x70 = v.fma(b0, x70);
            x71 = v.fma(b1, x71);
            y3 = u.blend(v, upper).fma(b2, y3);
        }
        x00.intoArray(c, co);
        x01.intoArray(c, co + L);
        x10.intoArray(c, c1);
        x11.intoArray(c, c1 + L);
        x20.intoArray(c, c2);
        x21.intoArray(c, c2 + L);
        x30.intoArray(c, c3);
        x31.intoArray(c, c3 + L);
        x40.intoArray(c, c4);
        x41.intoArray(c, c4 + L);
        x50.intoArray(c, c5);
        x51.intoArray(c, c5 + L);
        x60.intoArray(c, c6);
        x61.intoArray(c, c6 + L);
        x70.intoArray(c, c7);
        x71.intoArray(c, c7 + L);
        y0.intoArray(pairAcc, 0 * L);
        y1.intoArray(pairAcc, 1 * L);
        y2.intoArray(pairAcc, 2 * L);
        y3.intoArray(pairAcc, 3 * L);
    }

    /** C tile (8 rows x 3 vectors) = start tile (rows of s0 lds apart: C itself, or zeros / bias with lds 0) + A rows read in place (row r at a[ao + r*lda + p]) times B micro-panel (kc x NR, first 3 vectors). */
    static void microDirect3(float[] a, int ao, int lda, float[] b, int bo, int kc, float[] s0, int so, int lds,
            float[] c, int co, int ldc) {
        int c1 = co + ldc;
        int s1 = so + lds;
        int s2 = s1 + lds;
        int s3 = s2 + lds;
        int s4 = s3 + lds;
        int s5 = s4 + lds;
        int s6 = s5 + lds;
        int s7 = s6 + lds;
        int c2 = c1 + ldc;
        int c3 = c2 + ldc;
        int c4 = c3 + ldc;
        int c5 = c4 + ldc;
        int c6 = c5 + ldc;
        int c7 = c6 + ldc;
        FloatVector x00 = FloatVector.fromArray(S, s0, so);
        FloatVector x01 = FloatVector.fromArray(S, s0, so + L);
        FloatVector x02 = FloatVector.fromArray(S, s0, so + 2 * L);
        FloatVector x10 = FloatVector.fromArray(S, s0, s1);
        FloatVector x11 = FloatVector.fromArray(S, s0, s1 + L);
        FloatVector x12 = FloatVector.fromArray(S, s0, s1 + 2 * L);
        FloatVector x20 = FloatVector.fromArray(S, s0, s2);
        FloatVector x21 = FloatVector.fromArray(S, s0, s2 + L);
        FloatVector x22 = FloatVector.fromArray(S, s0, s2 + 2 * L);
        FloatVector x30 = FloatVector.fromArray(S, s0, s3);
        FloatVector x31 = FloatVector.fromArray(S, s0, s3 + L);
        FloatVector x32 = FloatVector.fromArray(S, s0, s3 + 2 * L);
        FloatVector x40 = FloatVector.fromArray(S, s0, s4);
        FloatVector x41 = FloatVector.fromArray(S, s0, s4 + L);
        FloatVector x42 = FloatVector.fromArray(S, s0, s4 + 2 * L);
        FloatVector x50 = FloatVector.fromArray(S, s0, s5);
        FloatVector x51 = FloatVector.fromArray(S, s0, s5 + L);
        FloatVector x52 = FloatVector.fromArray(S, s0, s5 + 2 * L);
        FloatVector x60 = FloatVector.fromArray(S, s0, s6);
        FloatVector x61 = FloatVector.fromArray(S, s0, s6 + L);
        FloatVector x62 = FloatVector.fromArray(S, s0, s6 + 2 * L);
        FloatVector x70 = FloatVector.fromArray(S, s0, s7);
        FloatVector x71 = FloatVector.fromArray(S, s0, s7 + L);
        FloatVector x72 = FloatVector.fromArray(S, s0, s7 + 2 * L);
        int a1 = ao + lda;
        int a2 = a1 + lda;
        int a3 = a2 + lda;
        int a4 = a3 + lda;
        int a5 = a4 + lda;
        int a6 = a5 + lda;
        int a7 = a6 + lda;
        for (int p = 0; p < kc; p++) {
            int bx = bo + p * NR;
            FloatVector b0 = FloatVector.fromArray(S, b, bx);
            FloatVector b1 = FloatVector.fromArray(S, b, bx + L);
            FloatVector b2 = FloatVector.fromArray(S, b, bx + 2 * L);
            FloatVector s = FloatVector.broadcast(S, a[ao + p]);
            x00 = s.fma(b0, x00);
            x01 = s.fma(b1, x01);
            x02 = s.fma(b2, x02);
            s = FloatVector.broadcast(S, a[a1 + p]);
            x10 = s.fma(b0, x10);
            x11 = s.fma(b1, x11);
            x12 = s.fma(b2, x12);
            s = FloatVector.broadcast(S, a[a2 + p]);
            x20 = s.fma(b0, x20);
            x21 = s.fma(b1, x21);
            x22 = s.fma(b2, x22);
            s = FloatVector.broadcast(S, a[a3 + p]);
            x30 = s.fma(b0, x30);
            x31 = s.fma(b1, x31);
            x32 = s.fma(b2, x32);
            s = FloatVector.broadcast(S, a[a4 + p]);
            x40 = s.fma(b0, x40);
            x41 = s.fma(b1, x41);
            x42 = s.fma(b2, x42);
            s = FloatVector.broadcast(S, a[a5 + p]);
            x50 = s.fma(b0, x50);
            x51 = s.fma(b1, x51);
            x52 = s.fma(b2, x52);
            s = FloatVector.broadcast(S, a[a6 + p]);
            x60 = s.fma(b0, x60);
            x61 = s.fma(b1, x61);
            x62 = s.fma(b2, x62);
            s = FloatVector.broadcast(S, a[a7 + p]);
            x70 = s.fma(b0, x70);
            x71 = s.fma(b1, x71);
            x72 = s.fma(b2, x72);
        }
        x00.intoArray(c, co);
        x01.intoArray(c, co + L);
        x02.intoArray(c, co + 2 * L);
        x10.intoArray(c, c1);
        x11.intoArray(c, c1 + L);
        x12.intoArray(c, c1 + 2 * L);
        x20.intoArray(c, c2);
        x21.intoArray(c, c2 + L);
        x22.intoArray(c, c2 + 2 * L);
        x30.intoArray(c, c3);
        x31.intoArray(c, c3 + L);
        x32.intoArray(c, c3 + 2 * L);
        x40.intoArray(c, c4);
        x41.intoArray(c, c4 + L);
        x42.intoArray(c, c4 + 2 * L);
        x50.intoArray(c, c5);
        x51.intoArray(c, c5 + L);
        x52.intoArray(c, c5 + 2 * L);
        x60.intoArray(c, c6);
        x61.intoArray(c, c6 + L);
        x62.intoArray(c, c6 + 2 * L);
        x70.intoArray(c, c7);
        x71.intoArray(c, c7 + L);
        x72.intoArray(c, c7 + 2 * L);
    }

    /** C tile (8 rows x 2 vectors) = start tile (rows of s0 lds apart: C itself, or zeros / bias with lds 0) + A rows read in place (row r at a[ao + r*lda + p]) times B micro-panel (kc x NR, first 2 vectors). */
    static void microDirect2(float[] a, int ao, int lda, float[] b, int bo, int kc, float[] s0, int so, int lds,
            float[] c, int co, int ldc) {
        int c1 = co + ldc;
        int s1 = so + lds;
        int s2 = s1 + lds;
        int s3 = s2 + lds;
        int s4 = s3 + lds;
        int s5 = s4 + lds;
        int s6 = s5 + lds;
        int s7 = s6 + lds;
        int c2 = c1 + ldc;
        int c3 = c2 + ldc;
        int c4 = c3 + ldc;
        int c5 = c4 + ldc;
        int c6 = c5 + ldc;
        int c7 = c6 + ldc;
        FloatVector x00 = FloatVector.fromArray(S, s0, so);
        FloatVector x01 = FloatVector.fromArray(S, s0, so + L);
        FloatVector x10 = FloatVector.fromArray(S, s0, s1);
        FloatVector x11 = FloatVector.fromArray(S, s0, s1 + L);
        FloatVector x20 = FloatVector.fromArray(S, s0, s2);
        FloatVector x21 = FloatVector.fromArray(S, s0, s2 + L);
        FloatVector x30 = FloatVector.fromArray(S, s0, s3);
        FloatVector x31 = FloatVector.fromArray(S, s0, s3 + L);
        FloatVector x40 = FloatVector.fromArray(S, s0, s4);
        FloatVector x41 = FloatVector.fromArray(S, s0, s4 + L);
        FloatVector x50 = FloatVector.fromArray(S, s0, s5);
        FloatVector x51 = FloatVector.fromArray(S, s0, s5 + L);
        FloatVector x60 = FloatVector.fromArray(S, s0, s6);
        FloatVector x61 = FloatVector.fromArray(S, s0, s6 + L);
        FloatVector x70 = FloatVector.fromArray(S, s0, s7);
        FloatVector x71 = FloatVector.fromArray(S, s0, s7 + L);
        int a1 = ao + lda;
        int a2 = a1 + lda;
        int a3 = a2 + lda;
        int a4 = a3 + lda;
        int a5 = a4 + lda;
        int a6 = a5 + lda;
        int a7 = a6 + lda;
        for (int p = 0; p < kc; p++) {
            int bx = bo + p * NR;
            FloatVector b0 = FloatVector.fromArray(S, b, bx);
            FloatVector b1 = FloatVector.fromArray(S, b, bx + L);
            FloatVector s = FloatVector.broadcast(S, a[ao + p]);
            x00 = s.fma(b0, x00);
            x01 = s.fma(b1, x01);
            s = FloatVector.broadcast(S, a[a1 + p]);
            x10 = s.fma(b0, x10);
            x11 = s.fma(b1, x11);
            s = FloatVector.broadcast(S, a[a2 + p]);
            x20 = s.fma(b0, x20);
            x21 = s.fma(b1, x21);
            s = FloatVector.broadcast(S, a[a3 + p]);
            x30 = s.fma(b0, x30);
            x31 = s.fma(b1, x31);
            s = FloatVector.broadcast(S, a[a4 + p]);
            x40 = s.fma(b0, x40);
            x41 = s.fma(b1, x41);
            s = FloatVector.broadcast(S, a[a5 + p]);
            x50 = s.fma(b0, x50);
            x51 = s.fma(b1, x51);
            s = FloatVector.broadcast(S, a[a6 + p]);
            x60 = s.fma(b0, x60);
            x61 = s.fma(b1, x61);
            s = FloatVector.broadcast(S, a[a7 + p]);
            x70 = s.fma(b0, x70);
            x71 = s.fma(b1, x71);
        }
        x00.intoArray(c, co);
        x01.intoArray(c, co + L);
        x10.intoArray(c, c1);
        x11.intoArray(c, c1 + L);
        x20.intoArray(c, c2);
        x21.intoArray(c, c2 + L);
        x30.intoArray(c, c3);
        x31.intoArray(c, c3 + L);
        x40.intoArray(c, c4);
        x41.intoArray(c, c4 + L);
        x50.intoArray(c, c5);
        x51.intoArray(c, c5 + L);
        x60.intoArray(c, c6);
        x61.intoArray(c, c6 + L);
        x70.intoArray(c, c7);
        x71.intoArray(c, c7 + L);
    }

    /** C tile (8 rows x 1 vectors) = start tile (rows of s0 lds apart: C itself, or zeros / bias with lds 0) + A rows read in place (row r at a[ao + r*lda + p]) times B micro-panel (kc x NR, first 1 vector). */
    static void microDirect1(float[] a, int ao, int lda, float[] b, int bo, int kc, float[] s0, int so, int lds,
            float[] c, int co, int ldc) {
        int c1 = co + ldc;
        int s1 = so + lds;
        int s2 = s1 + lds;
        int s3 = s2 + lds;
        int s4 = s3 + lds;
        int s5 = s4 + lds;
        int s6 = s5 + lds;
        int s7 = s6 + lds;
        int c2 = c1 + ldc;
        int c3 = c2 + ldc;
        int c4 = c3 + ldc;
        int c5 = c4 + ldc;
        int c6 = c5 + ldc;
        int c7 = c6 + ldc;
        FloatVector x00 = FloatVector.fromArray(S, s0, so);
        FloatVector x10 = FloatVector.fromArray(S, s0, s1);
        FloatVector x20 = FloatVector.fromArray(S, s0, s2);
        FloatVector x30 = FloatVector.fromArray(S, s0, s3);
        FloatVector x40 = FloatVector.fromArray(S, s0, s4);
        FloatVector x50 = FloatVector.fromArray(S, s0, s5);
        FloatVector x60 = FloatVector.fromArray(S, s0, s6);
        FloatVector x70 = FloatVector.fromArray(S, s0, s7);
        int a1 = ao + lda;
        int a2 = a1 + lda;
        int a3 = a2 + lda;
        int a4 = a3 + lda;
        int a5 = a4 + lda;
        int a6 = a5 + lda;
        int a7 = a6 + lda;
        for (int p = 0; p < kc; p++) {
            int bx = bo + p * NR;
            FloatVector b0 = FloatVector.fromArray(S, b, bx);
            FloatVector s = FloatVector.broadcast(S, a[ao + p]);
            x00 = s.fma(b0, x00);
            s = FloatVector.broadcast(S, a[a1 + p]);
            x10 = s.fma(b0, x10);
            s = FloatVector.broadcast(S, a[a2 + p]);
            x20 = s.fma(b0, x20);
            s = FloatVector.broadcast(S, a[a3 + p]);
            x30 = s.fma(b0, x30);
            s = FloatVector.broadcast(S, a[a4 + p]);
            x40 = s.fma(b0, x40);
            s = FloatVector.broadcast(S, a[a5 + p]);
            x50 = s.fma(b0, x50);
            s = FloatVector.broadcast(S, a[a6 + p]);
            x60 = s.fma(b0, x60);
            s = FloatVector.broadcast(S, a[a7 + p]);
            x70 = s.fma(b0, x70);
        }
        x00.intoArray(c, co);
        x10.intoArray(c, c1);
        x20.intoArray(c, c2);
        x30.intoArray(c, c3);
        x40.intoArray(c, c4);
        x50.intoArray(c, c5);
        x60.intoArray(c, c6);
        x70.intoArray(c, c7);
    }

    /** C = A (m x k) B (k x n), all row-major activations; B is packed on the fly. */
    public static float[] matmul(float[] a, float[] b, int m, int n, int k) {
        float[] c = new float[m * n];
        matmul(a, b, m, n, k, c);
        return c;
    }

    /**
     * The same into c (m x n). B is packed into the calling thread's scratch, kept from call to call: a product
     * of activations repeated in a loop (a benchmark, a sampler step) then allocates nothing, and a concurrent
     * collector has no garbage to chase while the product runs.
     */
    public static void matmul(float[] a, float[] b, int m, int n, int k, float[] c) {
        float[] scratch = grow(PACK.get(), 0, (n + NR - 1) / NR * NR * k);
        multiply(new Dense(a, 0, k), m, pack(b, 0, n, 1, k, n, Integer.MAX_VALUE, scratch), c, 0, n, null, false);
    }

    /**
     * Slot of a per-thread scratch holder with room for at least size floats (kernels keep their scratch from call
     * to call); a slot too small is let go before the larger array is allocated.
     */
    static float[] grow(float[][] holder, int slot, int size) {
        if (holder[slot] == null || holder[slot].length < size) {
            holder[slot] = null;
            holder[slot] = new float[size];
        }
        return holder[slot];
    }

    static int roundUp(int x, int q) {
        return (x + q - 1) / q * q;
    }
}
