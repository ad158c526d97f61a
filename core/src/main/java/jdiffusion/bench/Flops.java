package jdiffusion.bench;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.EnumMap;
import java.util.Map;
import jdiffusion.model.ModelConfig.TextEncoderSpec;
import jdiffusion.model.ModelConfig.UNetSpec;
import jdiffusion.model.ModelConfig.VaeSpec;

/**
 * Floating-point operations of one forward pass, counted from the architecture (the same walk the models make), by
 * kind. A multiply-add counts 2. GEMM counts every convolution and linear layer; attention counts the two
 * activation-by-activation products (Q K^T and P V); normalisation and elementwise are nominal per-element costs
 * (they matter for time, hardly for the FLOP total).
 */
public final class Flops {
    /** What an operation is, for FLOP and time breakdowns. */
    public enum Kind { GEMM, ATTENTION, NORM, ELEMENTWISE }

    /** Nominal FLOPs per element of a group/layer norm (mean, variance, normalise, scale, shift). */
    static final int NORM_PER_ELEMENT = 8;

    private final EnumMap<Kind, Double> byKind = new EnumMap<>(Kind.class);

    private Flops() {
        for (Kind k : Kind.values()) {
            byKind.put(k, 0.0);
        }
    }

    public double total() {
        return byKind.values().stream().mapToDouble(Double::doubleValue).sum();
    }

    public double of(Kind kind) {
        return byKind.get(kind);
    }

    public Map<Kind, Double> byKind() {
        return Map.copyOf(byKind);
    }

    private void add(Kind kind, double flops) {
        byKind.merge(kind, flops, Double::sum);
    }

    private void conv(double pixels, int in, int out, int k) {
        add(Kind.GEMM, 2.0 * pixels * in * out * k * k);
    }

    private void linear(double rows, int in, int out) {
        add(Kind.GEMM, 2.0 * rows * in * out);
    }

    private void attention(double batch, double nq, double nk, int width) {
        add(Kind.ATTENTION, 2.0 * 2.0 * batch * nq * nk * width);
        add(Kind.ELEMENTWISE, 4.0 * batch * nq * nk * Math.max(1, width / 64)); // softmax, nominal 64-wide heads
    }

    private void norm(double elements) {
        add(Kind.NORM, NORM_PER_ELEMENT * elements);
    }

    private void elementwise(double elements) {
        add(Kind.ELEMENTWISE, elements);
    }

    /** One MMDiT (SD3) evaluation of batch latents h x w with tokens context tokens. */
    public static Flops mmdit(jdiffusion.model.mmdit.MMDiTConfig c, int batch, int h, int w, int tokens) {
        Flops f = new Flops();
        int hid = c.hidden();
        double n = (double) batch * ((h + c.patch() - 1) / c.patch()) * ((w + c.patch() - 1) / c.patch());
        double ctx = (double) batch * tokens;
        f.linear(n, c.inChannels() * c.patch() * c.patch(), hid);
        f.linear(ctx, c.contextIn(), hid);
        for (int i = 0; i < c.depth(); i++) {
            boolean last = i == c.depth() - 1;
            boolean dual = c.dualAttentionBlocks().contains(i);
            f.linear(n, hid, 3 * hid);
            f.linear(ctx, hid, 3 * hid);
            f.attention(batch, n / batch + tokens, n / batch + tokens, hid);
            f.linear(n, hid, hid);
            f.linear(n, hid, c.mlpHidden());
            f.linear(n, c.mlpHidden(), hid);
            f.norm(2 * n * hid);
            f.elementwise(8 * n * hid + n * c.mlpHidden());
            if (!last) {
                f.linear(ctx, hid, hid);
                f.linear(ctx, hid, c.mlpHidden());
                f.linear(ctx, c.mlpHidden(), hid);
                f.norm(2 * ctx * hid);
                f.elementwise(8 * ctx * hid + ctx * c.mlpHidden());
            }
            if (dual) {
                f.linear(n, hid, 3 * hid);
                f.attention(batch, n / batch, n / batch, hid);
                f.linear(n, hid, hid);
            }
        }
        f.linear(n, hid, c.patch() * c.patch() * c.outChannels());
        return f;
    }

    /** One UNet evaluation of batch latents h x w with tokens context tokens. */
    public static Flops unet(UNetSpec u, int batch, int h, int w, int tokens) {
        Flops f = new Flops();
        double px = (double) batch * h * w;
        f.conv(px, u.inChannels(), u.modelChannels(), 3);
        Deque<Integer> skips = new ArrayDeque<>();
        int ch = u.modelChannels();
        skips.push(ch);
        int res = 0;
        for (int level = 0; level < u.levels(); level++) {
            int out = u.channels(level);
            for (int j = 0; j < u.numResBlocks(); j++, res++) {
                f.resBlock(px, ch, out, u.timeEmbedDim(), batch);
                ch = out;
                f.transformer(u, px, ch, u.transformerDepth().get(level), batch, tokens);
                skips.push(ch);
            }
            if (level < u.levels() - 1) {
                px /= 4;
                f.conv(px, ch, ch, 3);
                skips.push(ch);
            }
        }
        f.resBlock(px, ch, ch, u.timeEmbedDim(), batch);
        f.transformer(u, px, ch, u.transformerDepthMiddle(), batch, tokens);
        f.resBlock(px, ch, ch, u.timeEmbedDim(), batch);
        int k = 0;
        for (int level = u.levels() - 1; level >= 0; level--) {
            int out = u.channels(level);
            for (int j = 0; j <= u.numResBlocks(); j++, k++) {
                f.elementwise(px * (ch + skips.peek())); // the skip concatenation
                f.resBlock(px, ch + skips.pop(), out, u.timeEmbedDim(), batch);
                ch = out;
                f.transformer(u, px, ch, u.transformerDepthOutput().get(k), batch, tokens);
                if (level > 0 && j == u.numResBlocks()) {
                    px *= 4;
                    f.conv(px, ch, ch, 3);
                }
            }
        }
        f.norm(px * ch);
        f.conv(px, ch, u.outChannels(), 3);
        return f;
    }

