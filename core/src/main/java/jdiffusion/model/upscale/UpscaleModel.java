package jdiffusion.model.upscale;

import java.nio.file.Path;
import java.util.List;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import jdiffusion.tensor.Ops;

/**
 * An image upscale model (ESRGAN family or SRVGGNetCompact) with spandrel's calling convention: RGB in [0, 1], no
 * normalisation; the input padded on the right and bottom to the model's size requirements (reflect, then
 * replicate what reflection cannot cover), the output clamped to [0, 1] and cropped to the input size times the
 * scale. {@link #upscaleTiled} is ComfyUI's {@code tiled_scale} around that call.
 *
 * <pre>{@code
 * UpscaleModel m = UpscaleModel.open(Path.of("4x-UltraSharp.safetensors"));
 * float[] big = m.upscaleTiled(image, 1, h, w, 512, 512, 32);   // NCHW [1][3][h*4][w*4]
 * }</pre>
 */
public final class UpscaleModel {
    /** The network proper: NHWC in (h x w x inChannels), NHWC out (h*scale x w*scale x outChannels), unclamped. */
    interface Net {
        float[] forward(float[] x, int h, int w);

        int scale();

        int inChannels();

        int outChannels();

        SizeRequirements sizeRequirements();

        long macs(int h, int w);
    }

    /** spandrel's SizeRequirements: the padded input is at least minimum and a multiple of multipleOf per side. */
    public record SizeRequirements(int minimum, int multipleOf) {
        int pad(int size) {
            int s = Math.max(size, minimum);
            return (s + multipleOf - 1) / multipleOf * multipleOf;
        }
    }

    private final Net net;
    private final String architecture;
    private final List<String> tags;

    private UpscaleModel(Net net, String architecture, List<String> tags) {
        this.net = net;
        this.architecture = architecture;
        this.tags = tags;
    }

    /** Reads a model from its tensors; the architecture, scale and sizes come from the names and shapes. */
    public static UpscaleModel load(Weights weights) throws ModelFormatException {
        try {
            UpscaleLayouts.Layout layout = UpscaleLayouts.detect(weights.names());
            LayerReader r = new LayerReader(weights, layout.names());
            UpscaleModel m;
            if (layout.kind().rrdb()) {
                RrdbNet n = RrdbNet.load(r);
                List<String> tags = n.shuffle() > 1
                        ? List.of(n.features() + "nf", n.blocks() + "nb", "unshuffle")
                        : List.of(n.features() + "nf", n.blocks() + "nb");
                m = new UpscaleModel(n, "ESRGAN", tags);
            } else {
                CompactNet n = CompactNet.load(r);
                m = new UpscaleModel(n, "Compact", List.of(n.features() + "nf", n.convs() + "nc"));
            }
            r.requireAllUsed(layout.kind().description);
            if (m.scale() < 1) {
                throw new IllegalStateException("scale " + m.scale() + " is not a positive integer");
            }
            return m;
        } catch (IllegalStateException | IllegalArgumentException e) {
            throw new ModelFormatException("upscale model: " + e.getMessage(), e);
        }
    }

    /**
     * Opens a model file (safetensors, or a PyTorch .pth/.pt/.ckpt read by the safe pickle reader, whose wrapper
     * dict such as {@code params_ema} is chosen as spandrel does), reads it and closes it: the model keeps its own
     * packed copy of the weights.
     */
    public static UpscaleModel open(Path file) throws ModelFormatException {
        try (SafeTensors st = SafeTensors.open(file)) {
            try {
                return load(Weights.prefixed(st, ""));
            } catch (ModelFormatException e) {
                throw new ModelFormatException(file + ": " + e.getMessage(), e);
            }
        }
    }

    /** "ESRGAN" or "Compact" (spandrel's architecture ids). */
    public String architecture() {
        return architecture;
    }

