package jdiffusion.model;

import static jdiffusion.model.UNetLayers.conv;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.Weights;
import jdiffusion.model.UNetLayers.Feature;
import jdiffusion.model.UNetLayers.GroupNorm;
import jdiffusion.tensor.Conv2d;
import jdiffusion.tensor.Ops;

/**
 * The latent diffusion UNet of SD1.x, SD2.x and SDXL, one implementation driven by a {@link UNetConfig} read from
 * the weights (original LDM/SGM names, without the {@code model.diffusion_model.} prefix). Structured like the
 * original: input blocks (res blocks, spatial transformers, down-samplers) whose outputs are kept as skips, a
 * middle block, and output blocks that concatenate a skip before their res block.
 *
 * <p>Activations are NHWC inside; {@link #forward} takes and returns NCHW like the reference. All weights are read
 * and packed once, at {@link #load}.
 */
public final class UNet {
    private final UNetConfig config;
    private final Conv2d convIn;
    private final UNetLayers.TimeEmbed timeEmbed;
    private final List<List<Layer>> inputBlocks = new ArrayList<>();
    private final List<Layer> middleBlock = new ArrayList<>();
    private final List<List<Layer>> outputBlocks = new ArrayList<>();
    private final GroupNorm outNorm;
    private final Conv2d outConv;

    /** One sub-module of a block, as in the original TimestepEmbedSequential. */
    private sealed interface Layer permits Res, Attn, Down, Up {
    }

    private record Res(ResnetBlock block) implements Layer {
    }

    private record Attn(SpatialTransformer transformer) implements Layer {
    }

    private record Down(Conv2d conv) implements Layer {
    }

    private record Up(Conv2d conv) implements Layer {
    }

    /** What every layer of one forward pass may need besides its input. */
    private record Conditioning(float[] embSilu, float[] context, int tokens) {
    }

    /** Reads a UNet with the heads rule that goes with its projection kind (see {@link UNetConfig.HeadsRule}). */
    public static UNet load(Weights weights) throws ModelFormatException {
        return load(weights, null);
    }

    /** Reads a UNet; headsRule null means {@link UNetConfig.HeadsRule#defaultFor}. */
    public static UNet load(Weights weights, UNetConfig.HeadsRule headsRule) throws ModelFormatException {
        UNetConfig config = UNetConfig.infer(weights, headsRule);
        try {
            return new UNet(config, new UNetTensors(weights));
        } catch (IllegalStateException | IllegalArgumentException e) {
            throw new ModelFormatException("UNet: " + e.getMessage(), e);
        }
    }

