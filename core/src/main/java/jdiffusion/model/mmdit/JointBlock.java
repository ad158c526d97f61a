package jdiffusion.model.mmdit;

import java.util.Arrays;
import jdiffusion.tensor.Linear;
import jdiffusion.tensor.Ops;

/**
 * One joint block: a context stream and an image stream, each modulated by its own adaLN from the conditioning
 * vector, attending together over the concatenated [context, image] tokens. Modulation chunks in the original
 * order: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp (then shift_msa2, scale_msa2, gate_msa2 in
 * MMDiT-X blocks). The last block's context stream is "pre only" (shift, scale and q/k/v; its output is dropped).
 */
final class JointBlock {
    /** Rows per feed-forward slice, bounding the 4x-wide temporaries. */
    static volatile int ffRows = 1024;

    private final Stream context;
    private final Stream image;
    private final SelfAttention attn2;
    private final int hidden;
    private final int heads;

    private JointBlock(Stream context, Stream image, SelfAttention attn2, int hidden, int heads) {
        this.context = context;
        this.image = image;
        this.attn2 = attn2;
        this.hidden = hidden;
        this.heads = heads;
    }

    static JointBlock load(MMDiT.Tensors t, String prefix, MMDiTConfig cfg, boolean last) {
        int h = cfg.hidden();
        boolean preOnly = !t.has(prefix + ".context_block.attn.proj.weight");
        if (preOnly != last) {
            throw new IllegalStateException(prefix + ".context_block " + (preOnly ? "has no attn.proj but is not the"
                    + " last block" : "has attn.proj but the last block's context stream is pre-only"));
        }
        boolean dual = cfg.dualAttentionBlocks().contains(Integer.parseInt(prefix.substring(prefix.lastIndexOf('.')
                + 1)));
        Stream ctx = Stream.load(t, prefix + ".context_block", cfg, preOnly, preOnly ? 2 : 6);
        Stream img = Stream.load(t, prefix + ".x_block", cfg, false, dual ? 9 : 6);
        SelfAttention a2 = dual ? SelfAttention.load(t, prefix + ".x_block.attn2", cfg) : null;
        return new JointBlock(ctx, img, a2, h, cfg.heads());
    }

    long weightBytes() {
        return context.weightBytes() + image.weightBytes() + (attn2 == null ? 0 : attn2.weightBytes());
    }

    /**
     * Updates the image tokens xs ([batch][n][hidden]) in place and returns the new context tokens (null after the
     * pre-only last block). cond is SiLU(c), [batch][hidden].
     */
    float[] forward(float[] ctx, int tokens, float[] xs, int n, int batch, float[] cond) {
        int c = hidden;
        int hd = c / heads;
        float[] cm = context.adaLN.forward(cond, batch);
        float[] xm = image.adaLN.forward(cond, batch);
        int cChunks = context.chunks;
        int xChunks = image.chunks;

        float[] ctxQkv = context.attn.qkv.forward(TokenOps.normModulate(ctx, 0, tokens, c, cm, cChunks, 0, 1),
                batch * tokens);
        float[] xIn2 = null;
        float[] xQkv;
        if (attn2 != null) {
            // both attentions of an MMDiT-X block modulate the same LayerNorm output
            float[] xNorm = TokenOps.layerNorm(xs, c);
            xQkv = image.attn.qkv.forward(TokenOps.modulate(xNorm, 0, n, c, xm, xChunks, 0, 1), batch * n);
            xIn2 = TokenOps.modulate(xNorm, 0, n, c, xm, xChunks, 6, 7);
        } else {
            xQkv = image.attn.qkv.forward(TokenOps.normModulate(xs, 0, n, c, xm, xChunks, 0, 1), batch * n);
        }

        int seq = tokens + n;
        float[] q = new float[batch * seq * c];
        float[] k = new float[batch * seq * c];
        float[] v = new float[batch * seq * c];
        context.attn.split(ctxQkv, tokens, q, k, v, seq, 0, hd);
        image.attn.split(xQkv, n, q, k, v, seq, tokens, hd);
        float[] o = Ops.attention(q, k, v, batch, seq, seq, heads, hd, false, image.attn.qkv.nativeBf16());

        // image stream: x += gate_msa * proj(attn); x += gate_msa2 * attn2(...); x += gate_mlp * mlp(...)
        float[] proj = new float[batch * n * c];
        for (int b = 0; b < batch; b++) {
            image.attn.proj.forward(o, (b * seq + tokens) * c, c, n, proj, b * n * c, c, false);
        }
        if (attn2 != null) {
            float[] proj2 = attn2.forward(xIn2, batch, n, hd, heads);
            TokenOps.addGated(xs, 0, proj, batch * n, n, c, xm, xChunks, 2);
            TokenOps.addGated(xs, 0, proj2, batch * n, n, c, xm, xChunks, 8);
        } else {
            TokenOps.addGated(xs, 0, proj, batch * n, n, c, xm, xChunks, 2);
        }
        image.feedForward(xs, batch * n, n, xm);

        if (context.attn.proj == null) {
            return null;
        }
        float[] cproj = new float[batch * tokens * c];
        for (int b = 0; b < batch; b++) {
            context.attn.proj.forward(o, b * seq * c, c, tokens, cproj, b * tokens * c, c, false);
        }
        TokenOps.addGated(ctx, 0, cproj, batch * tokens, tokens, c, cm, cChunks, 2);
        context.feedForward(ctx, batch * tokens, tokens, cm);
        return ctx;
    }

