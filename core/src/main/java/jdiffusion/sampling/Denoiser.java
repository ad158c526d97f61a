package jdiffusion.sampling;

/**
 * The model as a sampler sees it (k-diffusion's {@code model(x, sigma)}): the denoised estimate of a whole batch
 * x (model space, [B*C*H*W] in NCHW order) at noise level sigma, CFG already combined. Every batch item sees the same
 * sigma. Implementations must not modify x.
 */
@FunctionalInterface
public interface Denoiser {

    /** One evaluation: the CFG-combined prediction and, when the guider evaluated it, the uncond prediction. */
    record Prediction(float[] denoised, float[] uncondDenoised) {
        /** The uncond prediction, which only {@code _cfg_pp} samplers read; fails clearly when it was not evaluated. */
        public float[] requireUncond() {
            if (uncondDenoised == null) {
                throw new IllegalStateException("this sampler needs the uncond prediction, but the denoiser did not"
                        + " evaluate it (build the guider with forceUncond)");
            }
            return uncondDenoised;
        }
    }

    Prediction predict(float[] x, double sigma);

    /** The CFG-combined denoised estimate. */
    default float[] denoise(float[] x, double sigma) {
        return predict(x, sigma).denoised();
    }

    /** A denoiser without an uncond prediction, from a plain function (tests, analytic models). */
    static Denoiser of(java.util.function.BiFunction<float[], Double, float[]> fn) {
        return (x, sigma) -> new Prediction(fn.apply(x, sigma), null);
    }
}
