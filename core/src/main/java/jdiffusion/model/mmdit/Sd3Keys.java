package jdiffusion.model.mmdit;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;
import jdiffusion.io.CheckpointKeys;
import jdiffusion.io.CheckpointKeys.Init;
import jdiffusion.io.CheckpointKeys.TensorSpec;
import jdiffusion.io.CheckpointLayouts.TextLayout;
import jdiffusion.model.ModelConfig.TextEncoderSpec;
import jdiffusion.model.ModelConfig.VaeSpec;

/**
 * The tensors of Stability's SD3 / SD3.5 single files (MMDiT under {@code model.diffusion_model.}, the 16-channel
 * VAE under {@code first_stage_model.}), for {@code dev random-checkpoint}: full-size files without a download.
 */
public final class Sd3Keys {
    /** SD3's VAE: 128 base channels, (1, 2, 4, 4), 2 res blocks (decoder 3), 16 latent channels, no quant convs. */
    public static final VaeSpec VAE = new VaeSpec(128, List.of(1, 2, 4, 4), 2, 3, 16, 3);

    private Sd3Keys() {
    }

    /**
     * The real architectures: sd35m (SD3.5 Medium, MMDiT-X: 24 blocks of 1536, dual attention in 0..12, 384x384
     * positions), sd35l (SD3.5 Large and Large Turbo: 38 blocks of 2432, 192x192), sd3m (SD3 Medium: 24 blocks, no
     * QK norm, 192x192).
     */
    public static MMDiTConfig preset(String name) {
        return switch (name) {
            case "sd35m" -> config(24, 384, true, IntStream.rangeClosed(0, 12).boxed().toList());
            case "sd35l" -> config(38, 192, true, List.of());
            case "sd3m" -> config(24, 192, false, List.of());
            default -> throw new IllegalArgumentException("unknown SD3 architecture '" + name
                    + "' (known: sd35m, sd35l, sd3m)");
        };
    }

    /** Whether name is one of {@link #preset}'s. */
    public static boolean isPreset(String name) {
        return List.of("sd35m", "sd35l", "sd3m").contains(name);
    }

    private static MMDiTConfig config(int depth, int posMax, boolean qk, List<Integer> dual) {
        int hidden = MMDiTConfig.HEAD_DIM * depth;
        return new MMDiTConfig(16, 16, 2, hidden, depth, depth, posMax, 2048, 4096, 256, 4 * hidden, qk, dual);
    }

    /** MMDiT and VAE tensors of a checkpoint with this MMDiT (no text encoders, as sd3.5_medium.safetensors). */
    public static List<TensorSpec> checkpoint(MMDiTConfig c) {
        List<TensorSpec> out = new ArrayList<>(mmdit(Sd3Config.MMDIT_PREFIX, c));
        out.addAll(CheckpointKeys.vae(Sd3Config.VAE_PREFIX, VAE, false));
        return out;
    }

    /** The MMDiT's tensors under prefix, in the original names. */
    public static List<TensorSpec> mmdit(String prefix, MMDiTConfig c) {
        List<TensorSpec> out = new ArrayList<>();
        int h = c.hidden();
        int p = c.patch();
        add(out, prefix + "pos_embed", Init.NORMAL, 1, (long) c.posEmbedMaxSize() * c.posEmbedMaxSize(), h);
        add(out, prefix + "x_embedder.proj.weight", Init.NORMAL, h, c.inChannels(), p, p);
        add(out, prefix + "x_embedder.proj.bias", Init.NORMAL, h);
        linear(out, prefix + "t_embedder.mlp.0", h, c.timeEmbedIn());
        linear(out, prefix + "t_embedder.mlp.2", h, h);
        linear(out, prefix + "y_embedder.mlp.0", h, c.admIn());
        linear(out, prefix + "y_embedder.mlp.2", h, h);
        linear(out, prefix + "context_embedder", h, c.contextIn());
        for (int i = 0; i < c.depth(); i++) {
            String b = prefix + "joint_blocks." + i;
            boolean last = i == c.depth() - 1;
            stream(out, b + ".context_block", c, last, last ? 2 : 6);
            boolean dual = c.dualAttentionBlocks().contains(i);
            stream(out, b + ".x_block", c, false, dual ? 9 : 6);
            if (dual) {
                attention(out, b + ".x_block.attn2", c, false);
            }
        }
        linear(out, prefix + "final_layer.adaLN_modulation.1", 2 * h, h);
        linear(out, prefix + "final_layer.linear", p * p * c.outChannels(), h);
        return out;
    }

