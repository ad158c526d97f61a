package jdiffusion.sampling;

/**
 * ComfyUI's sampler callback: step i, the state x at the start of step i (before its update) and the CFG-combined
 * denoised prediction of that step. The arrays belong to the sampler: copy them to keep them.
 */
@FunctionalInterface
public interface StepCallback {
    void onStep(int i, float[] x, float[] denoised);

    StepCallback NONE = (i, x, denoised) -> {
    };
}
