package jdiffusion.pipeline;

/** Progress of a generation. Called on the generating thread; keep it quick. */
public interface ProgressListener {
    /**
     * A sampling step finished.
     *
     * @param step   1-based number of the step just done
     * @param total  steps in this run (img2img: the steps actually run)
     * @param latent the current latent, model space, NCHW [B,4,h,w]; belongs to the pipeline, copy to keep
     */
    void onStep(int step, int total, float[] latent);

    /**
     * The sampler's own view of step i (0-based, ComfyUI's callback): the state x at the start of the step, in the
     * sampler's space, and the guided denoised estimate. For tests and previews; the arrays belong to the sampler.
     */
    default void onSamplerState(int i, float[] x, float[] denoised) {
    }

    /** A stage (load, text, encode, sampling, decode, save) begins. */
    default void onStage(String stage) {
    }

    ProgressListener NONE = (step, total, latent) -> {
    };
}
