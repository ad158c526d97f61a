package jdiffusion.model;

import java.util.List;
import jdiffusion.io.CheckpointLayouts.TextLayout;
import jdiffusion.io.DType;

/**
 * What a checkpoint is: its family and every architecture number, read from tensor names and shapes by
 * {@link ModelDetector} (or taken from a {@link #preset(String)} to generate a file), plus the prediction type hint
 * and per-component parameter counts and dtypes.
 */
public record ModelConfig(Family family, UNetSpec unet, VaeSpec vae, List<TextEncoderSpec> textEncoders,
                          Prediction prediction, String predictionSource, List<ComponentStats> components) {

    /** What the UNet was trained to output. */
    public enum Prediction { EPS, V }

    /**
     * The LDM UNet's shape. Lists run over resolution levels (input side) or over output blocks; a depth of 0 means
     * no SpatialTransformer there. Heads: {@code numHeads > 0} fixes the head count (SD1: 8), else
     * {@code headDim} fixes the head size (SD2/SDXL: 64). Head counts cannot be read from shapes: the rule follows
     * the proj_in kind (conv: SD1, linear: SD2/SDXL).
     */
    public record UNetSpec(int inChannels, int outChannels, int modelChannels, List<Integer> channelMult,
                           int numResBlocks, List<Integer> transformerDepth, int transformerDepthMiddle,
                           List<Integer> transformerDepthOutput, int contextDim, boolean linearProj, int numHeads,
                           int headDim, int admInChannels, int timeEmbedDim) {
        public UNetSpec {
            channelMult = List.copyOf(channelMult);
            transformerDepth = List.copyOf(transformerDepth);
            transformerDepthOutput = List.copyOf(transformerDepthOutput);
        }

        public int levels() {
            return channelMult.size();
        }

        /** Channels at a level. */
        public int channels(int level) {
            return modelChannels * channelMult.get(level);
        }

        /** Attention heads of a transformer with this many channels. */
        public int heads(int channels) {
            return numHeads > 0 ? numHeads : channels / headDim;
        }

        /** Standard LDM layout: output depth per block is the level's input depth, nrb + 1 blocks per level. */
        public static List<Integer> outputDepths(List<Integer> depthPerLevel, int numResBlocks) {
            java.util.ArrayList<Integer> out = new java.util.ArrayList<>();
            for (int l = depthPerLevel.size() - 1; l >= 0; l--) {
                for (int j = 0; j <= numResBlocks; j++) {
                    out.add(depthPerLevel.get(l));
                }
            }
            return out;
        }
    }

    /**
     * AutoencoderKL: base channels times channelMult per level, res blocks per encoder level (the decoder has one
     * more), latent channels, image channels.
     */
    public record VaeSpec(int baseChannels, List<Integer> channelMult, int numResBlocks, int decoderResBlocks,
                          int latentChannels, int imageChannels) {
        public VaeSpec {
            channelMult = List.copyOf(channelMult);
        }
    }

    /**
     * A CLIP text transformer: width, layers, heads (width / 64 for every real CLIP), MLP width, vocabulary,
     * positions and the text projection's output size (0 when the file has none). activation: quick_gelu for
     * OpenAI CLIP-L, gelu for OpenCLIP.
     */
    public record TextEncoderSpec(String name, TextLayout layout, int width, int layers, int heads, int mlpWidth,
                                  int vocab, int positions, int projectionDim, boolean positionIds, String activation) {
    }

    /**
     * Parameter count (elements of float tensors), bytes and the dtype that holds most of them, per component
     * (unet, vae, clip_l, clip_h, clip_g, and "other" for tensors no component uses).
     */
    public record ComponentStats(String component, long parameters, long bytes, DType dtype, int tensors) {
    }

    /** Latent channels the UNet works in. */
    public int latentChannels() {
        return vae.latentChannels();
    }

    /**
     * The real architectures, for {@code dev random-checkpoint}: sd15 (SD 1.5), sd21 (SD 2.1 768-v), sdxl (SDXL 1.0
     * base).
     */
    public static ModelConfig preset(String name) {
        VaeSpec vae = new VaeSpec(128, List.of(1, 2, 4, 4), 2, 3, 4, 3);
        return switch (name) {
            case "sd15" -> {
                List<Integer> depth = List.of(1, 1, 1, 0);
                UNetSpec unet = new UNetSpec(4, 4, 320, List.of(1, 2, 4, 4), 2, depth, 1,
                        UNetSpec.outputDepths(depth, 2), 768, false, 8, -1, 0, 1280);
                TextEncoderSpec clipL = new TextEncoderSpec("clip_l", TextLayout.HF_CLIP, 768, 12, 12, 3072, 49408, 77, 0,
                        true, "quick_gelu");
                yield new ModelConfig(Family.SD1, unet, vae, List.of(clipL), Prediction.EPS, "preset", List.of());
            }
            case "sd21" -> {
                List<Integer> depth = List.of(1, 1, 1, 0);
                UNetSpec unet = new UNetSpec(4, 4, 320, List.of(1, 2, 4, 4), 2, depth, 1,
                        UNetSpec.outputDepths(depth, 2), 1024, true, -1, 64, 0, 1280);
                TextEncoderSpec clipH = new TextEncoderSpec("clip_h", TextLayout.OPEN_CLIP, 1024, 24, 16, 4096, 49408, 77,
                        1024, false, "gelu");
                yield new ModelConfig(Family.SD2, unet, vae, List.of(clipH), Prediction.V, "preset", List.of());
            }
            case "sdxl" -> {
                List<Integer> depth = List.of(0, 2, 10);
                UNetSpec unet = new UNetSpec(4, 4, 320, List.of(1, 2, 4), 2, depth, 10,
                        UNetSpec.outputDepths(depth, 2), 2048, true, -1, 64, 2816, 1280);
                TextEncoderSpec clipL = new TextEncoderSpec("clip_l", TextLayout.HF_CLIP, 768, 12, 12, 3072, 49408, 77, 0,
                        false, "quick_gelu");
                TextEncoderSpec clipG = new TextEncoderSpec("clip_g", TextLayout.OPEN_CLIP, 1280, 32, 20, 5120, 49408, 77,
                        1280, false, "gelu");
                yield new ModelConfig(Family.SDXL, unet, vae, List.of(clipL, clipG), Prediction.EPS, "preset", List.of());
            }
            default -> throw new IllegalArgumentException("unknown architecture '" + name + "' (known: sd15, sd21, sdxl)");
        };
    }
}
