package jdiffusion.model;

import static jdiffusion.model.UNetLayers.conv;

import java.util.ArrayList;
import java.util.List;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.Weights;
import jdiffusion.model.UNetLayers.Feature;
import jdiffusion.model.UNetLayers.GroupNorm;
import jdiffusion.tensor.Conv2d;
import jdiffusion.tensor.Linear;
import jdiffusion.tensor.Ops;

/**
 * The AutoencoderKL of Stable Diffusion (LDM names without the {@code first_stage_model.} prefix): the encoder
 * maps an image in [-1, 1] to a diagonal Gaussian over latents, the decoder maps a latent back to an image. Levels,
 * res blocks per level and every width are read from the weights. Kept in float32: fp16 VAEs overflow.
 *
 * <p>The latents here are the VAE's own; the sampler's latents are (these - shift) times the family's scaling factor
 * (0.18215 SD1/SD2, 0.13025 SDXL; SD3: shift 0.0609, scale 1.5305), which the caller applies. SD3's VAE has 16
 * latent channels and no quant_conv / post_quant_conv.
 */
public final class Vae {
    private static final float EPS = 1e-6f;

    private final Encoder encoder;
    private final Decoder decoder;
    private final int latentChannels;
    private final int factor;

    /** The encoder's output distribution; std = exp(0.5 * clamp(logvar, -30, 20)). Both NCHW [batch][c][h][w]. */
    public record Posterior(float[] mean, float[] std, int batch, int channels, int h, int w) {
    }

    private Vae(Encoder encoder, Decoder decoder) {
        this.encoder = encoder;
        this.decoder = decoder;
        this.latentChannels = decoder.latentChannels;
        this.factor = decoder.factor;
    }

    /** Reads encoder (optional: decode-only files work) and decoder. */
    public static Vae load(Weights weights) throws ModelFormatException {
        try {
            UNetTensors t = new UNetTensors(weights);
            Decoder decoder = Decoder.load(t);
            Encoder encoder = t.hasChild("encoder") ? Encoder.load(t, decoder.latentChannels) : null;
            return new Vae(encoder, decoder);
        } catch (IllegalStateException | IllegalArgumentException e) {
            throw new ModelFormatException("VAE: " + e.getMessage(), e);
        }
    }

    /** Latent channels (4 for SD1/SD2/SDXL, 16 for SD3). */
    public int latentChannels() {
        return latentChannels;
    }

    /** Pixels per latent cell along each axis (8 for SD). */
    public int downscale() {
        return factor;
    }

    public boolean canEncode() {
        return encoder != null;
    }

    /**
     * Decodes latents that are already divided by the scaling factor.
     *
     * @param latent NCHW [batch][latentChannels][h][w]
     * @return the raw image NCHW [batch][3][h * 8][w * 8], roughly in [-1, 1], not clamped
     */
    public float[] decode(float[] latent, int batch, int h, int w) {
        return decode(latent, batch, h, w, defaultTiling);
    }

    /** The tiling {@link #decode(float[], int, int, int)} uses; process-wide (the CLI's --vae-tiling sets it). */
    private static volatile VaeTiling defaultTiling = VaeTiling.auto();

    /** Sets the tiling of decodes that do not name one (null: back to {@link VaeTiling#auto()}). */
    public static void setDefaultTiling(VaeTiling tiling) {
        defaultTiling = tiling == null ? VaeTiling.auto() : tiling;
    }

    /**
     * {@link #decode(float[], int, int, int)} with an explicit tiling: in overlapping tiles blended across their
     * overlaps when the tiling says so (the whole image's activations would exceed its budget, or forced).
     */
    public float[] decode(float[] latent, int batch, int h, int w, VaeTiling tiling) {
        require(batch > 0 && h > 0 && w > 0, "batch and latent size must be positive");
        require(latent.length == (long) batch * latentChannels * h * w, "latent holds " + latent.length
                + " values, expected " + batch + "x" + latentChannels + "x" + h + "x" + w);
        long largest = decoder.largestActivation(batch, h, w);
        try {
            float[] out;
            if (tiling.tiles(largest, h, w)) {
                out = decodeTiled(latent, batch, h, w,
                        tiling.mode() == VaeTiling.Mode.AUTO
                                ? fewestTiles(tiling, h, w, (th, tw) -> decoder.largestActivation(batch, th, tw))
                                : tiling);
            } else {
                out = decodeWhole(latent, batch, h, w);
            }
            jdiffusion.tensor.Finite.check(out, "VAE decoder");
            return out;
        } finally {
            // the full-resolution convolutions' scratch is the size of an activation; it is not needed after this
            jdiffusion.tensor.Conv2d.releaseScratch();
        }
    }