    /** q/k/v projection, optional per-head RMS norms of q and k, output projection (null when pre-only). */
    record Attn(Linear qkv, float[] lnQ, float[] lnK, Linear proj) {
        static Attn load(MMDiT.Tensors t, String prefix, MMDiTConfig cfg, boolean preOnly) {
            int h = cfg.hidden();
            Linear qkv = t.linear(prefix + ".qkv", h, 3 * h);
            float[] lq = null;
            float[] lk = null;
            if (cfg.qkNorm()) {
                lq = t.get(prefix + ".ln_q.weight", MMDiTConfig.HEAD_DIM);
                lk = t.get(prefix + ".ln_k.weight", MMDiTConfig.HEAD_DIM);
            }
            Linear proj = preOnly ? null : t.linear(prefix + ".proj", h, h);
            return new Attn(qkv, lq, lk, proj);
        }

        void split(float[] qkv, int tokens, float[] q, float[] k, float[] v, int seq, int offset, int hd) {
            int c = this.qkv.out() / 3;
            TokenOps.splitHeads(qkv, tokens, c, 0, hd, lnQ, q, seq, offset);
            TokenOps.splitHeads(qkv, tokens, c, 1, hd, lnK, k, seq, offset);
            TokenOps.splitHeads(qkv, tokens, c, 2, hd, null, v, seq, offset);
        }

        long weightBytes() {
            return qkv.weightBytes() + (proj == null ? 0 : proj.weightBytes());
        }
    }

    /** MMDiT-X's second attention of the image stream: self-attention over the image tokens alone. */
    record SelfAttention(Attn attn) {
        static SelfAttention load(MMDiT.Tensors t, String prefix, MMDiTConfig cfg) {
            return new SelfAttention(Attn.load(t, prefix, cfg, false));
        }

        float[] forward(float[] xIn, int batch, int n, int hd, int heads) {
            int c = attn.qkv.out() / 3;
            float[] qkv = attn.qkv.forward(xIn, batch * n);
            float[] q = new float[batch * n * c];
            float[] k = new float[batch * n * c];
            float[] v = new float[batch * n * c];
            attn.split(qkv, n, q, k, v, n, 0, hd);
            float[] o = Ops.attention(q, k, v, batch, n, n, heads, hd, false, attn.qkv.nativeBf16());
            return attn.proj.forward(o, batch * n);
        }

        long weightBytes() {
            return attn.weightBytes();
        }
    }

    /** One stream of a joint block: adaLN, attention projections, feed-forward (absent when pre-only). */
    static final class Stream {
        final Linear adaLN;
        final Attn attn;
        final Linear fc1;
        final Linear fc2;
        final int chunks;
        final int hidden;

        private Stream(Linear adaLN, Attn attn, Linear fc1, Linear fc2, int chunks, int hidden) {
            this.adaLN = adaLN;
            this.attn = attn;
            this.fc1 = fc1;
            this.fc2 = fc2;
            this.chunks = chunks;
            this.hidden = hidden;
        }

        static Stream load(MMDiT.Tensors t, String prefix, MMDiTConfig cfg, boolean preOnly, int chunks) {
            int h = cfg.hidden();
            Linear ada = t.linear(prefix + ".adaLN_modulation.1", h, chunks * h);
            Attn attn = Attn.load(t, prefix + ".attn", cfg, preOnly);
            Linear fc1 = preOnly ? null : t.linear(prefix + ".mlp.fc1", h, cfg.mlpHidden());
            Linear fc2 = preOnly ? null : t.linear(prefix + ".mlp.fc2", cfg.mlpHidden(), h);
            return new Stream(ada, attn, fc1, fc2, chunks, h);
        }

        long weightBytes() {
            return adaLN.weightBytes() + attn.weightBytes() + (fc1 == null ? 0 : fc1.weightBytes() + fc2.weightBytes());
        }

        /** x += gate_mlp * fc2(gelu_tanh(fc1(modulate(LN(x), shift_mlp, scale_mlp)))), a slice of rows at a time. */
        void feedForward(float[] x, int rows, int tokens, float[] mod) {
            int c = hidden;
            int slice = ffRows;
            for (int r0 = 0; r0 < rows; r0 += slice) {
                int nr = Math.min(slice, rows - r0);
                float[] part = rows <= slice ? x : Arrays.copyOfRange(x, r0 * c, (r0 + nr) * c);
                float[] in = TokenOps.normModulate(part, r0, tokens, c, mod, chunks, 3, 4);
                float[] hdn = fc1.forward(in, nr);
                TokenOps.geluTanh(hdn, fc1.out());
                float[] y = fc2.forward(hdn, nr);
                TokenOps.addGated(x, r0, y, nr, tokens, c, mod, chunks, 5);
            }
        }
    }
}
