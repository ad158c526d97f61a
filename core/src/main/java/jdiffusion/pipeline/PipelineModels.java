package jdiffusion.pipeline;

import jdiffusion.sampling.PredictionType;

/**
 * The loaded model parts a pipeline drives, behind one small interface so the sampling logic is independent of how
 * the checkpoint was read (and testable with small stand-ins). All tensors are NCHW float32.
 */
public interface PipelineModels extends AutoCloseable {

    /** "SD1", "SD2", "SDXL" or "SD3". */
    String family();

    default boolean isSdxl() {
        return family().equals("SDXL");
    }

    /** What the checkpoint says its UNet predicts (metadata, a v_pred key), else EPS. */
    PredictionType detectedPrediction();

    /** The VAE latent scaling factor (0.18215 SD1/SD2, 0.13025 SDXL). */
    double latentScale();

    /** The latent shift of the family's latent format (SD3: 0.0609): model latent = (vae latent - shift) * scale. */
    default double latentShift() {
        return 0.0;
    }

    /** The flow shift of a rectified-flow model (SD3: ModelSamplingSD3's, 3.0 by default); 0 for the others. */
    default double flowShift() {
        return 0.0;
    }

    /** Channels of the latent (4; SD3's 16). */
    default int latentChannels() {
        return 4;
    }

    /** Prompt to conditioning; clipSkip 1 = the family's usual layer. */
    TextCond encodeText(String prompt, int clipSkip);

    /** Prompt to conditioning under ComfyUI's (comfy) or diffusers' conventions where the family has both (SD3). */
    default TextCond encodeText(String prompt, int clipSkip, boolean comfy) {
        return encodeText(prompt, clipSkip);
    }

    /**
     * Called once a generation has all its text conditioning: models loaded for this one generation may free their
     * text encoders (after which encodeText fails); models kept between requests keep them (the default).
     */
    default void textEncodingDone() {
    }

    /** Called once a generation has its final latent: one-shot models may free the UNet (default: keep it). */
    default void samplingDone() {
    }

    /** Raw UNet output for x [B,4,h,w] at one timestep per row, context [B,tokens,dim], adm y [B,adm] or null. */
    float[] unet(float[] x, int batch, int h, int w, float[] timesteps, float[] context, int tokens, float[] y);

    /**
     * The UNet steered by ControlNet residuals (null: none, the plain {@link #unet}); models that cannot take them
     * refuse.
     */
    default float[] unet(float[] x, int batch, int h, int w, float[] timesteps, float[] context, int tokens, float[] y,
            jdiffusion.model.ControlResiduals control) {
        if (control != null) {
            throw new UnsupportedOperationException(getClass().getSimpleName() + " cannot apply ControlNet residuals");
        }
        return unet(x, batch, h, w, timesteps, context, tokens, y);
    }

    /** The UNet's input channels: 4, or 9 for an inpainting UNet (latent + mask + masked-image latent). */
    default int unetInChannels() {
        return 4;
    }

    /** SDXL's adm vector for B rows of pooled embeddings and size conditioning [H, W, 0, 0, H, W]. */
    float[] sdxlAdm(float[] pooled, int batch, int height, int width);

    /** VAE decode of raw latents (already divided by the scaling factor) to images in about [-1, 1]. */
    float[] decode(float[] latent, int batch, int h, int w);

    /** VAE encode of images in [-1, 1]: the posterior's mean and std, each [B,4,H/8,W/8]. */
    Moments encode(float[] image, int batch, int height, int width);

    /** The diagonal Gaussian posterior of the VAE encoder. */
    record Moments(float[] mean, float[] std) {
    }

    @Override
    default void close() {
    }
}
