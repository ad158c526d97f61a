package jdiffusion.model.upscale;

import jdiffusion.tensor.Conv2d;
import jdiffusion.tensor.Ops;
import jdiffusion.tensor.UpsampleConv;

/**
 * ESRGAN's RRDBNet (as spandrel runs it), on NHWC activations:
 * <pre>
 * fea = conv_first(x);  t = fea + conv_body(RRDB_nb-1(... RRDB_0(fea)))
 * per x2 step: t = lrelu(conv_up(nearest_x2(t)));  out = conv_last(lrelu(conv_hr(t)))
 * RRDB(x) = RDB3(RDB2(RDB1(x))) * 0.2 + x
 * RDB(x): x_j = lrelu(conv_j(cat(x, x_1 .. x_j-1))) for j = 1..4 (gc channels each); x5 = conv5(cat(x .. x4)) (nf);
 *         return x5 * 0.2 + x
 * </pre>
 * LeakyReLU slope 0.2, every conv 3x3 pad 1 with bias. Models whose first conv takes 4 (or 16) times the output
 * channels (Real-ESRGAN x2plus, x1 models) pixel-unshuffle the input by 2 (or 4) first, reflect-padding it to a
 * multiple of that factor, and crop the output to the input size times the model's scale.
 */
final class RrdbNet implements UpscaleModel.Net {
    private static final float SLOPE = 0.2f;
    private static final float RESIDUAL = 0.2f;

    private final Conv2d first;
    /** [block][rdb][conv]. */
    private final Conv2d[][][] blocks;
    private final Conv2d body;
    private final UpsampleConv[] ups;
    private final Conv2d hr;
    private final Conv2d last;
    private final int nf;
    private final int gc;
    private final int shuffle;
    private final int inChannels;
    private final int outChannels;

    private RrdbNet(Conv2d first, Conv2d[][][] blocks, Conv2d body, UpsampleConv[] ups, Conv2d hr, Conv2d last,
            int nf, int gc, int shuffle, int inChannels, int outChannels) {
        this.first = first;
        this.blocks = blocks;
        this.body = body;
        this.ups = ups;
        this.hr = hr;
        this.last = last;
        this.nf = nf;
        this.gc = gc;
        this.shuffle = shuffle;
        this.inChannels = inChannels;
        this.outChannels = outChannels;
    }

    static RrdbNet load(LayerReader r) {
        int[] fs = r.convShape("conv_first", r.shape("conv_first.weight")[1], 3);
        int netIn = fs[1];
        int nf = fs[0];
        Conv2d first = r.conv("conv_first", netIn);
        int nb = 0;
        while (r.has("body." + nb + ".rdb1.conv1.weight")) {
            nb++;
        }
        if (nb == 0) {
            throw new IllegalStateException("no RRDB blocks (body.0.rdb1.conv1)");
        }
        int gc = r.shape("body.0.rdb1.conv1.weight")[0];
        Conv2d[][][] blocks = new Conv2d[nb][3][5];
        for (int b = 0; b < nb; b++) {
            for (int k = 0; k < 3; k++) {
                for (int j = 0; j < 5; j++) {
                    String p = "body." + b + ".rdb" + (k + 1) + ".conv" + (j + 1);
                    int[] s = r.convShape(p, nf + j * gc, 3);
                    int want = j < 4 ? gc : nf;
                    if (s[0] != want) {
                        throw new IllegalStateException("tensor '" + p + ".weight' has " + s[0]
                                + " outputs, expected " + want);
                    }
                    blocks[b][k][j] = r.conv(p, nf + j * gc);
                }
            }
        }
        Conv2d body = squareConv(r, "conv_body", nf);
        int steps = 0;
        while (r.has("conv_up" + (steps + 1) + ".weight")) {
            steps++;
        }
        UpsampleConv[] ups = new UpsampleConv[steps];
        for (int u = 0; u < steps; u++) {
            int[] s = r.convShape("conv_up" + (u + 1), nf, 3);
            if (s[0] != nf) {
                throw new IllegalStateException("conv_up" + (u + 1) + " has " + s[0] + " outputs, expected " + nf);
            }
            ups[u] = r.upsampleConv("conv_up" + (u + 1), nf);
        }
        Conv2d hr = squareConv(r, "conv_hr", nf);
        r.convShape("conv_last", nf, 3);
        Conv2d last = r.conv("conv_last", nf);
        int out = last.out();
        int shuffle = 1;
        if (netIn == out * 4) {
            shuffle = 2;
        } else if (netIn == out * 16) {
            shuffle = 4;
        } else if (netIn != out) {
            throw new IllegalStateException("conv_first takes " + netIn + " channels and conv_last gives " + out
                    + ": neither equal nor a pixel-unshuffle (4x or 16x)");
        }
        if ((1 << steps) < shuffle) {
            throw new IllegalStateException(steps + " upsampling steps cannot undo a pixel-unshuffle by " + shuffle);
        }
        return new RrdbNet(first, blocks, body, ups, hr, last, nf, gc, shuffle, netIn / (shuffle * shuffle), out);
    }