    /** spandrel's tags ("64nf", "23nb", ...). */
    public List<String> tags() {
        return tags;
    }

    public int scale() {
        return net.scale();
    }

    public int inChannels() {
        return net.inChannels();
    }

    public int outChannels() {
        return net.outChannels();
    }

    public SizeRequirements sizeRequirements() {
        return net.sizeRequirements();
    }

    /** Multiply-adds of one call on an h x w image (after padding), for throughput figures. */
    public long macs(int h, int w) {
        SizeRequirements q = net.sizeRequirements();
        return net.macs(q.pad(h), q.pad(w));
    }

    /**
     * spandrel's call on one image NCHW [inChannels][h][w]: pad, run, clamp to [0, 1] (unless clamp is false),
     * crop; returns [outChannels][h * scale][w * scale].
     */
    public float[] upscale(float[] image, int h, int w, boolean clamp) {
        int c = net.inChannels();
        if (h < 1 || w < 1 || image.length != (long) c * h * w) {
            throw new IllegalArgumentException("upscale input holds " + image.length + " values, expected " + c + "x"
                    + h + "x" + w);
        }
        int s = net.scale();
        if ((long) net.outChannels() * h * s * w * s > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("a " + w + "x" + h + " image upscaled " + s + "x is too large for one"
                    + " array; use tiles");
        }
        SizeRequirements q = net.sizeRequirements();
        int ph = q.pad(h);
        int pw = q.pad(w);
        float[] x = Ops.nchwToNhwc(image, 1, c, h, w);
        if (ph != h || pw != w) {
            x = padRightBottom(x, h, w, c, ph, pw);
        }
        float[] y = net.forward(x, ph, pw);
        int oc = net.outChannels();
        if (ph != h || pw != w) {
            y = crop(y, ph * s, pw * s, oc, h * s, w * s);
        }
        if (clamp) {
            for (int i = 0; i < y.length; i++) {
                y[i] = Math.min(1f, Math.max(0f, y[i]));
            }
        }
        return Ops.nhwcToNchw(y, 1, oc, h * s, w * s);
    }

    /**
     * ComfyUI's {@code tiled_scale} with this model's call (clamped) as the function, over a batch NCHW
     * [batch][inChannels][h][w]: one call when the image fits a tile; otherwise tiles of tileY x tileX at positions
     * range(0, size - overlap, tile - overlap) (clamped to [0, size - overlap]), each output weighted by a mask
     * feathered over round(overlap * scale) pixels at both ends of each axis, summed and divided by the summed masks.
     */
    public float[] upscaleTiled(float[] image, int batch, int h, int w, int tileX, int tileY, int overlap) {
        if (tileX < 1 || tileY < 1 || overlap < 0 || overlap >= Math.min(tileX, tileY)) {
            throw new IllegalArgumentException("tiles " + tileX + "x" + tileY + " with overlap " + overlap
                    + ": the overlap must be smaller than the tile");
        }
        int c = net.inChannels();
        int oc = net.outChannels();
        int s = net.scale();
        if (image.length != (long) batch * c * h * w) {
            throw new IllegalArgumentException("upscale input holds " + image.length + " values, expected " + batch
                    + "x" + c + "x" + h + "x" + w);
        }
        int oh = h * s;
        int ow = w * s;
        if ((long) batch * oc * oh * ow > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("a " + w + "x" + h + " image upscaled " + s + "x is too large for one"
                    + " array");
        }
        float[] out = new float[batch * oc * oh * ow];
        for (int b = 0; b < batch; b++) {
            float[] one = java.util.Arrays.copyOfRange(image, b * c * h * w, (b + 1) * c * h * w);
            float[] r;
            if (h <= tileY && w <= tileX) {
                r = upscale(one, h, w, true);
            } else {
                r = tiled(one, h, w, tileX, tileY, overlap);
            }
            System.arraycopy(r, 0, out, b * oc * oh * ow, r.length);
        }
        return out;
    }

