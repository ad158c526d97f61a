package jdiffusion.model;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import jdiffusion.io.Checkpoint;
import jdiffusion.io.CheckpointLayouts.TextLayout;
import jdiffusion.io.DType;
import jdiffusion.io.MappedWeights;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.TensorInfo;
import jdiffusion.io.Weights;
import jdiffusion.model.ModelConfig.ComponentStats;
import jdiffusion.model.ModelConfig.Prediction;
import jdiffusion.model.ModelConfig.TextEncoderSpec;
import jdiffusion.model.ModelConfig.UNetSpec;
import jdiffusion.model.ModelConfig.VaeSpec;

/**
 * Reads a checkpoint's architecture from tensor names and shapes only (no tensor data), the way ComfyUI's
 * model_detection does: one code path for SD1, SD2, SDXL and their fine-tunes, at any width and depth.
 */
public final class ModelDetector {
    /** Real CLIP towers (OpenAI CLIP-L, OpenCLIP-H, OpenCLIP-bigG) and the SD2/SDXL UNets use 64-wide heads. */
    public static final int HEAD_DIM = 64;
    /** SD1 UNets use a fixed 8 heads in every transformer. */
    public static final int SD1_HEADS = 8;

    private ModelDetector() {
    }

    /** The LayerNorm bias whose spread tells an SD2 v-prediction UNet from an eps one (as ComfyUI decides). */
    static final String SD2_V_PROBE = "output_blocks.11.1.transformer_blocks.0.norm1.bias";

    static double populationStd(float[] v) {
        double mean = 0;
        for (float f : v) {
            mean += f;
        }
        mean /= v.length;
        double var = 0;
        for (float f : v) {
            var += (f - mean) * (f - mean);
        }
        return Math.sqrt(var / v.length);
    }

    /** The whole checkpoint: family (from its layout), every component, prediction hint and stats. */
    public static ModelConfig detect(Checkpoint ckpt) throws ModelFormatException {
        String where = ckpt.path().toString();
        UNetSpec unet = detectUnet(ckpt.unet(), where);
        VaeSpec vae = detectVae(ckpt.vae(), where);
        List<TextEncoderSpec> tes = new ArrayList<>();
        for (Checkpoint.TextEncoderPart te : ckpt.textEncoderParts()) {
            tes.add(detectTextEncoder(te.slot().name(), te.slot().layout(), te.raw(), where));
        }
        checkConsistent(ckpt.family(), unet, vae, tes, where);
        Map<String, String> meta = ckpt.metadata();
        Prediction prediction = Prediction.EPS;
        String source = "default (no hint in the file)";
        if (ckpt.file().contains("v_pred")) {
            prediction = Prediction.V;
            source = "'v_pred' key";
        } else if (meta.containsKey("modelspec.prediction_type")) {
            String p = meta.get("modelspec.prediction_type").trim().toLowerCase(java.util.Locale.ROOT);
            prediction = p.startsWith("v") ? Prediction.V : Prediction.EPS;
            source = "metadata modelspec.prediction_type=" + p;
        } else if (ckpt.family() == Family.SD2 && unet.inChannels() == 4 && ckpt.unet().has(SD2_V_PROBE)) {
            // Real SD2.x 768-v files carry no marker. ComfyUI tells them from the 512 eps models by the spread of one
            // trained LayerNorm bias (population std above 0.09 means v-prediction); do the same so both agree.
            double std = populationStd(ckpt.unet().get(SD2_V_PROBE));
            if (std > 0.09) {
                prediction = Prediction.V;
            }
            source = String.format(java.util.Locale.ROOT, "ComfyUI's SD2 rule: std of %s = %.4f %s 0.09",
                    SD2_V_PROBE, std, std > 0.09 ? ">" : "<=");
        }
        return new ModelConfig(ckpt.family(), unet, vae, tes, prediction, source, stats(ckpt));
    }

