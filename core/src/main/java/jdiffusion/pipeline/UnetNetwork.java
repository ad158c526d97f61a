package jdiffusion.pipeline;

import java.util.Arrays;
import jdiffusion.sampling.DiscreteModel;

/**
 * The UNet with a generation's conditioning bound: what the denoiser wrappers call. Rows run as one batch, uncond
 * rows first ([uncond x B, cond x B], as ComfyUI and diffusers batch CFG); SDXL rows also get their adm vector
 * (pooled text embedding and size conditioning [H, W, 0, 0, H, W]).
 */
final class UnetNetwork implements DiscreteModel.Network {
    private final PipelineModels models;
    private final int batch;
    private final int h;
    private final int w;
    private final int tokens;
    private final float[] condContext;
    private final float[] bothContext;
    private final float[] condAdm;
    private final float[] bothAdm;
    private int calls;
    private ControlStack condControl;
    private ControlStack uncondControl;

    UnetNetwork(PipelineModels models, TextCond cond, TextCond uncond, int batch, int height, int width) {
        this.models = models;
        this.batch = batch;
        this.h = height / 8;
        this.w = width / 8;
        // (SD3's MMDiT, too, sees latents of 1/8 the image size)
        // cond and uncond may differ in length (long prompts): ComfyUI repeats both to the least common multiple
        this.tokens = uncond == null ? cond.tokens() : lcm(cond.tokens(), uncond.tokens());
        float[] c = cond.contextRepeatedTo(tokens);
        this.condContext = repeatRows(c, batch);
        this.bothContext = uncond == null ? null : concat(repeatRows(uncond.contextRepeatedTo(tokens), batch), condContext);
        if (models.isSdxl()) {
            condAdm = models.sdxlAdm(repeatRows(cond.pooled(), batch), batch, height, width);
            bothAdm = uncond == null ? null
                    : models.sdxlAdm(concat(repeatRows(uncond.pooled(), batch), repeatRows(cond.pooled(), batch)),
                            2 * batch, height, width);
        } else if (cond.pooled() != null && models.family().equals("SD3")) {
            // the MMDiT's y is the pooled text embedding itself
            condAdm = repeatRows(cond.pooled(), batch);
            bothAdm = uncond == null ? null : concat(repeatRows(uncond.pooled(), batch), condAdm);
        } else {
            condAdm = null;
            bothAdm = null;
        }
    }

    /**
     * Steers the cond rows with one stack of ControlNets and the uncond rows with another (null or empty: none).
     * The same stack on both runs once on the whole batch, as ComfyUI batches conds that share a ControlNet and
     * diffusers runs it on the CFG batch; different ones run on their own rows.
     */
    UnetNetwork withControl(ControlStack cond, ControlStack uncond) {
        this.condControl = cond == null || cond.isEmpty() ? null : cond;
        this.uncondControl = uncond == null || uncond.isEmpty() ? null : uncond;
        return this;
    }

    @Override
    public float[] apply(float[] xc, float timestep, boolean withUncond) {
        return apply(xc, timestep, withUncond, Double.NaN);
    }

    @Override
    public float[] apply(float[] xc, float timestep, boolean withUncond, double sigma) {
        int rows = withUncond ? 2 * batch : batch;
        if (withUncond && bothContext == null) {
            throw new IllegalStateException("the uncond pass was requested but no uncond conditioning was prepared");
        }
        float[] t = new float[rows];
        Arrays.fill(t, timestep);
        calls++;
        float[] context = withUncond ? bothContext : condContext;
        float[] adm = withUncond ? bothAdm : condAdm;
        if (condControl == null && (uncondControl == null || !withUncond)) {
            return models.unet(xc, rows, h, w, t, context, tokens, adm);
        }
        return models.unet(xc, rows, h, w, t, context, tokens, adm, residuals(xc, rows, t, context, adm, withUncond,
                sigma));
    }

    private jdiffusion.model.ControlResiduals residuals(float[] xc, int rows, float[] t, float[] context, float[] adm,
            boolean withUncond, double sigma) {
        if (!withUncond) {
            return condControl.residuals(xc, rows, h, w, t, context, tokens, adm, sigma);
        }
        if (condControl == uncondControl) {
            return condControl.residuals(xc, rows, h, w, t, context, tokens, adm, sigma);
        }
        jdiffusion.model.ControlResiduals[] half = new jdiffusion.model.ControlResiduals[2];
        ControlStack[] stacks = {uncondControl, condControl};
        for (int k = 0; k < 2; k++) {
            if (stacks[k] != null) {
                half[k] = stacks[k].residuals(rowsOf(xc, k), batch, h, w, rowsOf(t, k), rowsOf(context, k), tokens,
                        adm == null ? null : rowsOf(adm, k), sigma);
            }
        }
        return jdiffusion.model.ControlResiduals.stackRows(half[0], batch, half[1], batch);
    }

    /** Half k of a [uncond rows, cond rows] array. */
    private static float[] rowsOf(float[] a, int k) {
        int n = a.length / 2;
        return Arrays.copyOfRange(a, k * n, (k + 1) * n);
    }

    /** UNet evaluations so far. */
    int calls() {
        return calls;
    }

    static float[] repeatRows(float[] row, int times) {
        float[] out = new float[row.length * times];
        for (int i = 0; i < times; i++) {
            System.arraycopy(row, 0, out, i * row.length, row.length);
        }
        return out;
    }

    static float[] concat(float[] a, float[] b) {
        float[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    private static int lcm(int a, int b) {
        int x = a;
        int y = b;
        while (y != 0) {
            int r = x % y;
            x = y;
            y = r;
        }
        return a / x * b;
    }
}
