package jdiffusion.pipeline;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import jdiffusion.lora.LoraStack;
import jdiffusion.lora.ModelComponents;
import jdiffusion.model.Conditioning;
import jdiffusion.model.TextConditioner;
import jdiffusion.model.UNet;
import jdiffusion.model.Vae;
import jdiffusion.sampling.PredictionType;

/**
 * {@link PipelineModels} over a single-file checkpoint: UNet, VAE and text encoders read through {@link Weights},
 * optionally with the VAE from another file and LoRAs applied to the UNet and text encoders. Files stay mapped
 * until {@link #close()}.
 */
final class CheckpointModels implements PipelineModels {
    private static final String UNET_PREFIX = "model.diffusion_model.";
    private static final String VAE_PREFIX = "first_stage_model.";

    private final List<AutoCloseable> open;
    private final TextConditioner.Family family;
    private final UNet unet;
    private final Vae vae;
    private final TextConditioner text;
    private final PredictionType prediction;

    private CheckpointModels(List<AutoCloseable> open, TextConditioner.Family family, UNet unet, Vae vae,
            TextConditioner text, PredictionType prediction) {
        this.open = open;
        this.family = family;
        this.unet = unet;
        this.vae = vae;
        this.text = text;
        this.prediction = prediction;
    }

    /** Loads what the request names; every problem is a one-line {@link GenerateException}. */
    static CheckpointModels load(GenerateRequest r) {
        List<AutoCloseable> open = new ArrayList<>();
        try {
            SafeTensors file = open(r.model(), open);
            TextConditioner.Family family = TextConditioner.detect(file);
            Weights unetWeights = unetWeights(file, r, open);
            List<Weights> te = TextConditioner.textEncoderWeights(file, family);
            if (!r.loras().isEmpty()) {
                ModelComponents patched = applyLoras(r, unetWeights, te, open);
                unetWeights = patched.unet();
                te = te.size() == 1 ? List.of(patched.te1()) : List.of(patched.te1(), patched.te2());
            }
            UNet unet = UNet.load(unetWeights);
            Vae vae = Vae.load(vaeWeights(file, r, open));
            TextConditioner text = TextConditioner.of(family, te);
            return new CheckpointModels(open, family, unet, vae, text, detectPrediction(file));
        } catch (ModelFormatException | RuntimeException e) {
            closeAll(open);
            if (e instanceof GenerateException g) {
                throw g;
            }
            throw new GenerateException(e.getMessage() == null ? e.toString() : e.getMessage(), e);
        }
    }

    private static SafeTensors open(Path p, List<AutoCloseable> open) throws ModelFormatException {
        SafeTensors f = SafeTensors.open(p);
        open.add(f);
        return f;
    }

    private static Weights unetWeights(SafeTensors file, GenerateRequest r, List<AutoCloseable> open)
            throws ModelFormatException {
        Weights base = Weights.prefixed(file, UNET_PREFIX);
        if (r.unet() == null) {
            if (base.names().isEmpty()) {
                throw new ModelFormatException(r.model() + ": no UNet tensors (" + UNET_PREFIX + "*)");
            }
            return base;
        }
        SafeTensors unetFile = open(r.unet(), open);
        Weights replacement = unetFile.names().stream().anyMatch(n -> n.startsWith(UNET_PREFIX))
                ? Weights.prefixed(unetFile, UNET_PREFIX) : Weights.prefixed(unetFile, "");
        if (!replacement.has("input_blocks.0.0.weight")) {
            throw new ModelFormatException(r.unet() + ": UNet file in diffusers layout; this build reads only the"
                    + " original (LDM) layout");
        }
        checkFits(base, replacement, r.unet());
        return replacement;
    }

    /** A replacement UNet must have the checkpoint's tensors with the same shapes (else the text side won't fit). */
    static void checkFits(Weights base, Weights replacement, Path where) throws ModelFormatException {
        for (String name : base.names()) {
            if (!replacement.has(name)) {
                throw new ModelFormatException(where + ": UNet does not fit the checkpoint: tensor " + name
                        + " is missing");
            }
            int[] a = base.shape(name);
            int[] b = replacement.shape(name);
            if (!java.util.Arrays.equals(a, b)) {
                throw new ModelFormatException(where + ": UNet does not fit the checkpoint: tensor " + name
                        + " has shape " + java.util.Arrays.toString(b) + ", the checkpoint's is "
                        + java.util.Arrays.toString(a));
            }
        }
    }

