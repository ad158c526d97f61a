package jdiffusion.model;

import jdiffusion.model.UNetLayers.Feature;
import jdiffusion.model.UNetLayers.GroupNorm;
import jdiffusion.tensor.Linear;
import jdiffusion.tensor.Ops;

/**
 * The VAE mid-block self-attention: one head over all pixels, q/k/v/proj_out stored as 1x1 convs (used here as
 * the linear layers they are on NHWC rows), GroupNorm eps 1e-6 before and a residual around it.
 */
final class VaeAttention {
    private final GroupNorm norm;
    private final Linear q;
    private final Linear k;
    private final Linear v;
    private final Linear proj;

    private VaeAttention(GroupNorm norm, Linear q, Linear k, Linear v, Linear proj) {
        this.norm = norm;
        this.q = q;
        this.k = k;
        this.v = v;
        this.proj = proj;
    }

    static VaeAttention load(UNetTensors t, String prefix, int channels) {
        GroupNorm norm = t.groupNorm(prefix + ".norm", channels, 32, 1e-6f);
        Linear q = t.linear(prefix + ".q", channels);
        Linear k = t.linear(prefix + ".k", channels);
        Linear v = t.linear(prefix + ".v", channels);
        Linear proj = t.linear(prefix + ".proj_out", channels);
        if (q.out() != channels || k.out() != channels || v.out() != channels || proj.out() != channels) {
            throw new UNetTensors.BadTensorException("attention '" + prefix + "' must keep " + channels
                    + " channels in q, k, v and proj_out");
        }
        return new VaeAttention(norm, q, k, v, proj);
    }

    /** x is left unchanged. */
    Feature forward(Feature x) {
        int rows = x.rows();
        float[] n = norm.apply(x, false);
        float[] qs = q.forward(n, rows);
        float[] ks = k.forward(n, rows);
        float[] vs = v.forward(n, rows);
        float[] o = Ops.attention(qs, ks, vs, x.batch(), x.pixels(), x.pixels(), 1, x.c(), false,
                q.nativeBf16());
        float[] y = proj.forward(o, rows);
        Ops.addInPlace(y, x.data());
        return x.with(y, x.c());
    }
}