    private UNet(UNetConfig c, UNetTensors t) {
        this.config = c;
        int ted = c.timeEmbedDim();
        convIn = t.conv3x3("input_blocks.0.0", c.inChannels());
        timeEmbed = UNetLayers.TimeEmbed.load(t, c.timestepSinusoidDim(), ted, c.admInChannels());
        Deque<Integer> skipWidths = new ArrayDeque<>();
        int ch = convIn.out();
        skipWidths.push(ch);
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
                skipWidths.push(ch);
            }
            if (level < c.levels() - 1) {
                inputBlocks.add(List.of(new Down(t.conv("input_blocks." + block + ".0.op", ch, 2, 1, 1, 1, 1))));
                skipWidths.push(ch);
                block++;
            }
        }
        ResnetBlock mid0 = ResnetBlock.unet(t, "middle_block.0", ch, ted);
        middleBlock.add(new Res(mid0));
        int next = 1;
        if (c.middleDepth() > 0) {
            middleBlock.add(transformer(t, c, "middle_block.1", ch, c.middleDepth()));
            next = 2;
        }
        middleBlock.add(new Res(ResnetBlock.unet(t, "middle_block." + next, ch, ted)));
        int k = 0;
        for (int level = c.levels() - 1; level >= 0; level--) {
            for (int j = 0; j <= c.numResBlocks(); j++, k++) {
                String p = "output_blocks." + k;
                List<Layer> layers = new ArrayList<>();
                ResnetBlock rb = ResnetBlock.unet(t, p + ".0", ch + skipWidths.pop(), ted);
                layers.add(new Res(rb));
                ch = rb.outChannels();
                int sub = 1;
                if (c.outputDepth()[k] > 0) {
                    layers.add(transformer(t, c, p + ".1", ch, c.outputDepth()[k]));
                    sub++;
                }
                if (level > 0 && j == c.numResBlocks()) {
                    layers.add(new Up(t.conv3x3(p + "." + sub + ".conv", ch)));
                }
                outputBlocks.add(layers);
            }
        }
        outNorm = t.groupNorm("out.0", ch, 32, 1e-5f);
        outConv = t.conv3x3("out.2", ch);
    }

    private static Attn transformer(UNetTensors t, UNetConfig c, String prefix, int ch, int depth) {
        return new Attn(SpatialTransformer.load(t, prefix, ch, depth, c.contextDim(), c.headsRule()));
    }

    public UNetConfig config() {
        return config;
    }

    /**
     * One UNet evaluation.
     *
     * @param x         latent input NCHW [batch][inChannels][h][w] (already scaled by the denoiser's c_in)
     * @param timesteps one (possibly fractional) timestep per batch row
     * @param context   cross-attention context [batch][tokens][contextDim]
     * @param y         SDXL adm vector [batch][admInChannels] (see {@link #sdxlAdm}), null for SD1/SD2
     * @return the raw model output NCHW [batch][outChannels][h][w] (eps, v or x0, as the model was trained)
     */
    public float[] forward(float[] x, int batch, int h, int w, float[] timesteps, float[] context, int tokens,
                           float[] y) {
        return forward(x, batch, h, w, timesteps, context, tokens, y, null);
    }

    /** Receives the wall time of every layer of a forward pass (for benchmarks; see issue 6). */
    @FunctionalInterface
    public interface LayerTimer {
        /**
         * @param block the block, e.g. "input_blocks.4" or "middle_block"
         * @param kind  "res", "transformer", "downsample", "upsample", "embedding", "conv_in" or "out"
         */
        void record(String block, String kind, long nanos);
    }

    /** {@link #forward(float[], int, int, int, float[], float[], int, float[])} reporting per-layer times to timer. */
    public float[] forward(float[] x, int batch, int h, int w, float[] timesteps, float[] context, int tokens,
                           float[] y, LayerTimer timer) {
        return forward(x, batch, h, w, timesteps, context, tokens, y, timer, null);
    }

    /**
     * One UNet evaluation steered by ControlNet residuals (null: none): residual i is added to skip i (what output
     * block 11 - i concatenates; the encoder's own path is unchanged) and the middle residual to the middle block's
     * output.
     */
    public float[] forwardWithControl(float[] x, int batch, int h, int w, float[] timesteps, float[] context,
                                      int tokens, float[] y, ControlResiduals control) {
        return forward(x, batch, h, w, timesteps, context, tokens, y, null, control);
    }

    private float[] forward(float[] x, int batch, int h, int w, float[] timesteps, float[] context, int tokens,
                            float[] y, LayerTimer timer, ControlResiduals control) {
        checkInputs(x, batch, h, w, timesteps, context, tokens, y);
        if (control != null && control.down().size() != inputBlocks.size() + 1) {
            throw new IllegalArgumentException("UNet: got " + control.down().size() + " ControlNet skip residuals, this"
                    + " UNet has " + (inputBlocks.size() + 1) + " skips (a ControlNet for another model?)");
        }
        LayerTimer clock = timer == null ? (b, k, n) -> { } : timer;
        long t0 = System.nanoTime();
        Conditioning cond = new Conditioning(timeEmbed.forward(timesteps, y, batch), context, tokens);
        t0 = lap(clock, "time_embed", "embedding", t0);
        Feature f = new Feature(Ops.nchwToNhwc(x, batch, config.inChannels(), h, w), batch, h, w, config.inChannels());
        f = conv(convIn, f);
        t0 = lap(clock, "input_blocks.0", "conv_in", t0);
        Deque<Feature> skips = new ArrayDeque<>();
        skips.push(f);
        for (int i = 0; i < inputBlocks.size(); i++) {
            for (Layer layer : inputBlocks.get(i)) {
                f = apply(layer, f, cond, skips);
                t0 = lap(clock, "input_blocks." + (i + 1), kind(layer), t0);
            }
            skips.push(f);
        }
        for (Layer layer : middleBlock) {
            f = apply(layer, f, cond, skips);
            t0 = lap(clock, "middle_block", kind(layer), t0);
        }
        if (control != null) {
            f = withResidual(f, control.mid(), "middle block");
        }
        for (int i = 0; i < outputBlocks.size(); i++) {
            Feature skip = skips.pop();
            if (control != null) {
                skip = withResidual(skip, control.down().get(skips.size()), "skip " + skips.size());
            }
            f = f.with(Ops.concatChannels(f.data(), f.c(), skip.data(), skip.c(), f.rows()), f.c() + skip.c());
            for (Layer layer : outputBlocks.get(i)) {
                f = apply(layer, f, cond, skips);
                t0 = lap(clock, "output_blocks." + i, kind(layer), t0);
            }
        }
        f = conv(outConv, f.with(outNorm.apply(f, true), f.c()));
        float[] out = Ops.nhwcToNchw(f.data(), batch, f.c(), h, w);
        lap(clock, "out", "out", t0);
        return out;
    }

    /** x + r (a new array: the encoder's states stay as they were). */
    private static Feature withResidual(Feature x, ControlResiduals.FeatureMap r, String where) {
        if (r.batch() != x.batch() || r.h() != x.h() || r.w() != x.w() || r.c() != x.c()) {
            throw new IllegalArgumentException("UNet: the ControlNet residual for the " + where + " is " + r.batch()
                    + "x" + r.h() + "x" + r.w() + "x" + r.c() + " (NHWC), the UNet's is " + x.batch() + "x" + x.h()
                    + "x" + x.w() + "x" + x.c());
        }
        float[] sum = x.data().clone();
        Ops.addInPlace(sum, r.data());
        return x.with(sum, x.c());
    }

    private static long lap(LayerTimer clock, String block, String kind, long since) {
        long now = System.nanoTime();
        clock.record(block, kind, now - since);
        return now;
    }

    private static String kind(Layer layer) {
        return switch (layer) {
            case Res r -> "res";
            case Attn a -> "transformer";
            case Down d -> "downsample";
            case Up u -> "upsample";
        };
    }

    private static Feature apply(Layer layer, Feature x, Conditioning cond, Deque<Feature> skips) {
        return switch (layer) {
            case Res r -> r.block().forward(x, cond.embSilu());
            case Attn a -> a.transformer().forward(x, cond.context(), cond.tokens());
            case Down d -> conv(d.conv(), x);
            case Up u -> upsample(u.conv(), x, skips.peek());
        };
    }

    /**
     * Nearest up-sampling to the size of the skip the next output block concatenates (2x for even sizes; for odd
     * latent sizes such as 8x12 -> 1x2 at the bottom, 1x2 goes back to 2x3, not 2x4), then a 3x3 conv.
     */
    private static Feature upsample(Conv2d conv, Feature x, Feature nextSkip) {
        int oh = nextSkip == null ? 2 * x.h() : nextSkip.h();
        int ow = nextSkip == null ? 2 * x.w() : nextSkip.w();
        float[] up = Ops.resizeNearest(x.data(), x.batch(), x.h(), x.w(), x.c(), oh, ow);
        return conv(conv, new Feature(up, x.batch(), oh, ow, x.c()));
    }


    private void checkInputs(float[] x, int batch, int h, int w, float[] timesteps, float[] context, int tokens,
                             float[] y) {
        UNetConfig c = config;
        require(batch > 0 && h > 0 && w > 0, "batch, height and width must be positive, got " + batch + ", " + h
                + ", " + w);
        require(x.length == (long) batch * c.inChannels() * h * w, "latent holds " + x.length + " values, expected "
                + batch + "x" + c.inChannels() + "x" + h + "x" + w);
        require(timesteps.length == batch, "got " + timesteps.length + " timesteps for a batch of " + batch);
        require(context.length == (long) batch * tokens * c.contextDim(), "context holds " + context.length
                + " values, expected " + batch + "x" + tokens + "x" + c.contextDim());
        if (c.admInChannels() > 0) {
            require(y != null && y.length == batch * c.admInChannels(), "this UNet needs an adm vector y of "
                    + batch + "x" + c.admInChannels() + " values (pooled text embedding and size embeddings)");
        } else {
            require(y == null, "this UNet takes no adm vector y (only SDXL-style UNets with label_emb do)");
        }
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException("UNet: " + message);
        }
    }

    /**
     * SDXL's adm vector: per row, the pooled text embedding followed by the sinusoidal embeddings (256 wide, cos
     * first, float32 like the timestep embedding) of the six numbers of timeIds.
     *
     * @param pooled  [batch][pooledDim] (1280 for SDXL's OpenCLIP bigG)
     * @param timeIds [batch][6] = original height, original width, crop top, crop left, target height, target
     *                width, in pixels ({@code [H, W, 0, 0, H, W]} by default)
     * @return [batch][pooledDim + 6 * 256]
     */
    public static float[] sdxlAdm(float[] pooled, int batch, float[] timeIds) {
        if (batch <= 0 || pooled.length % batch != 0 || timeIds.length != batch * 6) {
            throw new IllegalArgumentException("sdxlAdm: " + pooled.length + " pooled values and " + timeIds.length
                    + " time ids do not make " + batch + " rows of [pooled] and [6]");
        }
        int p = pooled.length / batch;
        int e = 6 * TimestepEmbedding.SDXL_SIZE_EMBED_DIM;
        float[] sizes = TimestepEmbedding.sinusoid(timeIds, TimestepEmbedding.SDXL_SIZE_EMBED_DIM);
        float[] y = new float[batch * (p + e)];
        for (int b = 0; b < batch; b++) {
            System.arraycopy(pooled, b * p, y, b * (p + e), p);
            System.arraycopy(sizes, b * e, y, b * (p + e) + p, e);
        }
        return y;
    }

    /** {@link #sdxlAdm(float[], int, float[])} with the same six size numbers for every row. */
    public static float[] sdxlAdm(float[] pooled, int batch, int origH, int origW, int cropTop, int cropLeft,
                                  int targetH, int targetW) {
        float[] ids = new float[batch * 6];
        for (int b = 0; b < batch; b++) {
            float[] row = {origH, origW, cropTop, cropLeft, targetH, targetW};
            System.arraycopy(row, 0, ids, b * 6, 6);
        }
        return sdxlAdm(pooled, batch, ids);
    }
}
