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

    /**
     * Whether the model is a rectified-flow model (ComfyUI's CONST model sampling, SD3): x = (1 - sigma) x0 +
     * sigma noise. ComfyUI's euler_ancestral and dpmpp_2s_ancestral then take their {@code _RF} form.
     */
    default boolean flow() {
        return false;
    }

    /** This denoiser, marked as a rectified-flow model's ({@link #flow()}). */
    default Denoiser asFlow() {
        Denoiser inner = this;
        return new Denoiser() {
            @Override
            public Prediction predict(float[] x, double sigma) {
                return inner.predict(x, sigma);
            }

            @Override
            public boolean flow() {
                return true;
            }
        };
    }

    /** A denoiser without an uncond prediction, from a plain function (tests, analytic models). */
    static Denoiser of(java.util.function.BiFunction<float[], Double, float[]> fn) {
        return (x, sigma) -> new Prediction(fn.apply(x, sigma), null);
    }
}
