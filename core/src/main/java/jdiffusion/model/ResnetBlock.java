package jdiffusion.model;

import jdiffusion.model.UNetLayers.Feature;
import jdiffusion.model.UNetLayers.GroupNorm;
import jdiffusion.tensor.Conv2d;
import jdiffusion.tensor.Linear;
import jdiffusion.tensor.Ops;

/**
 * The residual block of the UNet (with a timestep embedding) and of the VAE (without):
 * {@code out = shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))) + proj(silu(emb)))))}.
 * Dropout is absent because this is inference only.
 */
final class ResnetBlock {
    private final GroupNorm norm1;
    private final Conv2d conv1;
    private final Linear embProj;
    private final GroupNorm norm2;
    private final Conv2d conv2;
    private final Linear shortcut;
    private final int in;
    private final int out;

    private ResnetBlock(GroupNorm norm1, Conv2d conv1, Linear embProj, GroupNorm norm2, Conv2d conv2, Linear shortcut) {
        this.norm1 = norm1;
        this.conv1 = conv1;
        this.embProj = embProj;
        this.norm2 = norm2;
        this.conv2 = conv2;
        this.shortcut = shortcut;
        this.in = conv1.in();
        this.out = conv1.out();
    }

    /** A UNet ResBlock (LDM names in_layers / emb_layers / out_layers / skip_connection); GroupNorm eps 1e-5. */
    static ResnetBlock unet(UNetTensors t, String prefix, int in, int embDim) {
        float eps = 1e-5f;
        GroupNorm n1 = t.groupNorm(prefix + ".in_layers.0", in, 32, eps);
        Conv2d c1 = t.conv3x3(prefix + ".in_layers.2", in);
        int out = c1.out();
        Linear emb = t.linear(prefix + ".emb_layers.1", embDim);
        requireWidth(emb.out(), out, prefix + ".emb_layers.1.weight");
        GroupNorm n2 = t.groupNorm(prefix + ".out_layers.0", out, 32, eps);
        Conv2d c2 = t.conv3x3(prefix + ".out_layers.3", out);
        Linear skip = shortcut(t, prefix + ".skip_connection", in, out);
        return new ResnetBlock(n1, c1, emb, n2, c2, skip);
    }

    /** A VAE ResnetBlock (names norm1 / conv1 / norm2 / conv2 / nin_shortcut), no time embedding; eps 1e-6. */
    static ResnetBlock vae(UNetTensors t, String prefix, int in) {
        float eps = 1e-6f;
        GroupNorm n1 = t.groupNorm(prefix + ".norm1", in, 32, eps);
        // the VAEs' goldens hold Winograd F(4x4,3x3) with margin (see Conv2d.allowLargeWinogradTiles)
        Conv2d c1 = t.conv3x3(prefix + ".conv1", in).allowLargeWinogradTiles();
        int out = c1.out();
        GroupNorm n2 = t.groupNorm(prefix + ".norm2", out, 32, eps);
        Conv2d c2 = t.conv3x3(prefix + ".conv2", out).allowLargeWinogradTiles();
        Linear skip = shortcut(t, prefix + ".nin_shortcut", in, out);
        return new ResnetBlock(n1, c1, null, n2, c2, skip);
    }

    /** The 1x1 projection of the residual path, present exactly when the channel count changes. */
    private static Linear shortcut(UNetTensors t, String prefix, int in, int out) {
        if (!t.has(prefix + ".weight")) {
            if (in != out) {
                throw new UNetTensors.BadTensorException("missing tensor '" + prefix + ".weight' (the block changes "
                        + in + " to " + out + " channels)");
            }
            return null;
        }
        Linear s = t.linear(prefix, in);
        requireWidth(s.out(), out, prefix + ".weight");
        return s;
    }

    private static void requireWidth(int actual, int expected, String name) {
        if (actual != expected) {
            throw new UNetTensors.BadTensorException("tensor '" + name + "' has " + actual + " outputs, expected "
                    + expected);
        }
    }

    int inChannels() {
        return in;
    }

    int outChannels() {
        return out;
    }

    /**
     * x is left unchanged; embSilu is silu(time embedding) [batch][embDim], null for the VAE.
     */
    Feature forward(Feature x, float[] embSilu) {
        return forward(x, embSilu, null);
    }

    /**
     * {@link #forward(Feature, float[])} with norm1's output in an array of the scratch (null: a new one); the result
     * is the same to the bit.
     */
    Feature forward(Feature x, float[] embSilu, ActivationScratch scratch) {
        float[] h = conv1.forward(norm1.apply(x, true, scratch), x.batch(), x.h(), x.w());
        if (embProj != null) {
            Ops.addPerImageChannels(h, x.batch(), x.pixels(), out, embProj.forward(embSilu, x.batch()));
        }
        // h is this block's own: normalised in place, one activation-sized array less per block (the VAE decoder's
        // full-resolution blocks allocate 134 MB arrays at 512x512)
        h = conv2.forward(norm2.applyInPlace(x.with(h, out), true), x.batch(), x.h(), x.w());
        if (shortcut == null) {
            Ops.addInPlace(h, x.data());
        } else {
            shortcut.forward(x.data(), 0, in, x.rows(), h, 0, out, true); // accumulates into h: no temporary
        }
        return x.with(h, out);
    }
}