    private float[] decodeWhole(float[] latent, int batch, int h, int w) {
        requireArraySize(decoder.largestActivation(batch, h, w), (w * factor) + "x" + (h * factor));
        Feature z = new Feature(Ops.nchwToNhwc(latent, batch, latentChannels, h, w), batch, h, w, latentChannels);
        Feature img = decoder.forward(z);
        return Ops.nhwcToNchw(img.data(), batch, img.c(), img.h(), img.w());
    }

    /** The decoder's largest activation (floats) for a latent tile of th x tw cells. */
    interface Largest {
        long of(int th, int tw);
    }

    /**
     * AUTO tiling with the fewest tiles that fit the budget: every tile decodes its overlap again, so 512-pixel tiles
     * (3 x 3 of them, with overlaps) cost a 1024x1024 decode more than twice the work of the whole image, where
     * 2 x 2 tiles of 544 pixels fit the same budget. Never smaller than the configured tile.
     */
    static VaeTiling fewestTiles(VaeTiling t, int h, int w, Largest largest) {
        int size = Math.max(h, w);
        for (int n = 2; ; n++) {
            int tile = (size + (n - 1) * t.overlap() + n - 1) / n;
            if (tile <= t.tile()) {
                return t;
            }
            if (largest.of(Math.min(tile, h), Math.min(tile, w)) * 4L * VaeTiling.LIVE_TENSORS <= t.budgetBytes()) {
                return new VaeTiling(VaeTiling.Mode.ALWAYS, tile, t.overlap(), t.budgetBytes());
            }
        }
    }

    private float[] decodeTiled(float[] latent, int batch, int h, int w, VaeTiling tiling) {
        int c = decoder.convOut().out();
        requireArraySize((long) batch * c * h * factor * w * factor, (w * factor) + "x" + (h * factor));
        return tiling.decode(latent, batch, latentChannels, h, w, c, factor, (tile, th, tw) -> decodeWhole(tile, batch,
                th, tw));
    }

    /**
     * Encodes images in [-1, 1].
     *
     * @param image NCHW [batch][3][height][width], height and width multiples of 8
     */
    public Posterior encode(float[] image, int batch, int height, int width) {
        require(encoder != null, "this VAE file has no encoder weights");
        require(batch > 0 && height > 0 && width > 0, "batch and image size must be positive");
        require(height % factor == 0 && width % factor == 0, "image size " + width + "x" + height
                + " is not a multiple of " + factor);
        int c = encoder.imageChannels;
        require(image.length == (long) batch * c * height * width, "image holds " + image.length
                + " values, expected " + batch + "x" + c + "x" + height + "x" + width);
        requireArraySize(encoder.largestActivation(batch, height, width), width + "x" + height);
        Feature x = new Feature(Ops.nchwToNhwc(image, batch, c, height, width), batch, height, width, c);
        Feature moments;
        try {
            moments = encoder.forward(x);
        } finally {
            // the full-resolution convolutions' padded scratch is the size of an activation: not needed after this
            jdiffusion.tensor.Conv2d.releaseScratch();
        }
        jdiffusion.tensor.Finite.check(moments.data(), "VAE encoder");
        return posterior(moments);
    }

