package jdiffusion.model;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.Weights;

/**
 * What a UNet is, read from the names and shapes of its weights (LDM/SGM names): SD1, SD2 and SDXL, full size or
 * tiny, differ only in these numbers.
 *
 * @param inChannels      latent channels in ({@code input_blocks.0.0.weight} in-width)
 * @param outChannels     channels out ({@code out.2.weight})
 * @param modelChannels   width of the first level ({@code input_blocks.0.0.weight} out-width; 320 for SD)
 * @param channelMult     per level, res-block width / modelChannels (SD1/SD2 1,2,4,4; SDXL 1,2,4)
 * @param numResBlocks    res blocks per level on the way down (the way up has one more)
 * @param inputDepth      transformer blocks after each down res block, level by level (0 = no transformer)
 * @param middleDepth     transformer blocks in the middle block (0 = the middle block is two res blocks)
 * @param outputDepth     transformer blocks in each output block, in {@code output_blocks} order
 * @param contextDim      cross-attention context width ({@code attn2.to_k} in-width; 768 SD1, 1024 SD2, 2048 SDXL)
 * @param linearProj      proj_in/proj_out are Linear [C,C] (SD2, SDXL) rather than 1x1 conv [C,C,1,1] (SD1)
 * @param timeEmbedDim    width of the time embedding ({@code time_embed.0} out-width)
 * @param admInChannels   width of the SDXL "adm" vector y ({@code label_emb.0.0} in-width; 2816 for SDXL), 0 if none
 * @param headsRule       attention heads of a transformer of a given width
 */