    private float[] tiled(float[] img, int h, int w, int tileX, int tileY, int overlap) {
        int c = net.inChannels();
        int oc = net.outChannels();
        int s = net.scale();
        int oh = h * s;
        int ow = w * s;
        float[] acc = new float[oc * oh * ow];
        float[] div = new float[oh * ow];
        int feather = overlap * s;
        for (int ty : positions(h, tileY, overlap)) {
            for (int tx : positions(w, tileX, overlap)) {
                int py = Math.max(0, Math.min(h - overlap, ty));
                int px = Math.max(0, Math.min(w - overlap, tx));
                int lh = Math.min(tileY, h - py);
                int lw = Math.min(tileX, w - px);
                float[] piece = new float[c * lh * lw];
                for (int ch = 0; ch < c; ch++) {
                    for (int y = 0; y < lh; y++) {
                        System.arraycopy(img, (ch * h + py + y) * w + px, piece, (ch * lh + y) * lw, lw);
                    }
                }
                float[] up = upscale(piece, lh, lw, true);
                int uh = lh * s;
                int uw = lw * s;
                float[] mx = featherMask(uw, feather);
                float[] my = featherMask(uh, feather);
                for (int y = 0; y < uh; y++) {
                    for (int x = 0; x < uw; x++) {
                        float m = my[y] * mx[x];
                        int o = (py * s + y) * ow + px * s + x;
                        div[o] += m;
                        for (int ch = 0; ch < oc; ch++) {
                            acc[ch * oh * ow + o] += up[(ch * uh + y) * uw + x] * m;
                        }
                    }
                }
            }
        }
        for (int ch = 0; ch < oc; ch++) {
            for (int i = 0; i < oh * ow; i++) {
                acc[ch * oh * ow + i] /= div[i];
            }
        }
        return acc;
    }

    static java.util.List<Integer> positions(int size, int tile, int overlap) {
        if (size <= tile) {
            return List.of(0);
        }
        java.util.List<Integer> p = new java.util.ArrayList<>();
        for (int i = 0; i < size - overlap; i += tile - overlap) {
            p.add(i);
        }
        return p;
    }

    /** tiled_scale's mask along one axis: (t + 1) / f on the first and last f entries (multiplied where both). */
    static float[] featherMask(int n, int feather) {
        float[] m = new float[n];
        java.util.Arrays.fill(m, 1f);
        if (feather >= n) {
            return m;
        }
        for (int t = 0; t < feather; t++) {
            float a = (float) ((t + 1) / (double) feather);
            m[t] *= a;
            m[n - 1 - t] *= a;
        }
        return m;
    }

    /** Pads NHWC [h][w][c] to [ph][pw][c] on the right and bottom: reflection (without the edge), then replication. */
    static float[] padRightBottom(float[] x, int h, int w, int c, int ph, int pw) {
        float[] y = new float[ph * pw * c];
        for (int oy = 0; oy < ph; oy++) {
            int iy = source(oy, h);
            for (int ox = 0; ox < pw; ox++) {
                System.arraycopy(x, (iy * w + source(ox, w)) * c, y, (oy * pw + ox) * c, c);
            }
        }
        return y;
    }

    /** The source index of padded position i: itself, else reflected (as far as reflection reaches), else the last reflected. */
    private static int source(int i, int n) {
        if (i < n) {
            return i;
        }
        int reflect = Math.min(i - n + 1, n - 1);
        return n - 1 - reflect;
    }

    /** The top-left [oh][ow][c] of an NHWC [h][w][c] image. */
    static float[] crop(float[] x, int h, int w, int c, int oh, int ow) {
        if (oh == h && ow == w) {
            return x;
        }
        float[] y = new float[oh * ow * c];
        for (int r = 0; r < oh; r++) {
            System.arraycopy(x, r * w * c, y, r * ow * c, ow * c);
        }
        return y;
    }
}
