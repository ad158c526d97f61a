package jdiffusion.pipeline;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;
import java.util.function.Supplier;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import jdiffusion.model.Conditioning;
import jdiffusion.model.Sd3TextConditioner;
import jdiffusion.model.mmdit.Sd3Config;
import jdiffusion.model.t5.T5Encoder;
import jdiffusion.model.Family;
import jdiffusion.model.Vae;
import jdiffusion.model.mmdit.MMDiT;
import jdiffusion.sampling.PredictionType;

/**
 * {@link PipelineModels} for SD3 / SD3.5: the MMDiT stands where the UNet does (its y is the pooled text
 * embedding), the 16-channel VAE with SD3's latent format, flow (velocity) prediction, and the SD3 text conditioning
 * (CLIP-L + CLIP-G [+ T5]) as a function from prompt to {@link TextCond} (context [tokens x 4096], pooled [2048]).
 */
public final class Sd3Models implements PipelineModels {
    private MMDiT mmdit;
    /** Loads the MMDiT when sampling starts (after the text encoders are gone), or null. */
    private Supplier<MMDiT> mmditLoader;
    private final Vae vae;
    private Function<String, TextCond> text;
    /** Prompt to conditioning under ComfyUI's conventions (CLIPTextEncode), or null: the same as text. */
    private Function<String, TextCond> comfyText;
    private Runnable freeText;
    private final List<AutoCloseable> resources;
    private boolean oneShot;
    private double shift = 3.0;

    /**
     * @param text      prompt to conditioning, or null when these models only sample from given conditioning
     * @param resources closed with these models (mapped files), or null
     */
    public Sd3Models(MMDiT mmdit, Vae vae, Function<String, TextCond> text, AutoCloseable resources) {
        this.mmdit = mmdit;
        this.vae = vae;
        this.text = text;
        this.resources = resources == null ? List.of() : List.of(resources);
    }

    private Sd3Models(Supplier<MMDiT> mmditLoader, Vae vae, Function<String, TextCond> text,
                      Function<String, TextCond> comfyText, Runnable freeText, List<AutoCloseable> resources) {
        this.mmditLoader = mmditLoader;
        this.vae = vae;
        this.text = text;
        this.comfyText = comfyText;
        this.freeText = freeText;
        this.resources = resources;
    }

    /** Whether a file is an SD3 / SD3.5 checkpoint (read from its header). */
    public static boolean isSd3File(Path file) {
        try (SafeTensors f = SafeTensors.open(file)) {
            return Sd3Config.isSd3(f);
        } catch (ModelFormatException | RuntimeException e) {
            return false;
        }
    }

