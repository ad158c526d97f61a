package jdiffusion.pipeline;

import java.util.ArrayList;
import java.util.List;
import jdiffusion.io.Checkpoint;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.OpenClipWeights;
import jdiffusion.io.Weights;
import jdiffusion.lora.LoraStack;
import jdiffusion.lora.ModelComponents;
import jdiffusion.model.Conditioning;
import jdiffusion.model.Family;
import jdiffusion.model.ModelConfig;
import jdiffusion.model.TextConditioner;
import jdiffusion.model.UNet;
import jdiffusion.model.Vae;
import jdiffusion.sampling.PredictionType;

/**
 * {@link PipelineModels} over a single-file checkpoint ({@link Checkpoint}: layouts, family, prediction hint): UNet,
 * VAE and text encoders read through {@link Weights}, optionally with the UNet or VAE from another file and LoRAs
 * applied to the UNet and text encoders. Files stay mapped until {@link #close()}.
 */
final class CheckpointModels implements PipelineModels {
    private final List<AutoCloseable> open;
    private final Family family;
    /** Set for a single generation: stages free their models when done (see {@link #oneShot}). */
    private boolean oneShot;
    /** Null once freed ({@link #samplingDone}). */
    private UNet unet;
    private final Vae vae;
    /** Null once freed ({@link #textEncodingDone}). */
    private TextConditioner text;
    private final PredictionType prediction;
    private final double latentScale;

    private CheckpointModels(List<AutoCloseable> open, Family family, UNet unet, Vae vae,
            TextConditioner text, PredictionType prediction, double latentScale) {
        this.open = open;
        this.family = family;
        this.unet = unet;
        this.vae = vae;
        this.text = text;
        this.prediction = prediction;
        this.latentScale = latentScale;
    }

    /** Loads what the request names; every problem is a one-line {@link GenerateException}. */
    static CheckpointModels load(GenerateRequest r) {
        List<AutoCloseable> open = new ArrayList<>();
        try {
            Checkpoint ckpt = Checkpoint.open(r.model());
            open.add(ckpt);
            if (r.unet() != null) {
                ckpt = ckpt.withUnet(r.unet()); // maps a diffusers-layout UNet, checks every tensor's shape
                open.add(ckpt);
            }
            if (r.vae() != null) {
                ckpt = ckpt.withVae(r.vae()); // LDM (prefixed or bare) or diffusers AutoencoderKL, shapes checked
                open.add(ckpt);
            }
            Family family = ckpt.family();
            Weights unetWeights = ckpt.unet();
            List<Weights> te = ckpt.textEncoders();
            if (!r.loras().isEmpty()) {
                // OpenCLIP towers are patched in their raw (fused in_proj) layout and presented again as OpenCLIP,
                // which is also how the encoder knows to use exact GELU
                List<Weights> raw = te.stream().map(w -> w instanceof OpenClipWeights o ? o.raw() : w).toList();
                ModelComponents patched = applyLoras(r, unetWeights, raw, open);
                unetWeights = patched.unet();
                List<Weights> out = new ArrayList<>();
                for (int i = 0; i < te.size(); i++) {
                    Weights w = i == 0 ? patched.te1() : patched.te2();
                    out.add(te.get(i) instanceof OpenClipWeights ? OpenClipWeights.of(w) : w);
                }
                te = out;
            }
            // each model copies (packs) its weights at load: the mapped pages it read need not stay resident, and
            // dropping them after each model keeps the mapped file and all the packed copies from adding up
            UNet unet = UNet.load(unetWeights);
            Checkpoint.releaseResidentPages(open);
            Vae vae = Vae.load(ckpt.vae());
            Checkpoint.releaseResidentPages(open);
            TextConditioner text = TextConditioner.of(family, te);
            if (r.embeddings() != null) {
                text = text.withEmbeddings(jdiffusion.text.Embeddings.folder(r.embeddings()).a1111Names(r.a1111Embeddings()));
            }
            Checkpoint.releaseResidentPages(open);
            // a --unet file's name or metadata (SDXL-Lightning 1-step x0) speaks for the UNet before the checkpoint
            PredictionType prediction = PredictionHint.of(r.model(), ckpt.metadata(), r.unet(),
                            r.unet() == null ? null : ckpt.unet().file().metadata()).map(PredictionHint::prediction)
                    .orElse(ckpt.config().prediction() == ModelConfig.Prediction.V ? PredictionType.V : PredictionType.EPS);
            HeapBudget.fit();
            return new CheckpointModels(open, family, unet, vae, text, prediction, ckpt.family().latentScale());
        } catch (ModelFormatException | RuntimeException e) {
            closeAll(open);
            if (e instanceof GenerateException g) {
                throw g;
            }
            throw new GenerateException(e.getMessage() == null ? e.toString() : e.getMessage(), e);
        }
    }

    private static ModelComponents applyLoras(GenerateRequest r, Weights unet, List<Weights> te,
            List<AutoCloseable> open) throws ModelFormatException {
        List<jdiffusion.lora.LoraSpec> specs = new ArrayList<>();
        for (GenerateRequest.LoraSpec l : r.loras()) {
            specs.add(new jdiffusion.lora.LoraSpec(l.file(), (float) l.strength(), (float) l.clipStrength()));
        }
        LoraStack stack = LoraStack.load(new ModelComponents(unet, te.get(0), te.size() > 1 ? te.get(1) : null), specs);
        open.add(stack);
        return stack.weights();
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
        return latentScale;
    }

    /** Marks these models as serving a single generation, so each stage's model is freed once it is done. */
    CheckpointModels oneShot() {
        oneShot = true;
        return this;
    }

    /** One-shot models ({@link Pipeline#generate}) let the text encoders go; models kept for reuse keep them. */
    @Override
    public void textEncodingDone() {
        if (oneShot) {
            text = null;
            HeapBudget.collectFreed();
        }
    }

    @Override
    public void samplingDone() {
        if (oneShot) {
            unet = null;
            HeapBudget.collectFreed();
        }
    }

    @Override
    public TextCond encodeText(String prompt, int clipSkip) {
        if (text == null) {
            throw new IllegalStateException("the text encoders were freed after this generation's encoding");
        }
        TextConditioner t;
        try {
            t = clipSkip == 1 ? text : text.withClipSkip(clipSkip);
        } catch (IllegalArgumentException e) {
            throw new GenerateException(e.getMessage());
        }
        Conditioning c;
        try {
            c = t.encode(prompt);
        } catch (IllegalArgumentException e) {
            throw new GenerateException(e.getMessage());
        }
        return new TextCond(c.context(), c.tokens(), c.dim(), c.pooled());
    }

    @Override
    public float[] unet(float[] x, int batch, int h, int w, float[] timesteps, float[] context, int tokens, float[] y) {
        if (unet == null) {
            throw new IllegalStateException("the UNet was freed after this generation's sampling");
        }
        return unet.forward(x, batch, h, w, timesteps, context, tokens, y);
    }

    @Override
    public float[] unet(float[] x, int batch, int h, int w, float[] timesteps, float[] context, int tokens, float[] y,
            jdiffusion.model.ControlResiduals control) {
        if (unet == null) {
            throw new IllegalStateException("the UNet was freed after this generation's sampling");
        }
        return unet.forwardWithControl(x, batch, h, w, timesteps, context, tokens, y, control);
    }

    @Override
    public int unetInChannels() {
        if (unet == null) {
            throw new IllegalStateException("the UNet was freed after this generation's sampling");
        }
        return unet.config().inChannels();
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
