package jdiffusion.io;

import java.util.ArrayList;
import java.util.List;
import jdiffusion.io.CheckpointLayouts.Layout;
import jdiffusion.io.CheckpointLayouts.TextEncoderSlot;
import jdiffusion.io.CheckpointLayouts.TextLayout;
import jdiffusion.model.ModelConfig;
import jdiffusion.model.ModelConfig.TextEncoderSpec;
import jdiffusion.model.ModelConfig.UNetSpec;
import jdiffusion.model.ModelConfig.VaeSpec;

/**
 * The full tensor list (names, shapes, how to initialise) of a single-file checkpoint with a given architecture, in
 * the real LDM/SGM key layout. The inverse of {@link jdiffusion.model.ModelDetector}: the tiny golden checkpoints and
 * real SD1.5 / SD2.1 / SDXL files both follow it.
 */
public final class CheckpointKeys {
    private CheckpointKeys() {
    }

    /** How a random checkpoint fills a tensor. */
    public enum Init {
        /** Small random normal values (weights, biases of linear and conv layers). */
        NORMAL,
        /** Norm scales. */
        ONE,
        /** Norm shifts. */
        ZERO,
        /** CLIP position ids 0..n-1 (int64). */
        POSITION_IDS,
        /** OpenCLIP's logit_scale, ln(1/0.07). */
        LOGIT_SCALE
    }

    /** One tensor of a checkpoint. */
    public record TensorSpec(String name, long[] shape, Init init) {
        public long numel() {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            return n;
        }
    }

    /** Every tensor of a checkpoint with this architecture, in the layout of its family. */
    public static List<TensorSpec> of(ModelConfig config) {
        Layout layout = CheckpointLayouts.layout(config.family());
        Builder b = new Builder();
        unet(b.at(layout.unetPrefix()), config.unet());
        vae(b.at(layout.vaePrefix()), config.vae());
        List<TextEncoderSlot> slots = layout.textEncoders();
        if (slots.size() != config.textEncoders().size()) {
            throw new IllegalArgumentException(config.family() + " has " + slots.size() + " text encoders, config gives "
                    + config.textEncoders().size());
        }
        for (int i = 0; i < slots.size(); i++) {
            TextEncoderSlot slot = slots.get(i);
            TextEncoderSpec te = config.textEncoders().get(i);
            if (slot.layout() == TextLayout.HF_CLIP) {
                hfClip(b.at(slot.prefix()), te);
            } else {
                openClip(b.at(slot.prefix()), te);
            }
        }
        return b.out;
    }

    // ---------------------------------------------------------------------------------------------------------
    // UNet (openaimodel.UNetModel)

    static void unet(Builder b, UNetSpec u) {
        int mc = u.modelChannels();
        int ted = u.timeEmbedDim();
        b.linear("time_embed.0", ted, mc);
        b.linear("time_embed.2", ted, ted);
        if (u.admInChannels() > 0) {
            b.linear("label_emb.0.0", ted, u.admInChannels());
            b.linear("label_emb.0.2", ted, ted);
        }
        b.conv("input_blocks.0.0", mc, u.inChannels(), 3);
        List<Integer> skipChannels = new ArrayList<>();
        skipChannels.add(mc);
        int ch = mc;
        int block = 1;
        for (int level = 0; level < u.levels(); level++) {
            for (int j = 0; j < u.numResBlocks(); j++) {
                String p = "input_blocks." + block++;
                int out = u.channels(level);
                resBlock(b, p + ".0", ch, out, ted);
                ch = out;
                if (u.transformerDepth().get(level) > 0) {
                    transformer(b, p + ".1", ch, u.transformerDepth().get(level), u);
                }
                skipChannels.add(ch);
            }
            if (level != u.levels() - 1) {
                b.conv("input_blocks." + block++ + ".0.op", ch, ch, 3);
                skipChannels.add(ch);
            }
        }
        resBlock(b, "middle_block.0", ch, ch, ted);
        if (u.transformerDepthMiddle() > 0) {
            transformer(b, "middle_block.1", ch, u.transformerDepthMiddle(), u);
            resBlock(b, "middle_block.2", ch, ch, ted);
        } else {
            resBlock(b, "middle_block.1", ch, ch, ted);
        }
        int outBlock = 0;
        for (int level = u.levels() - 1; level >= 0; level--) {
            for (int j = 0; j <= u.numResBlocks(); j++) {
                String p = "output_blocks." + outBlock;
                int skip = skipChannels.removeLast();
                int out = u.channels(level);
                resBlock(b, p + ".0", ch + skip, out, ted);
                ch = out;
                int sub = 1;
                int depth = u.transformerDepthOutput().get(outBlock);
                if (depth > 0) {
                    transformer(b, p + "." + sub++, ch, depth, u);
                }
                if (level > 0 && j == u.numResBlocks()) {
                    b.conv(p + "." + sub + ".conv", ch, ch, 3);
                }
                outBlock++;
            }
        }
        b.norm("out.0", ch);
        b.conv("out.2", u.outChannels(), ch, 3);
    }