    /**
     * The models of an SD3 / SD3.5 request: the checkpoint's MMDiT and VAE, CLIP-L / CLIP-G from the checkpoint or
     * the request's files, T5 from the checkpoint or {@code --t5} (or none). Text encoders load at the first
     * prompt; the MMDiT loads when sampling starts, so with one-shot models the T5 is freed before it is packed.
     */
    public static Sd3Models load(GenerateRequest r) {
        List<AutoCloseable> open = new ArrayList<>();
        try {
            // the MMDiT, VAE and text encoders come from the SD3 file and the text encoder flags only
            String unsupported = r.unet() != null ? "--unet " + r.unet().getFileName()
                    : r.vae() != null ? "--vae " + r.vae().getFileName()
                    : !r.loras().isEmpty() ? "LoRA " + r.loras().getFirst().file().getFileName() : null;
            if (unsupported != null) {
                throw new GenerateException(unsupported + ": not supported with an SD3 / SD3.5 checkpoint yet"
                        + " (its MMDiT and VAE come from " + r.model().getFileName() + "; text encoders from it or"
                        + " --clip-l / --clip-g / --t5)");
            }
            GenerateRequest.Sd3Options o = r.sd3();
            SafeTensors ckpt = SafeTensors.open(r.model());
            open.add(ckpt);
            Sd3Config config = Sd3Config.detect(ckpt);
            if (config.vae() == null) {
                throw new GenerateException(r.model() + ": no VAE (" + Sd3Config.VAE_PREFIX + "*) in this SD3 file");
            }
            Vae vae = Vae.load(Weights.prefixed(ckpt, Sd3Config.VAE_PREFIX));
            Weights clipL = clipWeights(ckpt, o.clipL(), "clip_l", open);
            Weights clipG = clipWeights(ckpt, o.clipG(), "clip_g", open);
            SafeTensors t5File = null;
            if (o.t5() != null && !o.noT5()) {
                t5File = SafeTensors.open(o.t5());
                open.add(t5File);
                if (T5Encoder.prefixIn(t5File) == null) {
                    throw new GenerateException(o.t5() + ": no T5 encoder in this file");
                }
            }
            SafeTensors t5Source = o.noT5() ? null : t5File != null ? t5File
                    : T5Encoder.prefixIn(ckpt) != null ? ckpt : null;
            Sd3TextConditioner.Options options = new Sd3TextConditioner.Options(o.clipLHeads(), o.clipGHeads(),
                    t5Source == null ? config.mmdit().contextIn() : 0);
            int maxLength = o.maxSequenceLengthOrDefault();
            Sd3TextConditioner[] conditioner = new Sd3TextConditioner[1];
            Supplier<Sd3TextConditioner> get = () -> {
                if (conditioner[0] == null) {
                    conditioner[0] = Sd3TextConditioner.of(clipL, clipG, t5Source == null ? null
                            : T5Encoder.weights(t5Source), options);
                    if (conditioner[0].width() != config.mmdit().contextIn()) {
                        throw new GenerateException("the text encoders give " + conditioner[0].width()
                                + "-wide context rows but the MMDiT takes " + config.mmdit().contextIn());
                    }
                }
                return conditioner[0];
            };
            Function<String, TextCond> diffusers = p -> toTextCond(get.get().encode(p, maxLength));
            Function<String, TextCond> comfy = p -> toTextCond(get.get().encodeComfy(p));
            Runnable free = () -> {
                if (conditioner[0] != null) {
                    conditioner[0].close();
                    conditioner[0] = null;
                }
                releasePages(open);
            };
            Supplier<MMDiT> mmdit = () -> {
                try {
                    MMDiT m = MMDiT.load(Weights.prefixed(ckpt, Sd3Config.MMDIT_PREFIX));
                    releasePages(open);
                    return m;
                } catch (ModelFormatException e) {
                    throw new GenerateException(e.getMessage(), e);
                }
            };
            Sd3Models models = new Sd3Models(mmdit, vae, diffusers, comfy, free, open);
            models.shift = o.shiftOrDefault();
            return models;
        } catch (ModelFormatException | RuntimeException e) {
            closeAll(open);
            if (e instanceof GenerateException g) {
                throw g;
            }
            throw new GenerateException(e.getMessage() == null ? e.toString() : e.getMessage(), e);
        }
    }

    /** CLIP weights (HF names) from a separate file when given, else from the checkpoint's text_encoders.*. */
    private static Weights clipWeights(SafeTensors ckpt, Path file, String name, List<AutoCloseable> open)
            throws ModelFormatException {
        String marker = "text_model.embeddings.token_embedding.weight";
        SafeTensors source = ckpt;
        if (file != null) {
            source = SafeTensors.open(file);
            open.add(source);
        }
        for (String n : source.names()) {
            if (n.endsWith(marker) && (file != null || n.startsWith(Sd3Config.TEXT_PREFIX + name + "."))) {
                return Weights.prefixed(source, n.substring(0, n.length() - marker.length()));
            }
        }
        throw new GenerateException((file != null ? file : ckpt.path()) + ": no " + name + " text encoder ("
                + (file != null ? "*" : Sd3Config.TEXT_PREFIX + name + ".transformer.") + marker
                + "); give its file (" + name + ".safetensors)");
    }