public record UNetConfig(int inChannels, int outChannels, int modelChannels, int[] channelMult, int numResBlocks,
                         int[] inputDepth, int middleDepth, int[] outputDepth, int contextDim, boolean linearProj,
                         int timeEmbedDim, int admInChannels, HeadsRule headsRule) {

    /**
     * The number of attention heads of a spatial transformer of a given width. Head counts cannot be read from
     * weight shapes (q/k/v are [C,C] whatever the split), so they come from the family's convention.
     */
    @FunctionalInterface
    public interface HeadsRule {
        int heads(int channels);

        /** A fixed number of heads whatever the width (SD1.x: 8). */
        static HeadsRule fixedHeads(int heads) {
            return channels -> heads;
        }

        /**
         * Heads of a fixed width (SD2.x and SDXL: 64 channels per head, so heads = channels / 64). A transformer
         * narrower than one head (only in tiny test models) gets a single head of its full width.
         */
        static HeadsRule headDim(int headDim) {
            return channels -> {
                if (channels < headDim) {
                    return 1;
                }
                if (channels % headDim != 0) {
                    throw new IllegalArgumentException(channels + " channels do not split into heads of " + headDim);
                }
                return channels / headDim;
            };
        }

        /**
         * The convention that goes with the projection kind: conv 1x1 proj_in is SD1 (8 heads), linear proj_in is
         * SD2/SDXL (head dim 64). A fine-tune that breaks the convention must pass its own rule.
         */
        static HeadsRule defaultFor(boolean linearProj) {
            return linearProj ? headDim(64) : fixedHeads(8);
        }
    }

    public int levels() {
        return channelMult.length;
    }

    /** Res-block width of a level. */
    public int channels(int level) {
        return modelChannels * channelMult[level];
    }

    /** Width of the sinusoidal timestep embedding ({@code time_embed.0} in-width, = modelChannels in LDM). */
    public int timestepSinusoidDim() {
        return modelChannels;
    }

    /** Number of output blocks (levels x (numResBlocks + 1)). */
    public int outputBlocks() {
        return levels() * (numResBlocks + 1);
    }

    /** Infers the configuration with the default heads rule for the projection kind. */
    public static UNetConfig infer(Weights weights) throws ModelFormatException {
        return infer(weights, null);
    }

    /** Infers the configuration; headsRule null means {@link HeadsRule#defaultFor}. */
    public static UNetConfig infer(Weights weights, HeadsRule headsRule) throws ModelFormatException {
        try {
            return inferChecked(new UNetTensors(weights), headsRule);
        } catch (IllegalStateException | IllegalArgumentException e) {
            throw new ModelFormatException("UNet: " + e.getMessage(), e);
        }
    }

    private static UNetConfig inferChecked(UNetTensors t, HeadsRule headsRule) {
        int[] convIn = t.shape("input_blocks.0.0.weight");
        int modelChannels = convIn[0];
        Encoder encoder = Encoder.read(t, modelChannels);
        int[] mult = encoder.channelMult();
        int numRes = encoder.numResBlocks();
        int outputBlocks = mult.length * (numRes + 1);
        int found = t.countChildren("output_blocks");
        if (found != outputBlocks) {
            throw new IllegalStateException("found " + found + " output blocks, expected " + outputBlocks + " for "
                    + mult.length + " levels of " + numRes + " res blocks");
        }
        int[] outputDepth = new int[outputBlocks];
        for (int k = 0; k < outputBlocks; k++) {
            outputDepth[k] = t.countChildren("output_blocks." + k + ".1.transformer_blocks");
        }
        int middleDepth = t.countChildren("middle_block.1.transformer_blocks");
        String anyProj = t.hasChild("middle_block.1.proj_in") ? "middle_block.1.proj_in.weight" : firstNamed(t, "proj_in.weight");
        boolean linearProj = anyProj != null && t.shape(anyProj).length == 2;
        String anyCross = firstNamed(t, "attn2.to_k.weight");
        int contextDim = anyCross == null ? 0 : t.shape(anyCross)[1];
        int timeEmbedDim = t.outWidth("time_embed.0");
        int sinusoid = t.inWidth("time_embed.0");
        if (sinusoid != modelChannels) {
            throw new IllegalStateException("tensor 'time_embed.0.weight' takes " + sinusoid
                    + " inputs, expected the model channels " + modelChannels);
        }
        int adm = t.has("label_emb.0.0.weight") ? t.inWidth("label_emb.0.0") : 0;
        return new UNetConfig(convIn[1], t.outWidth("out.2"), modelChannels, mult, numRes,
                encoder.depths(), middleDepth, outputDepth, contextDim, linearProj,
                timeEmbedDim, adm, headsRule == null ? HeadsRule.defaultFor(linearProj) : headsRule);
    }

    /**
     * The encoder half as the tensors show it (shared with the ControlNet, its copy): channel multipliers, res blocks
     * per level, the transformer depth after each res block, and the number of input blocks including conv_in.
     */
    record Encoder(int[] channelMult, int numResBlocks, int[] depths, int blocks) {
        static Encoder read(UNetTensors t, int modelChannels) {
            List<List<Integer>> levelWidths = new ArrayList<>();
            List<Integer> depths = new ArrayList<>();
            levelWidths.add(new ArrayList<>());
            int blocks = 1;
            for (int i = 1; t.hasChild("input_blocks." + i); i++, blocks++) {
                String block = "input_blocks." + i;
                if (t.has(block + ".0.op.weight")) {
                    levelWidths.add(new ArrayList<>());
                } else if (t.has(block + ".0.in_layers.2.weight")) {
                    levelWidths.getLast().add(t.outWidth(block + ".0.in_layers.2"));
                    depths.add(t.countChildren(block + ".1.transformer_blocks"));
                } else {
                    throw new IllegalStateException("'" + block + "' is neither a res block nor a down-sampler");
                }
            }
            int numRes = levelWidths.getFirst().size();
            int[] mult = new int[levelWidths.size()];
            for (int level = 0; level < mult.length; level++) {
                List<Integer> widths = levelWidths.get(level);
                if (widths.size() != numRes || numRes == 0) {
                    throw new IllegalStateException("input level " + level + " has " + widths.size()
                            + " res blocks, level 0 has " + numRes);
                }
                int width = widths.getFirst();
                if (width % modelChannels != 0 || widths.stream().anyMatch(w -> w != width)) {
                    throw new IllegalStateException("input level " + level + " has res-block widths " + widths
                            + ", not one multiple of the model channels " + modelChannels);
                }
                mult[level] = width / modelChannels;
            }
            return new Encoder(mult, numRes, depths.stream().mapToInt(Integer::intValue).toArray(), blocks);
        }
    }

    private static String firstNamed(UNetTensors t, String suffix) {
        return t.firstEndingWith("." + suffix);
    }

    @Override
    public String toString() {
        return "UNetConfig[in=" + inChannels + ", out=" + outChannels + ", modelChannels=" + modelChannels
                + ", channelMult=" + Arrays.toString(channelMult) + ", numResBlocks=" + numResBlocks
                + ", inputDepth=" + Arrays.toString(inputDepth) + ", middleDepth=" + middleDepth + ", outputDepth="
                + Arrays.toString(outputDepth) + ", contextDim=" + contextDim + ", linearProj=" + linearProj
                + ", timeEmbedDim=" + timeEmbedDim + ", admInChannels=" + admInChannels + "]";
    }
}
