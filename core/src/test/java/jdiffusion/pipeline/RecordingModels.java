package jdiffusion.pipeline;

import jdiffusion.sampling.PredictionType;

/** Passes everything to the real models and keeps the first UNet call's inputs and output, for golden checks. */
final class RecordingModels implements PipelineModels {
    private final PipelineModels inner;
    float[] firstX;
    float[] firstTimesteps;
    float[] firstContext;
    float[] firstY;
    float[] firstOut;
    int unetCalls;

    RecordingModels(PipelineModels inner) {
        this.inner = inner;
    }

    @Override
    public String family() {
        return inner.family();
    }

    @Override
    public PredictionType detectedPrediction() {
        return inner.detectedPrediction();
    }

    @Override
    public double latentScale() {
        return inner.latentScale();
    }

    @Override
    public double latentShift() {
        return inner.latentShift();
    }

    @Override
    public int latentChannels() {
        return inner.latentChannels();
    }

    @Override
    public double flowShift() {
        return inner.flowShift();
    }

    @Override
    public TextCond encodeText(String prompt, int clipSkip) {
        return inner.encodeText(prompt, clipSkip);
    }

    @Override
    public TextCond encodeText(String prompt, int clipSkip, boolean comfy) {
        return inner.encodeText(prompt, clipSkip, comfy);
    }

    @Override
    public void textEncodingDone() {
        inner.textEncodingDone();
    }

    @Override
    public float[] unet(float[] x, int batch, int h, int w, float[] timesteps, float[] context, int tokens, float[] y) {
        float[] out = inner.unet(x, batch, h, w, timesteps, context, tokens, y);
        if (unetCalls++ == 0) {
            firstX = x.clone();
            firstTimesteps = timesteps.clone();
            firstContext = context.clone();
            firstY = y == null ? null : y.clone();
            firstOut = out.clone();
        }
        return out;
    }

    @Override
    public int unetInChannels() {
        return inner.unetInChannels();
    }

    @Override
    public float[] sdxlAdm(float[] pooled, int batch, int height, int width) {
        return inner.sdxlAdm(pooled, batch, height, width);
    }

    @Override
    public float[] decode(float[] latent, int batch, int h, int w) {
        return inner.decode(latent, batch, h, w);
    }

    @Override
    public Moments encode(float[] image, int batch, int height, int width) {
        return inner.encode(image, batch, height, width);
    }

    @Override
    public void close() {
        inner.close();
    }
}
