package jdiffusion.workflow;

import jdiffusion.model.UNet;
import jdiffusion.pipeline.PipelineModels;
import jdiffusion.pipeline.TextCond;
import jdiffusion.sampling.PredictionType;

/**
 * A loaded UNet seen as the pipeline's {@link PipelineModels}, so the pipeline's conditioned-UNet glue drives it.
 * Only the UNet side is here: in a workflow the text encoders and the VAE are separate values.
 */
final class LoadedUnet implements PipelineModels {
    private final UNet unet;
    private final String family;
    private final PredictionType prediction;

    LoadedUnet(UNet unet, String family, PredictionType prediction) {
        this.unet = unet;
        this.family = family;
        this.prediction = prediction;
    }

    @Override
    public String family() {
        return family;
    }

    @Override
    public PredictionType detectedPrediction() {
        return prediction;
    }

    @Override
    public double latentScale() {
        return isSdxl() ? 0.13025 : 0.18215;
    }

    @Override
    public float[] unet(float[] x, int batch, int h, int w, float[] timesteps, float[] context, int tokens, float[] y) {
        return unet.forward(x, batch, h, w, timesteps, context, tokens, y);
    }

    @Override
    public float[] unet(float[] x, int batch, int h, int w, float[] timesteps, float[] context, int tokens, float[] y,
            jdiffusion.model.ControlResiduals control) {
        return unet.forwardWithControl(x, batch, h, w, timesteps, context, tokens, y, control);
    }

    @Override
    public float[] sdxlAdm(float[] pooled, int batch, int height, int width) {
        return UNet.sdxlAdm(pooled, batch, height, width, 0, 0, height, width);
    }

    /** The same weights under another prediction type (ModelSamplingDiscrete), without reloading. */
    LoadedUnet withPrediction(PredictionType p) {
        return new LoadedUnet(unet, family, p);
    }

    /** conv_in's input channels: 4, or 9 for an inpainting UNet (latent + mask + masked-image latent). */
    int inChannels() {
        return unet.config().inChannels();
    }

    @Override
    public int unetInChannels() {
        return inChannels();
    }

    int contextDim() {
        return unet.config().contextDim();
    }

    @Override
    public TextCond encodeText(String prompt, int clipSkip) {
        throw new UnsupportedOperationException("a workflow MODEL has no text encoder; use CLIPTextEncode");
    }

    @Override
    public float[] decode(float[] latent, int batch, int h, int w) {
        throw new UnsupportedOperationException("a workflow MODEL has no VAE; use VAEDecode");
    }

    @Override
    public Moments encode(float[] image, int batch, int height, int width) {
        throw new UnsupportedOperationException("a workflow MODEL has no VAE; use VAEEncode");
    }
}
