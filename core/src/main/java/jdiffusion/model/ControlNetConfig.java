package jdiffusion.model;

import java.util.Arrays;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.Weights;

/**
 * What a ControlNet is, read from its weights (LDM / cldm.py names, see {@link jdiffusion.io.ControlNetWeights}): the
 * encoder half of the UNet it was made for (same numbers as {@link UNetConfig}'s) plus the hint encoder.
 *
 * @param family        SD1 (conv 1x1 proj_in), SD2 (linear proj_in, no size conditioning) or SDXL (label_emb)
 * @param inChannels    latent channels ({@code input_blocks.0.0.weight} in-width)
 * @param modelChannels width of the first level
 * @param channelMult   per level, res-block width / modelChannels
 * @param numResBlocks  res blocks per level
 * @param inputDepth    transformer blocks after each res block, level by level (0 = none)
 * @param middleDepth   transformer blocks in the middle block
 * @param contextDim    cross-attention context width (0 when the ControlNet has no transformer)
 * @param linearProj    proj_in/proj_out are Linear (SD2, SDXL) rather than 1x1 conv (SD1)
 * @param timeEmbedDim  width of the time embedding
 * @param admInChannels width of SDXL's adm vector ({@code label_emb.0.0} in-width), 0 if none
 * @param hintChannels  channels of the hint image (3: RGB)
 * @param hintWidths    output width of each conv of the hint encoder ({@code input_hint_block.0, 2, 4, ...})
 * @param headsRule     attention heads of a transformer of a given width
 */
