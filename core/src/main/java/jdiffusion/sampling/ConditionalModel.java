package jdiffusion.sampling;

/**
 * The model before guidance: denoised predictions (already converted from eps / v / x0 to x0 space) for the cond
 * rows and, when asked, the uncond rows. ComfyUI evaluates both in one batch [uncond x B, cond x B].
 */
@FunctionalInterface
public interface ConditionalModel {

    /** cond and uncond denoised of x ([B*C*H*W]); uncond is null when withUncond is false. */
    record Pair(float[] cond, float[] uncond) {
    }

    Pair evaluate(float[] x, double sigma, boolean withUncond);
}