    private static void stream(List<TensorSpec> out, String p, MMDiTConfig c, boolean preOnly, int chunks) {
        int h = c.hidden();
        linear(out, p + ".adaLN_modulation.1", chunks * h, h);
        attention(out, p + ".attn", c, preOnly);
        if (!preOnly) {
            linear(out, p + ".mlp.fc1", c.mlpHidden(), h);
            linear(out, p + ".mlp.fc2", h, c.mlpHidden());
        }
    }

    private static void attention(List<TensorSpec> out, String p, MMDiTConfig c, boolean preOnly) {
        int h = c.hidden();
        linear(out, p + ".qkv", 3 * h, h);
        if (c.qkNorm()) {
            add(out, p + ".ln_q.weight", Init.ONE, MMDiTConfig.HEAD_DIM);
            add(out, p + ".ln_k.weight", Init.ONE, MMDiTConfig.HEAD_DIM);
        }
        if (!preOnly) {
            linear(out, p + ".proj", h, h);
        }
    }

    private static void linear(List<TensorSpec> out, String p, int o, int in) {
        add(out, p + ".weight", Init.NORMAL, o, in);
        add(out, p + ".bias", Init.NORMAL, o);
    }

    private static void add(List<TensorSpec> out, String name, Init init, long... shape) {
        out.add(new TensorSpec(name, shape, init));
    }

    /** The text encoder files {@link #textEncoder} writes. */
    public static final List<String> TEXT_ENCODER_FILES = List.of("clip-l", "clip-g", "t5xxl");

    /**
     * A separate SD3 text encoder file as ComfyUI's {@code models/text_encoders} holds them, in HF names: clip-l
     * (CLIP ViT-L/14 text model, 768 wide, 12 layers), clip-g (OpenCLIP bigG text model in HF names, 1280 wide,
     * 32 layers, projection 1280) or t5xxl (T5 v1.1 XXL encoder: d_model 4096, 24 blocks, 64 heads of 64, gated
     * d_ff 10240, vocab 32128, relative attention bias in block 0).
     */
    public static List<TensorSpec> textEncoder(String name) {
        return switch (name) {
            case "clip-l" -> CheckpointKeys.hfClip("", new TextEncoderSpec("clip_l", TextLayout.HF_CLIP, 768, 12, 12,
                    3072, 49408, 77, 768, false, "quick_gelu"));
            case "clip-g" -> CheckpointKeys.hfClip("", new TextEncoderSpec("clip_g", TextLayout.HF_CLIP, 1280, 32, 20,
                    5120, 49408, 77, 1280, false, "gelu"));
            case "t5xxl" -> t5("", 4096, 24, 64, 64, 10240, 32128, 32);
            default -> throw new IllegalArgumentException("unknown SD3 text encoder '" + name + "' (known: "
                    + String.join(", ", TEXT_ENCODER_FILES) + ")");
        };
    }

    /** A T5 v1.1 encoder (gated GELU, no biases, RMS norms) in HF names under prefix. */
    static List<TensorSpec> t5(String prefix, int d, int blocks, int heads, int dKv, int dFf, int vocab, int buckets) {
        List<TensorSpec> out = new ArrayList<>();
        int inner = heads * dKv;
        add(out, prefix + "shared.weight", Init.NORMAL, vocab, d);
        for (int i = 0; i < blocks; i++) {
            String b = prefix + "encoder.block." + i + ".layer.";
            add(out, b + "0.layer_norm.weight", Init.ONE, d);
            for (String q : List.of("q", "k", "v")) {
                add(out, b + "0.SelfAttention." + q + ".weight", Init.NORMAL, inner, d);
            }
            add(out, b + "0.SelfAttention.o.weight", Init.NORMAL, d, inner);
            if (i == 0) {
                add(out, b + "0.SelfAttention.relative_attention_bias.weight", Init.NORMAL, buckets, heads);
            }
            add(out, b + "1.layer_norm.weight", Init.ONE, d);
            add(out, b + "1.DenseReluDense.wi_0.weight", Init.NORMAL, dFf, d);
            add(out, b + "1.DenseReluDense.wi_1.weight", Init.NORMAL, dFf, d);
            add(out, b + "1.DenseReluDense.wo.weight", Init.NORMAL, d, dFf);
        }
        add(out, prefix + "encoder.final_layer_norm.weight", Init.ONE, d);
        return out;
    }

    /** Parameters of the MMDiT alone. */
    public static long parameters(MMDiTConfig c) {
        return mmdit("", c).stream().mapToLong(TensorSpec::numel).sum();
    }
}
