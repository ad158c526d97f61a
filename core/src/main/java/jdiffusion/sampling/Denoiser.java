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
     * sigma noise. ComfyUI's samplers then take their flow forms: the {@code _RF} ancestral samplers, and the
     * half-log-SNR ones with lambda = log((1 - sigma) / sigma) ({@link SamplerMath#halfLogSnr}).
     */
    default boolean flow() {
        return false;
    }

    /**
     * The model sampling of a rectified-flow model ({@link #asFlow(ModelSamplingDiscrete)}), which the flow forms of
     * the half-log-SNR samplers ask for percent_to_sigma; null when not known.
     */
    default ModelSamplingDiscrete modelSampling() {
        return null;
    }

    /** This denoiser, marked as a rectified-flow model's ({@link #flow()}), its model sampling unknown. */
    default Denoiser asFlow() {
        return asFlow(null);
    }

    /**
     * This denoiser, marked as the rectified-flow model's whose model sampling is ms (a flow schedule, or null when
     * unknown: then the samplers that need percent_to_sigma fail clearly).
     */
    default Denoiser asFlow(ModelSamplingDiscrete ms) {
        if (ms != null && !ms.isFlow()) {
            throw new IllegalArgumentException("asFlow needs a rectified-flow model sampling, got a discrete one");
        }
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

            @Override
            public ModelSamplingDiscrete modelSampling() {
                return ms;
            }
        };
    }

    /** A denoiser without an uncond prediction, from a plain function (tests, analytic models). */
    static Denoiser of(java.util.function.BiFunction<float[], Double, float[]> fn) {
        return (x, sigma) -> new Prediction(fn.apply(x, sigma), null);
    }
}
