package jdiffusion.model.mmdit;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import jdiffusion.io.CheckpointLayouts.TextLayout;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.TensorInfo;
import jdiffusion.io.Weights;
import jdiffusion.model.Family;
import jdiffusion.model.ModelConfig.ComponentStats;
import jdiffusion.model.ModelConfig.TextEncoderSpec;
import jdiffusion.model.ModelConfig.VaeSpec;
import jdiffusion.model.ModelDetector;

/**
 * What a Stability single-file SD3 / SD3.5 checkpoint holds, from its header alone: the MMDiT
 * ({@code model.diffusion_model.*}), the 16-channel VAE ({@code first_stage_model.*}, absent in some files) and
 * whichever text encoders it includes ({@code text_encoders.clip_l|clip_g|t5xxl.transformer.*}), with parameter
 * counts per component.
 *
 * @param t5 null when the file has no T5 (sd3.5_medium.safetensors ships without text encoders)
 */
public record Sd3Config(Family family, MMDiTConfig mmdit, VaeSpec vae, List<TextEncoderSpec> clips, T5Spec t5,
                        List<ComponentStats> components) {
    public static final String MMDIT_PREFIX = "model.diffusion_model.";
    public static final String VAE_PREFIX = "first_stage_model.";
    public static final String TEXT_PREFIX = "text_encoders.";
    /** The text encoder slots of SD3 files, in conditioning order. */
    public static final List<String> TEXT_ENCODERS = List.of("clip_l", "clip_g", "t5xxl");

    public Sd3Config {
        clips = List.copyOf(clips);
        components = List.copyOf(components);
    }

    /** T5 encoder numbers (HF names under {@code text_encoders.t5xxl.transformer.}). */
    public record T5Spec(int dModel, int layers, int heads, int dFf, int vocab) {
    }

    /** Whether the file holds an MMDiT under Stability's prefix (ComfyUI's test for SD3). */
    public static boolean isSd3(SafeTensors file) {
        return file.contains(MMDIT_PREFIX + MMDiTConfig.MARKER);
    }

    /** Reads the configuration; a file that is no SD3 checkpoint, or a damaged one, fails with one line. */
    public static Sd3Config detect(SafeTensors file) throws ModelFormatException {
        String where = file.path().toString();
        if (!isSd3(file)) {
            throw new ModelFormatException(where + ": not an SD3 checkpoint (no tensor '" + MMDIT_PREFIX
                    + MMDiTConfig.MARKER + "')");
        }
        MMDiTConfig mmdit;
        try {
            mmdit = MMDiTConfig.detect(Weights.prefixed(file, MMDIT_PREFIX));
        } catch (ModelFormatException e) {
            throw new ModelFormatException(where + ": " + e.getMessage(), e);
        }
        Weights vaeWeights = Weights.prefixed(file, VAE_PREFIX);
        VaeSpec vae = vaeWeights.names().isEmpty() ? null : ModelDetector.detectVae(vaeWeights, where);
        if (vae != null && vae.latentChannels() != mmdit.outChannels()) {
            throw new ModelFormatException(where + ": the MMDiT outputs " + mmdit.outChannels()
                    + " latent channels but the VAE has " + vae.latentChannels());
        }
        List<TextEncoderSpec> clips = new ArrayList<>();
        for (String name : List.of("clip_l", "clip_g")) {
            Weights w = Weights.prefixed(file, TEXT_PREFIX + name + ".transformer.");
            if (w.has("text_model.embeddings.token_embedding.weight")) {
                clips.add(ModelDetector.detectTextEncoder(name, TextLayout.HF_CLIP, w, where));
            }
        }
        T5Spec t5 = detectT5(Weights.prefixed(file, TEXT_PREFIX + "t5xxl.transformer."), where);
        return new Sd3Config(Family.SD3, mmdit, vae, clips, t5, stats(file));
    }

    private static T5Spec detectT5(Weights w, String where) throws ModelFormatException {
        if (!w.has("shared.weight")) {
            return null;
        }
        int[] shared = w.shape("shared.weight");
        int layers = 0;
        while (w.has("encoder.block." + layers + ".layer.0.SelfAttention.q.weight")) {
            layers++;
        }
        String bias = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight";
        String wi = "encoder.block.0.layer.1.DenseReluDense.wi_0.weight";
        if (shared.length != 2 || layers == 0 || !w.has(bias) || !w.has(wi)) {
            throw new ModelFormatException(where + ": the T5 encoder under " + TEXT_PREFIX
                    + "t5xxl.transformer. is incomplete (shared " + Arrays.toString(shared) + ", " + layers
                    + " blocks)");
        }
        return new T5Spec(shared[1], layers, w.shape(bias)[1], w.shape(wi)[0], shared[0]);
    }

    private static List<ComponentStats> stats(SafeTensors file) {
        Map<String, List<TensorInfo>> parts = new LinkedHashMap<>();
        parts.put("mmdit", new ArrayList<>());
        parts.put("vae", new ArrayList<>());
        for (String te : TEXT_ENCODERS) {
            parts.put(te, new ArrayList<>());
        }
        parts.put("other", new ArrayList<>());
        for (String n : file.names()) {
            String part = n.startsWith(MMDIT_PREFIX) ? "mmdit" : n.startsWith(VAE_PREFIX) ? "vae" : "other";
            for (String te : TEXT_ENCODERS) {
                if (n.startsWith(TEXT_PREFIX + te + ".")) {
                    part = te;
                }
            }
            parts.get(part).add(file.info(n));
        }
        List<ComponentStats> out = new ArrayList<>();
        parts.forEach((k, v) -> {
            if (!v.isEmpty()) {
                out.add(ModelDetector.stats(k, v));
            }
        });
        return out;
    }

    /** The MMDiT's parameter count. */
    public long mmditParameters() {
        return components.stream().filter(c -> c.component().equals("mmdit")).mapToLong(ComponentStats::parameters)
                .sum();
    }

    /** Human-readable lines for {@code info}. */
    public List<String> describe() {
        List<String> lines = new ArrayList<>();
        MMDiTConfig m = mmdit;
        lines.add(String.format(java.util.Locale.ROOT, "mmdit: %s, %d joint blocks, hidden %d, %d heads of %d, patch %d,"
                        + " pos_embed %dx%d, context %d, pooled %d, MLP %d, qk norm %s, dual attention blocks %s,"
                        + " in/out channels %d/%d, %,d parameters",
                m.variant(), m.depth(), m.hidden(), m.heads(), MMDiTConfig.HEAD_DIM, m.patch(), m.posEmbedMaxSize(),
                m.posEmbedMaxSize(), m.contextIn(), m.admIn(), m.mlpHidden(), m.qkNorm() ? "rms" : "none",
                m.dualAttentionBlocks(), m.inChannels(), m.outChannels(), mmditParameters()));
        if (vae != null) {
            lines.add(String.format(java.util.Locale.ROOT, "vae:  base channels %d, channel mult %s, %d res blocks, "
                            + "latent channels %d, scale %s, shift %s", vae.baseChannels(), vae.channelMult(),
                    vae.numResBlocks(), vae.latentChannels(), family.latentFormat().scale(),
                    family.latentFormat().shift()));
        } else {
            lines.add("vae:  none in this file");
        }
        for (TextEncoderSpec t : clips) {
            lines.add(String.format(java.util.Locale.ROOT, "%s: CLIP (HF), width %d, %d layers, MLP %d, vocab %d%s",
                    t.name(), t.width(), t.layers(), t.mlpWidth(), t.vocab(),
                    t.projectionDim() > 0 ? ", projection " + t.projectionDim() : ""));
        }
        if (t5 != null) {
            lines.add(String.format(java.util.Locale.ROOT, "t5xxl: T5 encoder, d_model %d, %d blocks, %d heads, "
                    + "d_ff %d, vocab %d", t5.dModel(), t5.layers(), t5.heads(), t5.dFf(), t5.vocab()));
        }
        if (clips.size() < 2 || t5 == null) {
            lines.add("text encoders not in this file: " + TEXT_ENCODERS.stream()
                    .filter(n -> clips.stream().noneMatch(c -> c.name().equals(n)) && !(n.equals("t5xxl")
                            && t5 != null)).toList() + " (load them separately)");
        }
        return lines;
    }
}