    private static Weights vaeWeights(SafeTensors file, GenerateRequest r, List<AutoCloseable> open)
            throws ModelFormatException {
        if (r.vae() == null) {
            return Weights.prefixed(file, VAE_PREFIX);
        }
        SafeTensors vaeFile = open(r.vae(), open);
        boolean prefixed = vaeFile.names().stream().anyMatch(n -> n.startsWith(VAE_PREFIX));
        Weights w = Weights.prefixed(vaeFile, prefixed ? VAE_PREFIX : "");
        if (!w.has("post_quant_conv.weight") || w.names().stream().noneMatch(n -> n.startsWith("decoder.up."))) {
            throw new ModelFormatException(r.vae() + ": not a VAE in the original (LDM) layout"
                    + " (expected post_quant_conv.* and decoder.up.*)");
        }
        return w;
    }

    private static ModelComponents applyLoras(GenerateRequest r, Weights unet, List<Weights> te,
            List<AutoCloseable> open) throws ModelFormatException {
        List<jdiffusion.lora.LoraSpec> specs = new ArrayList<>();
        for (GenerateRequest.LoraSpec l : r.loras()) {
            specs.add(new jdiffusion.lora.LoraSpec(l.file(), (float) l.strength(), (float) l.strength()));
        }
        LoraStack stack = LoraStack.load(new ModelComponents(unet, te.get(0), te.size() > 1 ? te.get(1) : null), specs);
        open.add(stack);
        return stack.weights();
    }

    /** v-prediction when the file says so: a {@code v_pred} key or prediction metadata; else eps. */
    private static PredictionType detectPrediction(SafeTensors file) {
        if (file.contains("v_pred")) {
            return PredictionType.V;
        }
        for (var e : file.metadata().entrySet()) {
            String k = e.getKey().toLowerCase(java.util.Locale.ROOT);
            String v = e.getValue().toLowerCase(java.util.Locale.ROOT);
            if (k.contains("prediction")) {
                if (v.startsWith("v")) {
                    return PredictionType.V;
                }
                if (v.equals("x0") || v.equals("sample")) {
                    return PredictionType.X0;
                }
            }
        }
        return PredictionType.EPS;
    }

    @Override
    public String family() {
        return family.name();
    }

    @Override
    public PredictionType detectedPrediction() {
        return prediction;
    }

    @Override
    public double latentScale() {
        return family == TextConditioner.Family.SDXL ? 0.13025 : 0.18215;
    }

    @Override
    public TextCond encodeText(String prompt, int clipSkip) {
        TextConditioner t;
        try {
            t = clipSkip == 1 ? text : text.withClipSkip(clipSkip);
        } catch (IllegalArgumentException e) {
            throw new GenerateException(e.getMessage());
        }
        Conditioning c = t.encode(prompt);
        return new TextCond(c.context(), c.tokens(), c.dim(), c.pooled());
    }

    @Override
    public float[] unet(float[] x, int batch, int h, int w, float[] timesteps, float[] context, int tokens, float[] y) {
        return unet.forward(x, batch, h, w, timesteps, context, tokens, y);
    }

    @Override
    public float[] sdxlAdm(float[] pooled, int batch, int height, int width) {
        return UNet.sdxlAdm(pooled, batch, height, width, 0, 0, height, width);
    }

    @Override
    public float[] decode(float[] latent, int batch, int h, int w) {
        return vae.decode(latent, batch, h, w);
    }

    @Override
    public Moments encode(float[] image, int batch, int height, int width) {
        if (!vae.canEncode()) {
            throw new GenerateException("the VAE has no encoder weights; img2img needs them");
        }
        Vae.Posterior p = vae.encode(image, batch, height, width);
        return new Moments(p.mean(), p.std());
    }

    @Override
    public void close() {
        closeAll(open);
    }

    private static void closeAll(List<AutoCloseable> open) {
        for (AutoCloseable c : open.reversed()) {
            try {
                c.close();
            } catch (Exception ignored) {
                // closing a mapped file cannot fail in a way the user could act on
            }
        }
        open.clear();
    }
}