    private static void resBlock(Builder b, String p, int in, int out, int ted) {
        b.norm(p + ".in_layers.0", in);
        b.conv(p + ".in_layers.2", out, in, 3);
        b.linear(p + ".emb_layers.1", out, ted);
        b.norm(p + ".out_layers.0", out);
        b.conv(p + ".out_layers.3", out, out, 3);
        if (in != out) {
            b.conv(p + ".skip_connection", out, in, 1);
        }
    }

    private static void transformer(Builder b, String p, int c, int depth, UNetSpec u) {
        b.norm(p + ".norm", c);
        projection(b, p + ".proj_in", c, u.linearProj());
        for (int k = 0; k < depth; k++) {
            String t = p + ".transformer_blocks." + k;
            attention(b, t + ".attn1", c, c);
            attention(b, t + ".attn2", c, u.contextDim());
            b.linear(t + ".ff.net.0.proj", 8 * c, c); // GEGLU: value and gate, inner width 4c each
            b.linear(t + ".ff.net.2", c, 4 * c);
            b.norm(t + ".norm1", c);
            b.norm(t + ".norm2", c);
            b.norm(t + ".norm3", c);
        }
        projection(b, p + ".proj_out", c, u.linearProj());
    }

    private static void projection(Builder b, String p, int c, boolean linear) {
        if (linear) {
            b.linear(p, c, c);
        } else {
            b.conv(p, c, c, 1);
        }
    }

    private static void attention(Builder b, String p, int c, int kvIn) {
        b.weight(p + ".to_q.weight", c, c);
        b.weight(p + ".to_k.weight", c, kvIn);
        b.weight(p + ".to_v.weight", c, kvIn);
        b.linear(p + ".to_out.0", c, c);
    }

    // ---------------------------------------------------------------------------------------------------------
    // VAE (ldm.modules.diffusionmodules.model Encoder/Decoder)

    /**
     * An AutoencoderKL's tensors under prefix; without quant convs for SD3's VAE (which has no quant_conv /
     * post_quant_conv).
     */
    public static List<TensorSpec> vae(String prefix, VaeSpec v, boolean quantConvs) {
        Builder b = new Builder();
        vae(b.at(prefix), v);
        if (!quantConvs) {
            b.out.removeIf(t -> t.name().startsWith(prefix + "quant_conv.")
                    || t.name().startsWith(prefix + "post_quant_conv."));
        }
        return b.out;
    }

    static void vae(Builder b, VaeSpec v) {
        int base = v.baseChannels();
        List<Integer> mult = v.channelMult();
        int levels = mult.size();
        int z = v.latentChannels();
        b.conv("encoder.conv_in", base, v.imageChannels(), 3);
        int ch = base;
        for (int l = 0; l < levels; l++) {
            int out = base * mult.get(l);
            for (int j = 0; j < v.numResBlocks(); j++) {
                vaeResBlock(b, "encoder.down." + l + ".block." + j, ch, out);
                ch = out;
            }
            if (l != levels - 1) {
                b.conv("encoder.down." + l + ".downsample.conv", ch, ch, 3);
            }
        }
        vaeMid(b, "encoder.mid", ch);
        b.norm("encoder.norm_out", ch);
        b.conv("encoder.conv_out", 2 * z, ch, 3);

        ch = base * mult.get(levels - 1);
        b.conv("decoder.conv_in", ch, z, 3);
        vaeMid(b, "decoder.mid", ch);
        for (int l = levels - 1; l >= 0; l--) {
            int out = base * mult.get(l);
            for (int j = 0; j < v.decoderResBlocks(); j++) {
                vaeResBlock(b, "decoder.up." + l + ".block." + j, ch, out);
                ch = out;
            }
            if (l != 0) {
                b.conv("decoder.up." + l + ".upsample.conv", ch, ch, 3);
            }
        }
        b.norm("decoder.norm_out", ch);
        b.conv("decoder.conv_out", v.imageChannels(), ch, 3);
        b.conv("quant_conv", 2 * z, 2 * z, 1);
        b.conv("post_quant_conv", z, z, 1);
    }