public record ControlNetConfig(Family family, int inChannels, int modelChannels, int[] channelMult, int numResBlocks,
                               int[] inputDepth, int middleDepth, int contextDim, boolean linearProj,
                               int timeEmbedDim, int admInChannels, int hintChannels, int[] hintWidths,
                               UNetConfig.HeadsRule headsRule) {

    private static final java.util.regex.Pattern HINT_CONV =
            java.util.regex.Pattern.compile("input_hint_block\\.(\\d{1,4})\\.(weight|bias)");

    public int levels() {
        return channelMult.length;
    }

    /** Skip connections the ControlNet feeds: conv_in's output plus one per input block (12 for SD1.5). */
    public int skips() {
        return 1 + levels() * numResBlocks + levels() - 1;
    }

    /** The hint encoder down-samples by this factor (8: one pixel of the latent per 8x8 hint pixels). */
    public int hintDownsampling() {
        return 1 << ((hintWidths.length - 2) / 2);
    }

    /** Whether this ControlNet can steer a UNet of this configuration (same encoder structure and conditioning). */
    public boolean fits(UNetConfig u) {
        return u.inChannels() == inChannels && u.modelChannels() == modelChannels
                && Arrays.equals(u.channelMult(), channelMult) && u.numResBlocks() == numResBlocks
                && u.contextDim() == contextDim && u.admInChannels() == admInChannels
                && u.timeEmbedDim() == timeEmbedDim;
    }

    /** The default heads rule of the projection kind (SD1 8 heads, SD2/SDXL head size 64). */
    public static ControlNetConfig infer(Weights weights) throws ModelFormatException {
        return infer(weights, null);
    }

    public static ControlNetConfig infer(Weights weights, UNetConfig.HeadsRule headsRule) throws ModelFormatException {
        try {
            return inferChecked(new UNetTensors(weights), headsRule);
        } catch (IllegalStateException | IllegalArgumentException e) {
            throw new ModelFormatException("ControlNet: " + e.getMessage(), e);
        }
    }

    private static ControlNetConfig inferChecked(UNetTensors t, UNetConfig.HeadsRule headsRule) {
        int[] convIn = t.shape("input_blocks.0.0.weight");
        if (convIn.length != 4) {
            throw new IllegalStateException("tensor 'input_blocks.0.0.weight' has shape " + Arrays.toString(convIn)
                    + ", expected a conv weight");
        }
        int modelChannels = convIn[0];
        UNetConfig.Encoder encoder = UNetConfig.Encoder.read(t, modelChannels);
        int[] mult = encoder.channelMult();
        int numRes = encoder.numResBlocks();
        int blocks = encoder.blocks();
        int zeroConvs = t.countChildren("zero_convs");
        if (zeroConvs != blocks) {
            throw new IllegalStateException("found " + zeroConvs + " zero convs (zero_convs.N.0) for " + blocks
                    + " input blocks");
        }
        if (!t.has("middle_block_out.0.weight")) {
            throw new IllegalStateException("missing tensor 'middle_block_out.0.weight'");
        }
        int middleDepth = t.countChildren("middle_block.1.transformer_blocks");
        String anyProj = t.firstEndingWith(".proj_in.weight");
        boolean linearProj = anyProj != null && t.shape(anyProj).length == 2;
        String anyCross = t.firstEndingWith(".attn2.to_k.weight");
        int contextDim = anyCross == null ? 0 : t.shape(anyCross)[1];
        int timeEmbedDim = t.outWidth("time_embed.0");
        if (t.inWidth("time_embed.0") != modelChannels) {
            throw new IllegalStateException("tensor 'time_embed.0.weight' takes " + t.inWidth("time_embed.0")
                    + " inputs, expected the model channels " + modelChannels);
        }
        int adm = t.has("label_emb.0.0.weight") ? t.inWidth("label_emb.0.0") : 0;
        // the SiLUs between the convs have no tensors: convs sit at even indices 0, 2, ..., 2 * (n - 1)
        int n = 0;
        while (t.has("input_hint_block." + 2 * n + ".weight")) {
            n++;
        }
        if (n < 2 || n % 2 != 0) {
            throw new IllegalStateException("the hint encoder input_hint_block has " + n + " convs at indices 0, 2, 4..."
                    + ", expected conv_in, pairs of blocks and conv_out");
        }
        for (String name : t.names()) {
            if (name.startsWith("input_hint_block.")) {
                java.util.regex.Matcher m = HINT_CONV.matcher(name);
                int k = m.matches() ? Integer.parseInt(m.group(1)) : -1;
                if (k < 0 || k % 2 != 0 || k / 2 >= n) {
                    throw new IllegalStateException("unexpected hint encoder tensor '" + name + "'");
                }
            }
        }
        int[] hintWidths = new int[n];
        for (int i = 0; i < n; i++) {
            hintWidths[i] = t.outWidth("input_hint_block." + 2 * i);
        }
        if (hintWidths[n - 1] != modelChannels) {
            throw new IllegalStateException("the hint encoder ends with " + hintWidths[n - 1]
                    + " channels, expected the model channels " + modelChannels);
        }
        Family family = adm > 0 ? Family.SDXL : linearProj ? Family.SD2 : Family.SD1;
        return new ControlNetConfig(family, convIn[1], modelChannels, mult, numRes,
                encoder.depths(), middleDepth, contextDim, linearProj,
                timeEmbedDim, adm, t.inWidth("input_hint_block.0"), hintWidths,
                headsRule == null ? UNetConfig.HeadsRule.defaultFor(linearProj) : headsRule);
    }

    @Override
    public String toString() {
        return "ControlNetConfig[" + family + ", in=" + inChannels + ", modelChannels=" + modelChannels
                + ", channelMult=" + Arrays.toString(channelMult) + ", numResBlocks=" + numResBlocks
                + ", inputDepth=" + Arrays.toString(inputDepth) + ", middleDepth=" + middleDepth + ", contextDim="
                + contextDim + ", linearProj=" + linearProj + ", timeEmbedDim=" + timeEmbedDim + ", admInChannels="
                + admInChannels + ", hint=" + hintChannels + "->" + Arrays.toString(hintWidths) + "]";
    }
}