    /** Splits [mean | logvar] channels, NHWC in, NCHW out. */
    private Posterior posterior(Feature moments) {
        int zc = latentChannels;
        int rows = moments.rows();
        float[] mean = new float[rows * zc];
        float[] std = new float[rows * zc];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < zc; j++) {
                mean[r * zc + j] = moments.data()[r * 2 * zc + j];
                float logvar = Math.clamp(moments.data()[r * 2 * zc + zc + j], -30f, 20f);
                std[r * zc + j] = (float) Math.exp(0.5f * logvar);
            }
        }
        int b = moments.batch();
        int h = moments.h();
        int w = moments.w();
        return new Posterior(Ops.nhwcToNchw(mean, b, zc, h, w), Ops.nhwcToNchw(std, b, zc, h, w), b, zc, h, w);
    }

    /** A decoded image to [0, 1]: clamp((x + 1) / 2, 0, 1), elementwise in float32. */
    public static float[] toUnitRange(float[] decoded) {
        float[] y = new float[decoded.length];
        for (int i = 0; i < y.length; i++) {
            y[i] = Math.clamp((decoded[i] + 1f) / 2f, 0f, 1f);
        }
        return y;
    }

    /** Java arrays stop just below 2^31 values; a 4096x4096 decode needs 2^31 in its top level alone. */
    private static void requireArraySize(long values, String size) {
        require(values < Integer.MAX_VALUE - 16, "a " + size + " image needs activations of " + values
                + " values, more than a Java array holds (2^31 - 1); use a smaller size or batch");
    }

    /** The widest activation (values) of a sequence of res blocks at h x w, or ch alone if there are none. */
    private static long widest(List<ResnetBlock> blocks, int ch, long pixels) {
        long m = ch * pixels;
        for (ResnetBlock b : blocks) {
            m = Math.max(m, Math.max(b.inChannels(), b.outChannels()) * pixels);
        }
        return m;
    }

    private static void require(boolean ok, String message) {
        if (!ok) {
            throw new IllegalArgumentException("VAE: " + message);
        }
    }


    private static Feature linear(Linear l, Feature x) {
        return x.with(l.forward(x.data(), x.rows()), l.out());
    }

    /** One encoder resolution level: res blocks, then a stride-2 downsampling conv or none. */
    private record Level(List<ResnetBlock> blocks, Conv2d resample) {
    }

    /** block_1, single-head attention, block_2 at the lowest resolution. */
    private record Mid(ResnetBlock block1, VaeAttention attn, ResnetBlock block2) {
        static Mid load(UNetTensors t, String prefix, int ch) {
            ResnetBlock b1 = ResnetBlock.vae(t, prefix + ".block_1", ch);
            VaeAttention attn = t.has(prefix + ".attn_1.q.weight") ? VaeAttention.load(t, prefix + ".attn_1", ch) : null;
            return new Mid(b1, attn, ResnetBlock.vae(t, prefix + ".block_2", ch));
        }

        Feature forward(Feature x, ActivationScratch scratch) {
            x = block1.forward(x, null, scratch);
            if (attn != null) {
                x = attn.forward(x);
            }
            return block2.forward(x, null, scratch);
        }
    }

    private record Encoder(Conv2d convIn, List<Level> levels, Mid mid, GroupNorm normOut, Conv2d convOut,
                           Linear quantConv, int imageChannels) {
        static Encoder load(UNetTensors t, int latentChannels) {
            int imageChannels = t.inWidth("encoder.conv_in");
            Conv2d convIn = t.conv3x3("encoder.conv_in", imageChannels);
            int ch = convIn.out();
            List<Level> levels = new ArrayList<>();
            int n = t.countChildren("encoder.down");
            for (int i = 0; i < n; i++) {
                String p = "encoder.down." + i;
                List<ResnetBlock> blocks = new ArrayList<>();
                for (int j = 0; j < t.countChildren(p + ".block"); j++) {
                    ResnetBlock rb = ResnetBlock.vae(t, p + ".block." + j, ch);
                    blocks.add(rb);
                    ch = rb.outChannels();
                }
                // LDM pads right and bottom by one, then convolves 3x3 with stride 2 and no padding.
                Conv2d down = t.has(p + ".downsample.conv.weight")
                        ? t.conv(p + ".downsample.conv", ch, 2, 0, 0, 1, 1) : null;
                levels.add(new Level(List.copyOf(blocks), down));
            }
            Mid mid = Mid.load(t, "encoder.mid", ch);
            GroupNorm normOut = t.groupNorm("encoder.norm_out", ch, 32, EPS);
            Conv2d convOut = t.conv3x3("encoder.conv_out", ch);
            if (convOut.out() != 2 * latentChannels) {
                throw new UNetTensors.BadTensorException("tensor 'encoder.conv_out.weight' has " + convOut.out()
                        + " outputs, expected mean and logvar of " + latentChannels + " channels");
            }
            // SD3's VAE has no quant_conv / post_quant_conv
            Linear quant = t.has("quant_conv.weight") ? t.linear("quant_conv", 2 * latentChannels) : null;
            return new Encoder(convIn, List.copyOf(levels), mid, normOut, convOut, quant, imageChannels);
        }

        long largestActivation(int batch, int h, int w) {
            long pixels = (long) batch * h * w;
            long m = convIn.out() * pixels;
            for (Level level : levels) {
                m = Math.max(m, widest(level.blocks(), convIn.out(), pixels));
                if (level.resample() != null) {
                    pixels = (long) batch * level.resample().outH(h) * level.resample().outW(w);
                    h = level.resample().outH(h);
                    w = level.resample().outW(w);
                }
            }
            return m;
        }

        Feature forward(Feature x) {
            // as the decoder: the norms in front of the blocks' first convolutions reuse arrays
            ActivationScratch scratch = new ActivationScratch();
            x = conv(convIn, x);
            for (Level level : levels) {
                for (ResnetBlock b : level.blocks()) {
                    x = b.forward(x, null, scratch);
                }
                if (level.resample() != null) {
                    x = conv(level.resample(), x);
                }
            }
            x = mid.forward(x, scratch);
            x = conv(convOut, x.with(normOut.applyInPlace(x, true), x.c())); // x is the mid block's own output
            return quantConv == null ? x : linear(quantConv, x);
        }
    }

    /** One decoder level: res blocks, then nearest 2x upsampling fused with its convolution, or none. */
    private record UpLevel(List<ResnetBlock> blocks, jdiffusion.tensor.UpsampleConv up) {
    }

    private record Decoder(Linear postQuantConv, Conv2d convIn, Mid mid, List<UpLevel> levels, GroupNorm normOut,
                           Conv2d convOut, int latentChannels, int factor) {
        static Decoder load(UNetTensors t) {
            boolean postQuantConv = t.has("post_quant_conv.weight");
            int zc = postQuantConv ? t.outWidth("post_quant_conv") : t.inWidth("decoder.conv_in");
            Linear postQuant = postQuantConv ? t.linear("post_quant_conv", zc) : null;
            Conv2d convIn = t.conv3x3("decoder.conv_in", zc);
            int ch = convIn.out();
            Mid mid = Mid.load(t, "decoder.mid", ch);
            int n = t.countChildren("decoder.up");
            List<UpLevel> levels = new ArrayList<>();
            int factor = 1;
            // up.{n-1} runs first (lowest resolution): the up index is reversed against the run order.
            for (int i = n - 1; i >= 0; i--) {
                String p = "decoder.up." + i;
                List<ResnetBlock> blocks = new ArrayList<>();
                for (int j = 0; j < t.countChildren(p + ".block"); j++) {
                    ResnetBlock rb = ResnetBlock.vae(t, p + ".block." + j, ch);
                    blocks.add(rb);
                    ch = rb.outChannels();
                }
                jdiffusion.tensor.UpsampleConv up = t.has(p + ".upsample.conv.weight")
                        ? t.upsampleConv(p + ".upsample.conv", ch) : null;
                if (up != null) {
                    factor *= 2;
                }
                levels.add(new UpLevel(List.copyOf(blocks), up));
            }
            GroupNorm normOut = t.groupNorm("decoder.norm_out", ch, 32, EPS);
            Conv2d convOut = t.conv3x3("decoder.conv_out", ch);
            return new Decoder(postQuant, convIn, mid, List.copyOf(levels), normOut, convOut, zc, factor);
        }

        long largestActivation(int batch, int h, int w) {
            long pixels = (long) batch * h * w;
            int ch = convIn.out();
            long m = ch * pixels;
            for (UpLevel level : levels) {
                m = Math.max(m, widest(level.blocks(), ch, pixels));
                ch = level.blocks().isEmpty() ? ch : level.blocks().getLast().outChannels();
                if (level.up() != null) {
                    pixels *= 4;
                    ch = level.up().out();
                    m = Math.max(m, ch * pixels);
                }
            }
            return m;
        }

        Feature forward(Feature z) {
            // the norms in front of the blocks' first convolutions reuse arrays: at 512x512 they are 134-268 MB each
            ActivationScratch scratch = new ActivationScratch();
            Feature x = conv(convIn, postQuantConv == null ? z : linear(postQuantConv, z));
            x = mid.forward(x, scratch);
            for (UpLevel level : levels) {
                for (ResnetBlock b : level.blocks()) {
                    x = b.forward(x, null, scratch);
                }
                if (level.up() != null) {
                    // UpsampleConv's convolutions check the input's size against their channels
                    x = new Feature(level.up().forward(x.data(), x.batch(), x.h(), x.w()), x.batch(), 2 * x.h(),
                            2 * x.w(), level.up().out());
                }
            }
            // x is the last block's (or upsampling's) own output: normalised in place
            return conv(convOut, x.with(normOut.applyInPlace(x, true), x.c()));
        }
    }
}