    private static TextCond toTextCond(Conditioning c) {
        return new TextCond(c.context(), c.tokens(), c.dim(), c.pooled());
    }

    private static void releasePages(List<AutoCloseable> open) {
        for (AutoCloseable a : open) {
            if (a instanceof SafeTensors f) {
                f.releaseResidentPages();
            }
        }
    }

    private static void closeAll(List<AutoCloseable> open) {
        for (int i = open.size() - 1; i >= 0; i--) {
            try {
                open.get(i).close();
            } catch (Exception ignored) {
                // closing after a failure: the failure is what gets reported
            }
        }
    }

    /** Marks these models as serving a single generation: the text encoders and the MMDiT are let go when done. */
    public Sd3Models oneShot() {
        oneShot = true;
        return this;
    }

    public synchronized MMDiT mmdit() {
        if (mmdit == null && mmditLoader != null) {
            mmdit = mmditLoader.get();
        }
        if (mmdit == null) {
            throw new IllegalStateException("the MMDiT was already freed (one-shot models)");
        }
        return mmdit;
    }

    public Vae vae() {
        return vae;
    }

    @Override
    public String family() {
        return Family.SD3.name();
    }

    @Override
    public PredictionType detectedPrediction() {
        return PredictionType.FLOW;
    }

    @Override
    public double latentScale() {
        return Family.SD3.latentFormat().scale();
    }

    @Override
    public double latentShift() {
        return Family.SD3.latentFormat().shift();
    }

    @Override
    public double flowShift() {
        return shift;
    }

    /** The same models sampling with another flow shift (ModelSamplingSD3's shift). */
    public Sd3Models withShift(double newShift) {
        if (!(newShift > 0)) {
            throw new IllegalArgumentException("the flow shift must be positive, got " + newShift);
        }
        shift = newShift;
        return this;
    }

    @Override
    public int latentChannels() {
        return vae != null ? vae.latentChannels() : mmdit().config().outChannels();
    }

    @Override
    public TextCond encodeText(String prompt, int clipSkip) {
        if (text == null) {
            throw new GenerateException("no SD3 text encoders are loaded");
        }
        return text.apply(prompt);
    }

    @Override
    public TextCond encodeText(String prompt, int clipSkip, boolean comfy) {
        if (comfy && comfyText != null) {
            return comfyText.apply(prompt);
        }
        return encodeText(prompt, clipSkip);
    }

    @Override
    public void textEncodingDone() {
        if (oneShot) {
            text = null;
            comfyText = null;
            if (freeText != null) {
                freeText.run();
            }
            HeapBudget.collectFreed();
        }
    }

    @Override
    public void samplingDone() {
        if (oneShot) {
            mmdit = null;
            mmditLoader = null;
            // the MMDiT read its weights from the mapping as it ran: drop those pages before the VAE decode
            if (resources != null) {
                releasePages(resources);
            }
            HeapBudget.collectFreed();
        }
    }

    @Override
    public float[] unet(float[] x, int batch, int h, int w, float[] timesteps, float[] context, int tokens,
                        float[] y) {
        return mmdit().forward(x, batch, h, w, timesteps, context, tokens, y);
    }

    @Override
    public float[] sdxlAdm(float[] pooled, int batch, int height, int width) {
        throw new UnsupportedOperationException("SD3 has no SDXL size conditioning");
    }

    @Override
    public float[] decode(float[] latent, int batch, int h, int w) {
        return vae.decode(latent, batch, h, w);
    }

    @Override
    public Moments encode(float[] image, int batch, int height, int width) {
        Vae.Posterior p = vae.encode(image, batch, height, width);
        return new Moments(p.mean(), p.std());
    }

    @Override
    public void close() {
        if (freeText != null) {
            freeText.run();
        }
        closeAll(resources);
    }
}
