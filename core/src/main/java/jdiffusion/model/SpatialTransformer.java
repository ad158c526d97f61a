package jdiffusion.model;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import jdiffusion.model.UNetLayers.Feature;
import jdiffusion.model.UNetLayers.GroupNorm;
import jdiffusion.model.UNetLayers.LayerNorm;
import jdiffusion.tensor.Linear;
import jdiffusion.tensor.Ops;

/**
 * The UNet's SpatialTransformer: GroupNorm (eps 1e-6), proj_in, BasicTransformerBlocks (self-attention,
 * cross-attention on the text context, GEGLU feed-forward, each pre-LayerNorm and residual), proj_out, and a
 * residual around it all. proj_in/out are 1x1 convs in SD1 and Linear in SD2/SDXL: the same map on NHWC rows.
 */
final class SpatialTransformer {
    /**
     * Rows per feed-forward slice: large enough for an efficient GEMM, small enough to bound the temporaries.
     * Not final only so that a test can shrink it and exercise the slicing on tiny models.
     */
    static volatile int ffRows = 1024;

    private final GroupNorm norm;
    private final Linear projIn;
    private final List<Block> blocks;
    private final Linear projOut;
    private final int channels;

    private SpatialTransformer(GroupNorm norm, Linear projIn, List<Block> blocks, Linear projOut, int channels) {
        this.norm = norm;
        this.projIn = projIn;
        this.blocks = blocks;
        this.projOut = projOut;
        this.channels = channels;
    }

    static SpatialTransformer load(UNetTensors t, String prefix, int channels, int depth, int contextDim,
                                   UNetConfig.HeadsRule headsRule) {
        GroupNorm norm = t.groupNorm(prefix + ".norm", channels, 32, 1e-6f);
        Linear projIn = t.linear(prefix + ".proj_in", channels);
        int inner = projIn.out();
        int heads = headsRule.heads(inner);
        if (heads <= 0 || inner % heads != 0) {
            throw new UNetTensors.BadTensorException("tensor '" + prefix + ".proj_in.weight': " + inner
                    + " channels do not split into " + heads + " heads");
        }
        List<Block> blocks = new ArrayList<>();
        for (int k = 0; k < depth; k++) {
            blocks.add(Block.load(t, prefix + ".transformer_blocks." + k, inner, heads, contextDim));
        }
        Linear projOut = t.linear(prefix + ".proj_out", inner);
        if (projOut.out() != channels) {
            throw new UNetTensors.BadTensorException("tensor '" + prefix + ".proj_out.weight' has " + projOut.out()
                    + " outputs, expected " + channels);
        }
        return new SpatialTransformer(norm, projIn, List.copyOf(blocks), projOut, channels);
    }

    /** x is left unchanged; context is [batch][tokens][contextDim]. */
    Feature forward(Feature x, float[] context, int tokens) {
        int rows = x.rows();
        float[] h = projIn.forward(norm.apply(x, false), rows);
        for (Block b : blocks) {
            b.forward(h, x.batch(), x.pixels(), context, tokens);
        }
        h = projOut.forward(h, rows);
        Ops.addInPlace(h, x.data());
        return x.with(h, channels);
    }

    /** BasicTransformerBlock: x += attn1(ln1 x); x += attn2(ln2 x, context); x += ff(ln3 x). */
    private record Block(LayerNorm norm1, Attention attn1, LayerNorm norm2, Attention attn2, LayerNorm norm3,
                         Linear ffIn, Linear ffOut) {
        static Block load(UNetTensors t, String prefix, int inner, int heads, int contextDim) {
            float eps = 1e-5f;
            Linear ffIn = t.linear(prefix + ".ff.net.0.proj", inner);
            if (ffIn.out() % 2 != 0) {
                throw new UNetTensors.BadTensorException("tensor '" + prefix + ".ff.net.0.proj.weight' has an odd "
                        + "output width " + ffIn.out() + "; GEGLU needs [value | gate]");
            }
            Linear ffOut = t.linear(prefix + ".ff.net.2", ffIn.out() / 2);
            return new Block(t.layerNorm(prefix + ".norm1", inner, eps),
                    Attention.load(t, prefix + ".attn1", inner, inner, heads),
                    t.layerNorm(prefix + ".norm2", inner, eps),
                    Attention.load(t, prefix + ".attn2", inner, contextDim, heads),
                    t.layerNorm(prefix + ".norm3", inner, eps), ffIn, ffOut);
        }

        /** Updates x ([batch][pixels][inner]) in place. */
        void forward(float[] x, int batch, int pixels, float[] context, int tokens) {
            int rows = batch * pixels;
            float[] n = norm1.apply(x, rows);
            attn1.forwardAdd(n, pixels, n, pixels, batch, x);
            n = norm2.apply(x, rows);
            attn2.forwardAdd(n, pixels, context, tokens, batch, x);
            feedForward(x, rows);
        }

        /**
         * x += ff(ln3 x), a slice of rows at a time: every row is independent, and the GEGLU input is 8x the
         * width (SDXL at 1024x1024 with CFG: 8192 rows x 10240 = 335 MB at once, ~40 MB per slice).
         */
        private void feedForward(float[] x, int rows) {
            int width = norm3.channels();
            int sliceRows = ffRows;
            for (int r0 = 0; r0 < rows; r0 += sliceRows) {
                int n = Math.min(sliceRows, rows - r0);
                float[] slice = rows <= sliceRows ? x : Arrays.copyOfRange(x, r0 * width, (r0 + n) * width);
                float[] gated = Ops.geglu(ffIn.forward(norm3.apply(slice, n), n), n, ffIn.out() / 2);
                // the residual add happens in the GEMM's output pass (no temporary, no extra sweep over x)
                ffOut.forward(gated, 0, ffOut.in(), n, x, r0 * width, width, true);
            }
        }
    }

    /** Multi-head attention with bias-free q/k/v (as in LDM) and a biased output projection. */
    private record Attention(Linear q, Linear k, Linear v, Linear out, int heads) {
        static Attention load(UNetTensors t, String prefix, int inner, int kvDim, int heads) {
            Linear q = t.linear(prefix + ".to_q", inner);
            Linear k = t.linear(prefix + ".to_k", kvDim);
            Linear v = t.linear(prefix + ".to_v", kvDim);
            Linear out = t.linear(prefix + ".to_out.0", q.out());
            if (k.out() != q.out() || v.out() != q.out() || out.out() != inner) {
                throw new UNetTensors.BadTensorException("attention '" + prefix + "' has q/k/v/out widths " + q.out()
                        + "/" + k.out() + "/" + v.out() + "/" + out.out() + ", expected " + inner);
            }
            return new Attention(q, k, v, out, heads);
        }

        /** residual += attention(x, kv), the output projection accumulating straight into residual. */
        void forwardAdd(float[] x, int nq, float[] kv, int nk, int batch, float[] residual) {
            float[] qs = q.forward(x, batch * nq);
            float[] ks = k.forward(kv, batch * nk);
            float[] vs = v.forward(kv, batch * nk);
            int width = q.out();
            float[] o = Ops.attention(qs, ks, vs, batch, nq, nk, heads, width / heads, false, q.nativeBf16());
            out.forwardAdd(o, batch * nq, residual);
        }
    }
}