    private static Conv2d squareConv(LayerReader r, String p, int nf) {
        int[] s = r.convShape(p, nf, 3);
        if (s[0] != nf) {
            throw new IllegalStateException("tensor '" + p + ".weight' has " + s[0] + " outputs, expected " + nf);
        }
        return r.conv(p, nf);
    }

    @Override
    public int scale() {
        return (1 << ups.length) / shuffle;
    }

    @Override
    public int inChannels() {
        return inChannels;
    }

    @Override
    public int outChannels() {
        return outChannels;
    }

    int features() {
        return nf;
    }

    int blocks() {
        return blocks.length;
    }

    int growth() {
        return gc;
    }

    int shuffle() {
        return shuffle;
    }

    /** spandrel: minimum 2, multiple of 4 for pixel-unshuffle models (whatever the factor); minimum raised to it. */
    @Override
    public UpscaleModel.SizeRequirements sizeRequirements() {
        return shuffle > 1 ? new UpscaleModel.SizeRequirements(4, 4) : new UpscaleModel.SizeRequirements(2, 1);
    }

    @Override
    public float[] forward(float[] x, int h, int w) {
        if (shuffle == 1) {
            return net(x, h, w);
        }
        int ph = (h + shuffle - 1) / shuffle * shuffle;
        int pw = (w + shuffle - 1) / shuffle * shuffle;
        float[] padded = UpscaleModel.padRightBottom(x, h, w, inChannels, ph, pw);
        float[] y = net(unshuffle(padded, ph, pw, inChannels, shuffle), ph / shuffle, pw / shuffle);
        int s = 1 << ups.length;
        return UpscaleModel.crop(y, ph / shuffle * s, pw / shuffle * s, outChannels, h * scale(), w * scale());
    }

    /** torch.pixel_unshuffle on NHWC: output channel c * f * f + dy * f + dx at (y, x) is input (f y + dy, f x + dx, c). */
    static float[] unshuffle(float[] x, int h, int w, int c, int f) {
        int oh = h / f;
        int ow = w / f;
        int oc = c * f * f;
        float[] y = new float[x.length];
        for (int oy = 0; oy < oh; oy++) {
            for (int ox = 0; ox < ow; ox++) {
                int o = (oy * ow + ox) * oc;
                for (int ch = 0; ch < c; ch++) {
                    for (int dy = 0; dy < f; dy++) {
                        for (int dx = 0; dx < f; dx++) {
                            y[o + ch * f * f + dy * f + dx] = x[((oy * f + dy) * w + ox * f + dx) * c + ch];
                        }
                    }
                }
            }
        }
        return y;
    }

    private float[] net(float[] x, int h, int w) {
        float[] fea = first.forward(x, 1, h, w);
        float[] t = fea;
        for (Conv2d[][] block : blocks) {
            t = rrdb(block, t, h, w);
        }
        t = body.forward(t, 1, h, w);
        Ops.addInPlace(t, fea);
        int ch = h;
        int cw = w;
        for (UpsampleConv up : ups) {
            t = up.forward(t, 1, ch, cw);
            ch *= 2;
            cw *= 2;
            leakyRelu(t);
        }
        t = hr.forward(t, 1, ch, cw);
        leakyRelu(t);
        float[] out = last.forward(t, 1, ch, cw);
        Conv2d.releaseScratch();
        return out;
    }

    private float[] rrdb(Conv2d[][] block, float[] x, int h, int w) {
        float[] t = x;
        for (Conv2d[] rdb : block) {
            t = rdb(rdb, t, h, w);
        }
        residual(t, x);
        return t;
    }

    private float[] rdb(Conv2d[] convs, float[] x, int h, int w) {
        int n = h * w;
        float[] cat = x;
        int c = nf;
        for (int j = 0; j < 4; j++) {
            float[] o = convs[j].forward(cat, 1, h, w);
            leakyRelu(o);
            cat = Ops.concatChannels(cat, c, o, gc, n);
            c += gc;
        }
        float[] x5 = convs[4].forward(cat, 1, h, w);
        residual(x5, x);
        return x5;
    }

    /** y = y * 0.2 + x, rounded as torch does (product, then sum). */
    private static void residual(float[] y, float[] x) {
        Activations.scaleAdd(y, RESIDUAL, x);
    }

    private static void leakyRelu(float[] x) {
        Activations.leakyRelu(x, SLOPE);
    }

    /** Multiply-adds of one forward on an h x w input (the upsampling convs counted at their output size). */
    @Override
    public long macs(int h, int w) {
        int sh = h;
        int sw = w;
        if (shuffle > 1) {
            sh = (h + shuffle - 1) / shuffle;
            sw = (w + shuffle - 1) / shuffle;
        }
        long px = (long) sh * sw;
        long m = px * 9L * nf * inChannels * shuffle * shuffle;
        long rdb = 0;
        for (int j = 0; j < 5; j++) {
            rdb += 9L * (nf + j * gc) * (j < 4 ? gc : nf);
        }
        m += px * rdb * 3 * blocks.length;
        m += px * 9L * nf * nf;
        for (int u = 0; u < ups.length; u++) {
            px *= 4;
            m += px * 9L * nf * nf;
        }
        m += px * 9L * nf * nf + px * 9L * nf * outChannels;
        return m;
    }
}
