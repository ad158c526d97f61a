package jdiffusion.tensor;

/**
 * Multi-head scaled dot-product attention that streams over keys: for a block of queries it takes the keys a block
 * at a time, S = Q K^T on the GEMM kernel, an online softmax (running row maximum and sum, the partial output
 * rescaled when the maximum grows), then O += P V on the GEMM kernel. No score matrix larger than one block
 * (QB x KB floats) exists at once, however long the sequence. Layouts as {@link Reference#attention}.
 */
final class Attention {
    /** Queries per block: a multiple of the micro-tile height. */
    static final int QB = 12 * Gemm.MR;
    /**
     * Keys per block: a multiple of the panel width, so a key block is a range of whole panels of K^T; at most
     * {@link Gemm#KC}, so it is one k block of the packed V.
     */
    static final int KB = Gemm.KC / Gemm.NR * Gemm.NR;

    private Attention() {
    }

    /** Per-thread scratch: scores/probabilities, partial output, running max and sum. */
    private static final ThreadLocal<float[][]> SCRATCH = ThreadLocal.withInitial(() -> new float[4][]);

    static float[] forward(float[] q, float[] k, float[] v, int batch, int nq, int nk, int heads, int hd,
                           boolean causal) {
        return forward(q, k, v, batch, nq, nk, heads, hd, causal, Precision.nativeBf16Now());
    }

    /**
     * The one dispatch between the kernels: bf16 asks for the products in bf16 ({@link Bf16Attention}), which runs
     * where oneDNN is usable and {@code -Djdiffusion.bf16.attention=off} does not keep attention in fp32; else this
     * fp32 kernel (bit-identical to what it always computed).
     */
    static float[] forward(float[] q, float[] k, float[] v, int batch, int nq, int nk, int heads, int hd,
                           boolean causal, boolean bf16) {
        if (bf16 && hd >= BF16_MIN_HEAD && bf16Attention()) {
            check(q, k, v, batch, nq, nk, heads * hd);
            return Bf16Attention.forward(q, k, v, batch, nq, nk, heads, hd, causal);
        }
        return forward(q, k, v, batch, nq, nk, heads, hd, causal, QB, KB);
    }

    /**
     * Narrowest head that takes the bf16 kernel. Below it the fp32 softmax dominates and oneDNN's matmul with a
     * 40-wide dimension is slow: measured alternating on the full SD1.5 UNet (4096 tokens at head 40), bf16 step
     * 6.37 s with bf16 attention against 6.01 s with it off (SDXL, head 64: 25.4 against 26.7 s, kept).
     */
    static final int BF16_MIN_HEAD = 64;

    /** Whether a bf16 request runs on the bf16 kernel: oneDNN usable, not forced off (read at each call). */
    static boolean bf16Attention() {
        String p = System.getProperty("jdiffusion.bf16.attention");
        boolean off = p != null && (p.equalsIgnoreCase("off") || p.equalsIgnoreCase("false") || p.equals("0"));
        return !off && OneDnn.usable();
    }

    private static void check(float[] q, float[] k, float[] v, int batch, int nq, int nk, int c) {
        if (q.length != batch * nq * c || k.length != batch * nk * c || v.length != batch * nk * c) {
            throw new IllegalArgumentException("attention: q/k/v have " + q.length + "/" + k.length + "/" + v.length
                    + " values, expected " + batch + "x" + nq + "x" + c + " and " + batch + "x" + nk + "x" + c);
        }
    }

