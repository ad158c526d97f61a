package jdiffusion.model;

import static jdiffusion.model.UNetLayers.conv;

import java.util.ArrayList;
import java.util.List;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.Weights;
import jdiffusion.model.UNetLayers.Feature;
import jdiffusion.tensor.Conv2d;
import jdiffusion.tensor.Linear;
import jdiffusion.tensor.Ops;

/**
 * ControlNet (Zhang et al. 2023; cldm.py / diffusers ControlNetModel): a trainable copy of the UNet's encoder half
 * (conv_in, time and label embeddings, input blocks, middle block) that also sees a hint image. The hint encoder turns
 * the image (RGB in [0, 1], 8x the latent size) into a map of the model channels that joins after conv_in; a 1x1
 * "zero conv" per skip connection and one after the middle block turn the encoder's states into the residuals the
 * UNet adds to its skips and middle-block output ({@link UNet#forwardWithControl}).
 *
 * <p>Built from the same blocks as the UNet ({@link ResnetBlock}, {@link SpatialTransformer}); weights are packed
 * once at {@link #load}, 16-bit weights kept in 16 bits.
 */
public final class ControlNet {
    private final ControlNetConfig config;
    private final List<Conv2d> hintConvs = new ArrayList<>();
    private final Conv2d convIn;
    private final UNetLayers.TimeEmbed timeEmbed;
    private final List<List<Layer>> inputBlocks = new ArrayList<>();
    private final List<Layer> middleBlock = new ArrayList<>();
    private final List<Linear> zeroConvs = new ArrayList<>();
    private final Linear middleOut;

    private sealed interface Layer permits Res, Attn, Down {
    }

    private record Res(ResnetBlock block) implements Layer {
    }

    private record Attn(SpatialTransformer transformer) implements Layer {
    }

    private record Down(Conv2d conv) implements Layer {
    }

    /** The hint after the hint encoder: [hintBatch][h][w][modelChannels] at latent size, NHWC. */
    public record Hint(float[] data, int batch, int h, int w, int c) {
    }

    public static ControlNet load(Weights weights) throws ModelFormatException {
        return load(weights, null);
    }

    /** headsRule null: the default for the projection kind (see {@link UNetConfig.HeadsRule#defaultFor}). */
    public static ControlNet load(Weights weights, UNetConfig.HeadsRule headsRule) throws ModelFormatException {
        ControlNetConfig config = ControlNetConfig.infer(weights, headsRule);
        try {
            return new ControlNet(config, new UNetTensors(weights));
        } catch (IllegalStateException | IllegalArgumentException e) {
            throw new ModelFormatException("ControlNet: " + e.getMessage(), e);
        }
    }

    private ControlNet(ControlNetConfig c, UNetTensors t) {
        this.config = c;
        int[] widths = c.hintWidths();
        int in = c.hintChannels();
        for (int i = 0; i < widths.length; i++) {
            // conv_in, then blocks in pairs (3x3, then 3x3 stride 2 down-sampling), then conv_out; all padded by 1
            int block = i - 1;
            int stride = i > 0 && i < widths.length - 1 && block % 2 == 1 ? 2 : 1;
            Conv2d conv = t.conv("input_hint_block." + 2 * i, in, stride, 1, 1, 1, 1);
            hintConvs.add(conv);
            in = conv.out();
        }
        int ted = c.timeEmbedDim();
        convIn = t.conv3x3("input_blocks.0.0", c.inChannels());
        timeEmbed = UNetLayers.TimeEmbed.load(t, c.modelChannels(), ted, c.admInChannels());
        int ch = convIn.out();
        zeroConvs.add(zeroConv(t, 0, ch));
        int block = 1;
        int res = 0;
        for (int level = 0; level < c.levels(); level++) {
            for (int j = 0; j < c.numResBlocks(); j++, block++, res++) {
                String p = "input_blocks." + block;
                List<Layer> layers = new ArrayList<>();
                ResnetBlock rb = ResnetBlock.unet(t, p + ".0", ch, ted);
                layers.add(new Res(rb));
                ch = rb.outChannels();
                if (c.inputDepth()[res] > 0) {
                    layers.add(transformer(t, c, p + ".1", ch, c.inputDepth()[res]));
                }
                inputBlocks.add(layers);
                zeroConvs.add(zeroConv(t, block, ch));
            }
            if (level < c.levels() - 1) {
                inputBlocks.add(List.of(new Down(t.conv("input_blocks." + block + ".0.op", ch, 2, 1, 1, 1, 1))));
                zeroConvs.add(zeroConv(t, block, ch));
                block++;
            }
        }
        middleBlock.add(new Res(ResnetBlock.unet(t, "middle_block.0", ch, ted)));
        int next = 1;
        if (c.middleDepth() > 0) {
            middleBlock.add(transformer(t, c, "middle_block.1", ch, c.middleDepth()));
            next = 2;
        }
        middleBlock.add(new Res(ResnetBlock.unet(t, "middle_block." + next, ch, ted)));
        middleOut = t.linear("middle_block_out.0", ch);
        if (middleOut.out() != ch) {
            throw new UNetTensors.BadTensorException("tensor 'middle_block_out.0.weight' has " + middleOut.out()
                    + " outputs, expected " + ch);
        }
    }

    private static Linear zeroConv(UNetTensors t, int i, int ch) {
        Linear z = t.linear("zero_convs." + i + ".0", ch);
        if (z.out() != ch) {
            throw new UNetTensors.BadTensorException("tensor 'zero_convs." + i + ".0.weight' has " + z.out()
                    + " outputs, expected " + ch);
        }
        return z;
    }

