package jdiffusion.pipeline;

import java.util.function.Function;
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
    private final Vae vae;
    private Function<String, TextCond> text;
    private final AutoCloseable resources;
    private boolean oneShot;

    /**
     * @param text      prompt to conditioning, or null when these models only sample from given conditioning
     * @param resources closed with these models (mapped files), or null
     */
    public Sd3Models(MMDiT mmdit, Vae vae, Function<String, TextCond> text, AutoCloseable resources) {
        this.mmdit = mmdit;
        this.vae = vae;
        this.text = text;
        this.resources = resources;
    }

    /** Marks these models as serving a single generation: the text encoders and the MMDiT are let go when done. */
    public Sd3Models oneShot() {
        oneShot = true;
        return this;
    }

    public MMDiT mmdit() {
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
    public int latentChannels() {
        return vae.latentChannels();
    }

    @Override
    public TextCond encodeText(String prompt, int clipSkip) {
        if (text == null) {
            throw new GenerateException("no SD3 text encoders are loaded");
        }
        return text.apply(prompt);
    }

    @Override
    public void textEncodingDone() {
        if (oneShot) {
            text = null;
        }
    }

    @Override
    public void samplingDone() {
        if (oneShot) {
            mmdit = null;
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
        if (resources != null) {
            try {
                resources.close();
            } catch (Exception e) {
                throw new IllegalStateException("closing SD3 models: " + e.getMessage(), e);
            }
        }
    }
}
