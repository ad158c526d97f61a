package jdiffusion.model.upscale;

import jdiffusion.tensor.Conv2d;

/**
 * SRVGGNetCompact (Real-ESRGAN's realesr-general / animevideo models): {@code body.0} conv 3x3 (in -> nf), then
 * PReLU (per-channel slope {@code body.1.weight}), num_conv more [conv nf -> nf, PReLU] pairs, and a last conv
 * (nf -> out * s * s) whose output is pixel-shuffled by s; the nearest-upsampled input is added (the net learns the
 * residual). num_conv = (highest body index - 2) / 2 and s = sqrt(last bias length / channels), as spandrel reads
 * them.
 */
final class CompactNet implements UpscaleModel.Net {
    private final Conv2d[] convs;
    private final float[][] slopes;
    private final Conv2d last;
    private final int scale;
    private final int channels;
    private final int nf;

    private CompactNet(Conv2d[] convs, float[][] slopes, Conv2d last, int scale, int channels, int nf) {
        this.convs = convs;
        this.slopes = slopes;
        this.last = last;
        this.scale = scale;
        this.channels = channels;
        this.nf = nf;
    }

    static CompactNet load(LayerReader r) {
        int highest = 0;
        while (r.has("body." + (highest + 1) + ".weight")) {
            highest++;
        }
        if (highest < 2 || highest % 2 != 0) {
            throw new IllegalStateException("SRVGGNetCompact: the last layer is body." + highest
                    + ", expected an even index >= 2 (convs at even, PReLUs at odd indices)");
        }
        int numConv = (highest - 2) / 2;
        int[] s0 = r.convShape("body.0", r.shape("body.0.weight")[1], 3);
        int in = s0[1];
        int nf = s0[0];
        Conv2d[] convs = new Conv2d[numConv + 1];
        float[][] slopes = new float[numConv + 1][];
        for (int i = 0; i <= numConv; i++) {
            String p = "body." + 2 * i;
            int cin = i == 0 ? in : nf;
            int[] s = r.convShape(p, cin, 3);
            if (s[0] != nf) {
                throw new IllegalStateException("tensor '" + p + ".weight' has " + s[0] + " outputs, expected " + nf);
            }
            convs[i] = r.conv(p, cin);
            String act = "body." + (2 * i + 1) + ".weight";
            int[] as = r.shape(act);
            if (as.length != 1 || (as[0] != nf && as[0] != 1)) {
                throw new IllegalStateException("tensor '" + act + "' has shape " + java.util.Arrays.toString(as)
                        + ", expected a PReLU weight [" + nf + "]");
            }
            slopes[i] = r.get(act, as);
        }
        String lp = "body." + highest;
        int[] ls = r.convShape(lp, nf, 3);
        int per = ls[0] / in;
        int scale = (int) Math.round(Math.sqrt(per));
        if (ls[0] % in != 0 || scale * scale != per) {
            throw new IllegalStateException("tensor '" + lp + ".weight' has " + ls[0] + " outputs, expected "
                    + in + " x scale^2");
        }
        return new CompactNet(convs, slopes, r.conv(lp, nf), scale, in, nf);
    }

    @Override
    public int scale() {
        return scale;
    }

    @Override
    public int inChannels() {
        return channels;
    }

    @Override
    public int outChannels() {
        return channels;
    }

    int features() {
        return nf;
    }

    int convs() {
        return convs.length - 1;
    }

    @Override
    public UpscaleModel.SizeRequirements sizeRequirements() {
        return new UpscaleModel.SizeRequirements(0, 1);
    }

    @Override
    public float[] forward(float[] x, int h, int w) {
        float[] t = x;
        for (int i = 0; i < convs.length; i++) {
            t = convs[i].forward(t, 1, h, w);
            Activations.prelu(t, nf, slopes[i]);
        }
        float[] o = last.forward(t, 1, h, w);
        Conv2d.releaseScratch();
        int s = scale;
        int c = channels;
        int ow = w * s;
        float[] y = new float[h * s * ow * c];
        for (int iy = 0; iy < h; iy++) {
            for (int ix = 0; ix < w; ix++) {
                int src = (iy * w + ix) * c * s * s;
                int base = (iy * w + ix) * c;
                for (int dy = 0; dy < s; dy++) {
                    for (int dx = 0; dx < s; dx++) {
                        int dst = ((iy * s + dy) * ow + ix * s + dx) * c;
                        for (int ch = 0; ch < c; ch++) {
                            y[dst + ch] = o[src + ch * s * s + dy * s + dx] + x[base + ch];
                        }
                    }
                }
            }
        }
        return y;
    }

    @Override
    public long macs(int h, int w) {
        long px = (long) h * w;
        return px * 9L * (channels * nf + (long) (convs.length - 1) * nf * nf + (long) nf * channels * scale * scale);
    }
}