    private static Attn transformer(UNetTensors t, ControlNetConfig c, String prefix, int ch, int depth) {
        return new Attn(SpatialTransformer.load(t, prefix, ch, depth, c.contextDim(), c.headsRule()));
    }

    public ControlNetConfig config() {
        return config;
    }

    /**
     * The hint encoder: runs once per hint (it does not depend on the latent, the timestep or the prompt).
     *
     * @param image NCHW [batch][hintChannels][height][width], RGB in [0, 1] (not [-1, 1])
     */
    public Hint encodeHint(float[] image, int batch, int height, int width) {
        int c = config.hintChannels();
        if (batch <= 0 || height <= 0 || width <= 0 || image.length != (long) batch * c * height * width) {
            throw new IllegalArgumentException("ControlNet: the hint holds " + image.length + " values, expected "
                    + batch + "x" + c + "x" + height + "x" + width);
        }
        float[] x = Ops.nchwToNhwc(image, batch, c, height, width);
        int h = height;
        int w = width;
        for (int i = 0; i < hintConvs.size(); i++) {
            Conv2d conv = hintConvs.get(i);
            x = conv.forward(x, batch, h, w);
            h = conv.outH(h);
            w = conv.outW(w);
            if (i < hintConvs.size() - 1) {
                Ops.siluInPlace(x);
            }
        }
        return new Hint(x, batch, h, w, config.modelChannels());
    }

    /**
     * One ControlNet evaluation on exactly the UNet's inputs.
     *
     * @param x         scaled latent NCHW [batch][inChannels][h][w]
     * @param timesteps one per row
     * @param context   [batch][tokens][contextDim]
     * @param y         SDXL adm vector [batch][admInChannels], null otherwise
     * @param hint      {@link #encodeHint} of a hint 8x the latent size; one row serves every row of the batch,
     *                  otherwise row r uses hint row r % hint.batch()
     * @param strength  multiplies every residual
     */
    public ControlResiduals forward(float[] x, int batch, int h, int w, float[] timesteps, float[] context, int tokens,
                                    float[] y, Hint hint, float strength) {
        checkInputs(x, batch, h, w, timesteps, context, tokens, y, hint);
        float[] emb = timeEmbed.forward(timesteps, y, batch);
        Feature f = new Feature(Ops.nchwToNhwc(x, batch, config.inChannels(), h, w), batch, h, w, config.inChannels());
        f = conv(convIn, f);
        addHint(f.data(), hint, batch);
        List<ControlResiduals.FeatureMap> down = new ArrayList<>();
        down.add(residual(zeroConvs.get(0), f, strength));
        for (int i = 0; i < inputBlocks.size(); i++) {
            for (Layer layer : inputBlocks.get(i)) {
                f = apply(layer, f, emb, context, tokens);
            }
            down.add(residual(zeroConvs.get(i + 1), f, strength));
        }
        for (Layer layer : middleBlock) {
            f = apply(layer, f, emb, context, tokens);
        }
        return new ControlResiduals(down, residual(middleOut, f, strength));
    }

    private static ControlResiduals.FeatureMap residual(Linear zeroConv, Feature f, float strength) {
        float[] r = zeroConv.forward(f.data(), f.rows());
        if (strength != 1f) {
            for (int i = 0; i < r.length; i++) {
                r[i] *= strength;
            }
        }
        return new ControlResiduals.FeatureMap(r, f.batch(), f.h(), f.w(), zeroConv.out());
    }

    /** conv_in(x) + hint, the hint broadcast over the rows. */
    private static void addHint(float[] f, Hint hint, int batch) {
        int per = f.length / batch;
        for (int b = 0; b < batch; b++) {
            int from = (b % hint.batch()) * per;
            int to = b * per;
            for (int i = 0; i < per; i++) {
                f[to + i] += hint.data()[from + i];
            }
        }
    }

    private static Feature apply(Layer layer, Feature x, float[] emb, float[] context, int tokens) {
        return switch (layer) {
            case Res r -> r.block().forward(x, emb);
            case Attn a -> a.transformer().forward(x, context, tokens);
            case Down d -> conv(d.conv(), x);
        };
    }


    private void checkInputs(float[] x, int batch, int h, int w, float[] timesteps, float[] context, int tokens,
                             float[] y, Hint hint) {
        ControlNetConfig c = config;
        require(batch > 0 && h > 0 && w > 0, "batch, height and width must be positive, got " + batch + ", " + h
                + ", " + w);
        require(x.length == (long) batch * c.inChannels() * h * w, "latent holds " + x.length + " values, expected "
                + batch + "x" + c.inChannels() + "x" + h + "x" + w);
        require(timesteps.length == batch, "got " + timesteps.length + " timesteps for a batch of " + batch);
        require(context.length == (long) batch * tokens * c.contextDim(), "context holds " + context.length
                + " values, expected " + batch + "x" + tokens + "x" + c.contextDim()
                + " (a ControlNet for another model family?)");
        if (c.admInChannels() > 0) {
            require(y != null && y.length == batch * c.admInChannels(), "this ControlNet needs an adm vector y of "
                    + batch + "x" + c.admInChannels() + " values (an SDXL ControlNet on a non-SDXL model?)");
        } else {
            require(y == null, "this ControlNet takes no adm vector y (an SD1/SD2 ControlNet on an SDXL model?)");
        }
        require(hint != null && hint.h() == h && hint.w() == w, "the hint encodes to " + (hint == null ? "nothing"
                : hint.h() + "x" + hint.w()) + ", the latent is " + h + "x" + w + " (the hint must be "
                + c.hintDownsampling() + "x the latent size)");
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException("ControlNet: " + message);
        }
    }
}