    private static void vaeResBlock(Builder b, String p, int in, int out) {
        b.norm(p + ".norm1", in);
        b.conv(p + ".conv1", out, in, 3);
        b.norm(p + ".norm2", out);
        b.conv(p + ".conv2", out, out, 3);
        if (in != out) {
            b.conv(p + ".nin_shortcut", out, in, 1);
        }
    }

    private static void vaeMid(Builder b, String p, int c) {
        vaeResBlock(b, p + ".block_1", c, c);
        b.norm(p + ".attn_1.norm", c);
        for (String s : new String[] {"q", "k", "v", "proj_out"}) {
            b.conv(p + ".attn_1." + s, c, c, 1);
        }
        vaeResBlock(b, p + ".block_2", c, c);
    }

    // ---------------------------------------------------------------------------------------------------------
    // text encoders

    /** A CLIP text model in HF names under prefix (a separate text encoder file: clip_l.safetensors, clip_g...). */
    public static List<TensorSpec> hfClip(String prefix, TextEncoderSpec t) {
        Builder b = new Builder().at(prefix);
        hfClip(b, t);
        return b.out;
    }

    static void hfClip(Builder b, TextEncoderSpec t) {
        int w = t.width();
        b.weight("text_model.embeddings.token_embedding.weight", t.vocab(), w);
        b.weight("text_model.embeddings.position_embedding.weight", t.positions(), w);
        if (t.positionIds()) {
            b.add("text_model.embeddings.position_ids", Init.POSITION_IDS, 1, t.positions());
        }
        for (int k = 0; k < t.layers(); k++) {
            String p = "text_model.encoder.layers." + k;
            b.norm(p + ".layer_norm1", w);
            b.norm(p + ".layer_norm2", w);
            b.linear(p + ".mlp.fc1", t.mlpWidth(), w);
            b.linear(p + ".mlp.fc2", w, t.mlpWidth());
            for (String s : new String[] {"q_proj", "k_proj", "v_proj", "out_proj"}) {
                b.linear(p + ".self_attn." + s, w, w);
            }
        }
        b.norm("text_model.final_layer_norm", w);
        if (t.projectionDim() > 0) {
            b.weight("text_projection.weight", t.projectionDim(), w);
        }
    }

    static void openClip(Builder b, TextEncoderSpec t) {
        int w = t.width();
        b.weight("token_embedding.weight", t.vocab(), w);
        b.weight("positional_embedding", t.positions(), w);
        for (int k = 0; k < t.layers(); k++) {
            String p = "transformer.resblocks." + k;
            b.norm(p + ".ln_1", w);
            b.weight(p + ".attn.in_proj_weight", 3 * w, w);
            b.add(p + ".attn.in_proj_bias", Init.NORMAL, 3 * w);
            b.linear(p + ".attn.out_proj", w, w);
            b.norm(p + ".ln_2", w);
            b.linear(p + ".mlp.c_fc", t.mlpWidth(), w);
            b.linear(p + ".mlp.c_proj", w, t.mlpWidth());
        }
        b.norm("ln_final", w);
        if (t.projectionDim() > 0) {
            b.weight("text_projection", w, t.projectionDim());
        }
        b.add("logit_scale", Init.LOGIT_SCALE);
    }

    /** Appends tensors under a prefix. */
    static final class Builder {
        final List<TensorSpec> out;
        final String prefix;

        Builder() {
            this(new ArrayList<>(), "");
        }

        private Builder(List<TensorSpec> out, String prefix) {
            this.out = out;
            this.prefix = prefix;
        }

        Builder at(String p) {
            return new Builder(out, p);
        }

        void add(String name, Init init, long... shape) {
            out.add(new TensorSpec(prefix + name, shape, init));
        }

        void weight(String name, long... shape) {
            add(name, Init.NORMAL, shape);
        }

        void linear(String p, int out, int in) {
            weight(p + ".weight", out, in);
            weight(p + ".bias", out);
        }

        void conv(String p, int out, int in, int k) {
            weight(p + ".weight", out, in, k, k);
            weight(p + ".bias", out);
        }

        void norm(String p, int c) {
            add(p + ".weight", Init.ONE, c);
            add(p + ".bias", Init.ZERO, c);
        }
    }
}
