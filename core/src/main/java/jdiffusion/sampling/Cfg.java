package jdiffusion.sampling;

/** ComfyUI's classifier-free guidance (cfg_function) in x0 space. */
public final class Cfg {
    private Cfg() {
    }

    /**
     * The guided denoiser: {@code uncond + (cond - uncond) * cfg}. At cfg == 1 the uncond pass is skipped (result =
     * cond) unless forceUncond (the {@code _cfg_pp} samplers read the uncond prediction), as ComfyUI's
     * disable_cfg1_optimization does; then the formula is applied even at cfg 1.
     */
    public static Denoiser guider(ConditionalModel model, double cfg, boolean forceUncond) {
        boolean skipUncond = cfg == 1.0 && !forceUncond;
        return (x, sigma) -> {
            ConditionalModel.Pair p = model.evaluate(x, sigma, !skipUncond);
            if (skipUncond) {
                return new Denoiser.Prediction(p.cond(), null);
            }
            return new Denoiser.Prediction(combine(p.cond(), p.uncond(), cfg), p.uncond());
        };
    }

    /** uncond + (cond - uncond) * cfg, rounded to float32 per element as torch does. */
    public static float[] combine(float[] cond, float[] uncond, double cfg) {
        float[] out = new float[cond.length];
        float scale = (float) cfg;
        for (int i = 0; i < out.length; i++) {
            float diff = cond[i] - uncond[i];
            out[i] = uncond[i] + diff * scale;
        }
        return out;
    }
}