    /** The same with the given query and key block sizes (multiples of MR, and of NR up to KC). */
    static float[] forward(float[] q, float[] k, float[] v, int batch, int nq, int nk, int heads, int hd,
                           boolean causal, int qb, int kb) {
        int c = heads * hd;
        check(q, k, v, batch, nq, nk, c);
        float[] out = new float[batch * nq * c];
        if (nq == 0 || nk == 0) {
            return out;
        }
        // K^T (hd x nk) and V (nk x hd) of every (image, head), packed as GEMM B operands
        Gemm.PackedB[] kt = new Gemm.PackedB[batch * heads];
        Gemm.PackedB[] vp = new Gemm.PackedB[batch * heads];
        Parallel.forRange(batch * heads, i -> {
            int off = i / heads * nk * c + i % heads * hd;
            kt[i] = Gemm.pack(k, off, 1, c, hd, nk);
            vp[i] = Gemm.packFixedBlocks(v, off, c, 1, nk, hd, kb);
        });
        int qBlocks = (nq + qb - 1) / qb;
        float scale = (float) (1.0 / Math.sqrt(hd));
        Parallel.forRange(batch * heads * qBlocks, t -> {
            int bh = t / qBlocks;
            int q0 = t % qBlocks * qb;
            queryBlock(q, out, bh / heads, bh % heads, q0, Math.min(qb, nq - q0), nq, nk, c, hd, kt[bh], vp[bh],
                    scale, causal, qb, kb);
        });
        return out;
    }

    private static void queryBlock(float[] q, float[] out, int b, int h, int q0, int rows, int nq, int nk, int c,
                                   int hd, Gemm.PackedB kt, Gemm.PackedB vp, float scale, boolean causal, int qb,
                                   int kb) {
        int ldo = vp.panels() * Gemm.NR;
        float[][] sc = SCRATCH.get();
        float[] s = Gemm.grow(sc, 0, qb * kb);
        float[] o = Gemm.grow(sc, 1, qb * ldo);
        float[] max = Gemm.grow(sc, 2, qb);
        float[] sum = Gemm.grow(sc, 3, qb);
        java.util.Arrays.fill(o, 0, rows * ldo, 0f);
        java.util.Arrays.fill(max, 0, rows, Float.NEGATIVE_INFINITY);
        java.util.Arrays.fill(sum, 0, rows, 0f);
        Gemm.Dense queries = new Gemm.Dense(q, (b * nq) * c + h * hd, c);
        int keyEnd = causal ? Math.min(nk, q0 + rows) : nk;
        for (int k0 = 0; k0 < keyEnd; k0 += kb) {
            // a whole key block (the packed V's k block); causally masked keys get probability 0 below
            int kn = Math.min(kb, nk - k0);
            int p0 = k0 / Gemm.NR;
            int p1 = (k0 + kn + Gemm.NR - 1) / Gemm.NR;
            Gemm.block(queries, q0, rows, kt, p0, p1, 0, hd, s, 0, kb, null, false, true);
            for (int i = 0; i < rows; i++) {
                // causal: query q0+i sees keys up to itself; key 0 is always visible, so max stays finite
                int visible = causal ? Math.max(0, Math.min(kn, q0 + i + 1 - k0)) : kn;
                onlineSoftmax(s, i * kb, kn, visible, scale, max, sum, o, i * ldo, ldo, i);
            }
            Gemm.block(new Gemm.Dense(s, -k0, kb), 0, rows, vp, 0, vp.panels(), k0, k0 + kn, o, 0, ldo, null, true,
                    true);
        }
        for (int i = 0; i < rows; i++) {
            float inv = 1f / sum[i];
            int dst = (b * nq + q0 + i) * c + h * hd;
            for (int e = 0; e < hd; e++) {
                out[dst + e] = o[i * ldo + e] * inv;
            }
        }
    }

    /**
     * Turns one row of scores into unnormalised probabilities against the running maximum, rescaling the row's
     * partial output and sum when the maximum grows; masked keys (from visible on) get probability 0.
     */
    private static void onlineSoftmax(float[] s, int base, int kn, int visible, float scale, float[] max,
                                      float[] sum, float[] o, int oBase, int ldo, int i) {
        if (visible < kn) {
            java.util.Arrays.fill(s, base + visible, base + kn, 0f);
        }
        if (visible == 0) {
            return;
        }
        float blockMax = Ops.max(s, base, visible) * scale;
        float newMax = Math.max(max[i], blockMax);
        if (newMax > max[i] && max[i] != Float.NEGATIVE_INFINITY) {
            float alpha = Vec.exp(max[i] - newMax);
            sum[i] *= alpha;
            Ops.scaleRow(o, oBase, ldo, alpha);
        }
        max[i] = newMax;
        sum[i] += Ops.expShifted(s, base, visible, scale, newMax);
    }
}