    private static void checkConsistent(Family family, UNetSpec unet, VaeSpec vae, List<TextEncoderSpec> tes, String where)
            throws ModelFormatException {
        int textWidth = family == Family.SDXL
                ? tes.stream().mapToInt(TextEncoderSpec::width).sum()
                : tes.getFirst().width();
        if (unet.contextDim() != textWidth) {
            throw new ModelFormatException(where + ": the UNet's context dim " + unet.contextDim()
                    + " does not match the text encoder output width " + textWidth + " of a " + family + " checkpoint");
        }
        if ((family == Family.SDXL) != (unet.admInChannels() > 0)) {
            throw new ModelFormatException(where + ": " + family + " text encoders but a UNet "
                    + (unet.admInChannels() > 0 ? "with" : "without") + " SDXL size conditioning (label_emb)");
        }
        // in channels may exceed the latent's (inpainting: latent + mask + masked latent = 9), the output may not
        if (unet.outChannels() != vae.latentChannels()) {
            throw new ModelFormatException(where + ": the UNet outputs " + unet.outChannels() + " latent channels but the VAE has "
                    + vae.latentChannels());
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // SD3 / SD3.5 (an MMDiT instead of a UNet, text encoders under text_encoders.*)

    /** Whether a single file is an SD3 / SD3.5 checkpoint (ComfyUI's test: an MMDiT joint block's context qkv). */
    public static boolean isSd3(jdiffusion.io.SafeTensors file) {
        return jdiffusion.model.mmdit.Sd3Config.isSd3(file);
    }

    /** The SD3 checkpoint's family, MMDiT / VAE / text encoder numbers and parameter counts, from the header. */
    public static jdiffusion.model.mmdit.Sd3Config detectSd3(jdiffusion.io.SafeTensors file)
            throws ModelFormatException {
        return jdiffusion.model.mmdit.Sd3Config.detect(file);
    }

    // ---------------------------------------------------------------------------------------------------------
    // UNet

    private enum Kind { RES, DOWN, OTHER }

    /** The LDM UNet's numbers from its canonical names ({@code input_blocks.N...}, no file prefix). */
    public static UNetSpec detectUnet(Weights w, String where) throws ModelFormatException {
        int[] convIn = need(w, "input_blocks.0.0.weight", where, 4);
        int modelChannels = convIn[0];
        int inChannels = convIn[1];
        int outChannels = need(w, "out.2.weight", where, 4)[0];
        int timeEmbedDim = need(w, "time_embed.0.weight", where, 2)[0];
        int adm = w.has("label_emb.0.0.weight") ? w.shape("label_emb.0.0.weight")[1] : 0;

        List<Integer> mult = new ArrayList<>();
        List<Integer> depth = new ArrayList<>();
        List<Integer> resPerLevel = new ArrayList<>();
        int blocks = countBlocks(w, "input_blocks.", where);
        int res = 0;
        int levelDepth = 0;
        int levelChannels = modelChannels;
        for (int n = 1; n < blocks; n++) {
            String b = "input_blocks." + n;
            Kind kind = w.has(b + ".0.op.weight") ? Kind.DOWN : w.has(b + ".0.in_layers.2.weight") ? Kind.RES : Kind.OTHER;
            if (kind == Kind.OTHER) {
                throw new ModelFormatException(where + ": UNet block " + b + " is neither a res block nor a downsampler");
            }
            if (kind == Kind.DOWN) {
                closeLevel(mult, depth, resPerLevel, levelChannels, modelChannels, res, levelDepth, where);
                res = 0;
                levelDepth = 0;
                continue;
            }
            res++;
            levelChannels = w.shape(b + ".0.in_layers.2.weight")[0];
            levelDepth = Math.max(levelDepth, transformerDepth(w, b + ".1."));
        }
        closeLevel(mult, depth, resPerLevel, levelChannels, modelChannels, res, levelDepth, where);
        int numRes = resPerLevel.getFirst();
        if (resPerLevel.stream().anyMatch(r -> r != numRes)) {
            throw new ModelFormatException(where + ": UNet levels have different res block counts " + resPerLevel);
        }
        int middle = transformerDepth(w, "middle_block.1.");
        List<Integer> outDepth = new ArrayList<>();
        int outBlocks = countBlocks(w, "output_blocks.", where);
        for (int n = 0; n < outBlocks; n++) {
            outDepth.add(transformerDepth(w, "output_blocks." + n + ".1."));
        }
        if (outBlocks != mult.size() * (numRes + 1)) {
            throw new ModelFormatException(where + ": UNet has " + outBlocks + " output blocks, expected "
                    + mult.size() * (numRes + 1) + " for " + mult.size() + " levels of " + numRes + " res blocks");
        }
        String projIn = firstMatching(w, ".proj_in.weight");
        String toK = firstMatching(w, ".attn2.to_k.weight");
        if (projIn == null || toK == null) {
            throw new ModelFormatException(where + ": UNet has no cross-attention transformer (no proj_in / attn2.to_k)");
        }
        boolean linear = w.shape(projIn).length == 2;
        int contextDim = w.shape(toK)[1];
        return new UNetSpec(inChannels, outChannels, modelChannels, mult, numRes, depth, middle, outDepth, contextDim,
                linear, linear ? -1 : SD1_HEADS, linear ? HEAD_DIM : -1, adm, timeEmbedDim);
    }

    private static void closeLevel(List<Integer> mult, List<Integer> depth, List<Integer> resPerLevel, int channels,
                                   int modelChannels, int res, int levelDepth, String where) throws ModelFormatException {
        if (res == 0) {
            throw new ModelFormatException(where + ": UNet level " + mult.size() + " has no res blocks");
        }
        if (channels % modelChannels != 0) {
            throw new ModelFormatException(where + ": UNet level " + mult.size() + " has " + channels
                    + " channels, not a multiple of the model channels " + modelChannels);
        }
        mult.add(channels / modelChannels);
        depth.add(levelDepth);
        resPerLevel.add(res);
    }

    /** Transformer blocks under a SpatialTransformer prefix (0 when there is none). */
    private static int transformerDepth(Weights w, String prefix) {
        if (!w.has(prefix + "proj_in.weight")) {
            return 0;
        }
        return countIndices(w.names(), prefix + "transformer_blocks.");
    }

    /** Blocks prefix0 .. prefixN-1; a gap in the numbering is a damaged file. */
    private static int countBlocks(Weights w, String prefix, String where) throws ModelFormatException {
        TreeSet<Integer> seen = indices(w.names(), prefix);
        if (!seen.isEmpty() && seen.last() + 1 != seen.size()) {
            throw new ModelFormatException(where + ": UNet " + prefix + "* numbering has gaps " + seen);
        }
        return seen.size();
    }

    private static String firstMatching(Weights w, String suffix) {
        return w.names().stream().filter(n -> n.endsWith(suffix)).sorted().findFirst().orElse(null);
    }

    // ---------------------------------------------------------------------------------------------------------
    // VAE

    /** AutoencoderKL numbers from LDM names ({@code encoder.down.N.block.M...}). */
    public static VaeSpec detectVae(Weights w, String where) throws ModelFormatException {
        int[] convIn = need(w, "encoder.conv_in.weight", where, 4);
        int base = convIn[0];
        int levels = countIndices(w.names(), "encoder.down.");
        List<Integer> mult = new ArrayList<>();
        for (int l = 0; l < levels; l++) {
            int ch = need(w, "encoder.down." + l + ".block.0.conv2.weight", where, 4)[0];
            mult.add(ch / base);
        }
        int res = countIndices(w.names(), "encoder.down.0.block.");
        int decRes = countIndices(w.names(), "decoder.up.0.block.");
        int latent = need(w, "decoder.conv_in.weight", where, 4)[1];
        return new VaeSpec(base, mult, res, decRes, latent, convIn[1]);
    }

    // ---------------------------------------------------------------------------------------------------------
    // text encoders

    /** A text encoder's numbers from its raw names (HF CLIP or OpenCLIP layout, without the file prefix). */
    public static TextEncoderSpec detectTextEncoder(String name, TextLayout layout, Weights w, String where)
            throws ModelFormatException {
        return switch (layout) {
            case HF_CLIP -> {
                int[] tok = need(w, "text_model.embeddings.token_embedding.weight", where, 2);
                int[] pos = need(w, "text_model.embeddings.position_embedding.weight", where, 2);
                int layers = countIndices(w.names(), "text_model.encoder.layers.");
                int mlp = need(w, "text_model.encoder.layers.0.mlp.fc1.weight", where, 2)[0];
                int proj = w.has("text_projection.weight") ? w.shape("text_projection.weight")[0] : 0;
                yield new TextEncoderSpec(name, layout, tok[1], layers, tok[1] / HEAD_DIM, mlp, tok[0], pos[0], proj,
                        w.has("text_model.embeddings.position_ids"), "quick_gelu");
            }
            case OPEN_CLIP -> {
                int[] tok = need(w, "token_embedding.weight", where, 2);
                int[] pos = need(w, "positional_embedding", where, 2);
                int layers = countIndices(w.names(), "transformer.resblocks.");
                int mlp = need(w, "transformer.resblocks.0.mlp.c_fc.weight", where, 2)[0];
                int proj = w.has("text_projection") ? w.shape("text_projection")[1] : 0;
                yield new TextEncoderSpec(name, layout, tok[1], layers, tok[1] / HEAD_DIM, mlp, tok[0], pos[0], proj,
                        false, "gelu");
            }
        };
    }

    // ---------------------------------------------------------------------------------------------------------
    // stats

    private static List<ComponentStats> stats(Checkpoint ckpt) {
        Map<String, MappedWeights> parts = new LinkedHashMap<>();
        parts.put("unet", ckpt.unet());
        parts.put("vae", ckpt.vae());
        for (Checkpoint.TextEncoderPart te : ckpt.textEncoderParts()) {
            parts.put(te.slot().name(), te.raw());
        }
        List<ComponentStats> out = new ArrayList<>();
        for (Map.Entry<String, MappedWeights> e : parts.entrySet()) {
            List<TensorInfo> infos = new ArrayList<>();
            for (String n : e.getValue().names()) {
                infos.add(e.getValue().info(n));
            }
            out.add(stats(e.getKey(), infos));
        }
        List<TensorInfo> other = ckpt.unusedTensors();
        if (!other.isEmpty()) {
            out.add(stats("other", other));
        }
        return out;
    }

    /** Parameters are the elements of float tensors; integer buffers (position_ids) count only as bytes. */
    public static ComponentStats stats(String component, List<TensorInfo> infos) {
        long params = 0;
        long bytes = 0;
        Map<DType, Long> byDtype = new EnumMap<>(DType.class);
        for (TensorInfo t : infos) {
            bytes += t.end() - t.begin();
            if (t.dtype().isFloat()) {
                params += t.numel();
                byDtype.merge(t.dtype(), t.numel(), Long::sum);
            }
        }
        DType main = byDtype.entrySet().stream().max(Map.Entry.comparingByValue()).map(Map.Entry::getKey).orElse(null);
        return new ComponentStats(component, params, bytes, main, infos.size());
    }

    // ---------------------------------------------------------------------------------------------------------

    private static int[] need(Weights w, String name, String where, int rank) throws ModelFormatException {
        if (!w.has(name)) {
            throw new ModelFormatException(where + ": missing tensor '" + name + "'");
        }
        int[] s = w.shape(name);
        if (s.length != rank) {
            throw new ModelFormatException(where + ": tensor '" + name + "' has shape " + Arrays.toString(s) + ", expected rank " + rank);
        }
        return s;
    }

    static int countIndices(Set<String> names, String prefix) {
        return indices(names, prefix).size();
    }

    private static TreeSet<Integer> indices(Set<String> names, String prefix) {
        TreeSet<Integer> seen = new TreeSet<>();
        for (String n : names) {
            if (n.startsWith(prefix)) {
                String rest = n.substring(prefix.length());
                int dot = rest.indexOf('.');
                String idx = dot < 0 ? rest : rest.substring(0, dot);
                if (!idx.isEmpty() && idx.length() < 6 && idx.chars().allMatch(Character::isDigit)) {
                    seen.add(Integer.parseInt(idx));
                }
            }
        }
        return seen;
    }
}