    private void resBlock(double px, int in, int out, int embDim, int batch) {
        norm(px * in);
        elementwise(px * in); // SiLU
        conv(px, in, out, 3);
        linear(batch, embDim, out);
        elementwise(px * out); // + embedding
        norm(px * out);
        elementwise(px * out);
        conv(px, out, out, 3);
        if (in != out) {
            linear(px, in, out);
        }
        elementwise(px * out); // residual
    }

    private void transformer(UNetSpec u, double px, int ch, int depth, int batch, int tokens) {
        if (depth == 0) {
            return;
        }
        double perImage = px / batch;
        norm(px * ch);
        linear(px, ch, ch);
        for (int d = 0; d < depth; d++) {
            norm(3 * px * ch);
            linear(px, ch, 3 * ch); // q, k, v
            attention(batch, perImage, perImage, ch);
            linear(px, ch, ch);
            linear(px, ch, ch); // cross q
            linear((double) batch * tokens, u.contextDim(), 2 * ch); // cross k, v
            attention(batch, perImage, tokens, ch);
            linear(px, ch, ch);
            linear(px, ch, 8 * ch); // GEGLU projection: value and gate
            elementwise(4 * px * ch * 4); // gelu(gate) * value
            linear(px, 4 * ch, ch);
            elementwise(3 * px * ch); // residuals
        }
        linear(px, ch, ch);
        elementwise(px * ch);
    }

    /** One VAE decode of batch latents h x w (image 8x larger). */
    public static Flops vaeDecoder(VaeSpec v, int batch, int h, int w) {
        Flops f = new Flops();
        double px = (double) batch * h * w;
        int levels = v.channelMult().size();
        int ch = v.baseChannels() * v.channelMult().get(levels - 1);
        f.linear(px, v.latentChannels(), v.latentChannels());
        f.conv(px, v.latentChannels(), ch, 3);
        f.vaeMid(px, ch, batch);
        for (int level = levels - 1; level >= 0; level--) {
            int out = v.baseChannels() * v.channelMult().get(level);
            for (int j = 0; j < v.decoderResBlocks(); j++) {
                f.resBlock(px, ch, out, 0, batch);
                ch = out;
            }
            if (level > 0) {
                // nearest 2x upsampling fused with its 3x3 convolution (UpsampleConv): four 2x2 convolutions of the
                // low-resolution input, 4/9 of the 3x3 convolution over the upsampled image
                f.conv(4 * px, ch, ch, 2);
                px *= 4;
            }
        }
        f.norm(px * ch);
        f.conv(px, ch, v.imageChannels(), 3);
        return f;
    }

    /** One VAE encode of batch images height x width. */
    public static Flops vaeEncoder(VaeSpec v, int batch, int height, int width) {
        Flops f = new Flops();
        double px = (double) batch * height * width;
        int ch = v.baseChannels();
        f.conv(px, v.imageChannels(), ch, 3);
        int levels = v.channelMult().size();
        for (int level = 0; level < levels; level++) {
            int out = v.baseChannels() * v.channelMult().get(level);
            for (int j = 0; j < v.numResBlocks(); j++) {
                f.resBlock(px, ch, out, 0, batch);
                ch = out;
            }
            if (level < levels - 1) {
                px /= 4;
                f.conv(px, ch, ch, 3);
            }
        }
        f.vaeMid(px, ch, batch);
        f.norm(px * ch);
        f.conv(px, ch, 2 * v.latentChannels(), 3);
        f.linear(px, 2 * v.latentChannels(), 2 * v.latentChannels());
        return f;
    }

    private void vaeMid(double px, int ch, int batch) {
        resBlock(px, ch, ch, 0, batch);
        norm(px * ch);
        linear(px, ch, 4 * ch); // q, k, v, proj_out
        attention(batch, px / batch, px / batch, ch);
        resBlock(px, ch, ch, 0, batch);
    }

    /** One CLIP text transformer over batch rows of tokens (its projection included when it has one). */
    public static Flops textEncoder(TextEncoderSpec t, int batch, int tokens) {
        Flops f = new Flops();
        double rows = (double) batch * tokens;
        int wd = t.width();
        for (int l = 0; l < t.layers(); l++) {
            f.norm(2 * rows * wd);
            f.linear(rows, wd, 4 * wd); // q, k, v, out
            f.attention(batch, tokens, tokens, wd);
            f.linear(rows, wd, t.mlpWidth());
            f.elementwise(4 * rows * t.mlpWidth());
            f.linear(rows, t.mlpWidth(), wd);
            f.elementwise(2 * rows * wd);
        }
        f.norm(rows * wd);
        if (t.projectionDim() > 0) {
            f.linear(batch, wd, t.projectionDim());
        }
        return f;
    }

    /**
     * A network of convolutions counted by multiply-adds (an upscale model: {@code UpscaleModel.macs}), plus the
     * elementwise steps between them.
     */
    public static Flops convolutions(double macs, double elementwise) {
        Flops f = new Flops();
        f.add(Kind.GEMM, 2.0 * macs);
        f.elementwise(elementwise);
        return f;
    }

    /** Sum of several counts (the text encoders of SDXL). */
    public static Flops sum(Iterable<Flops> parts) {
        Flops f = new Flops();
        for (Flops p : parts) {
            p.byKind.forEach(f::add);
        }
        return f;
    }
}
