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

    @Override
    public float[] apply(float[] xc, float timestep, boolean withUncond) {
        int rows = withUncond ? 2 * batch : batch;
        if (withUncond && bothContext == null) {
            throw new IllegalStateException("the uncond pass was requested but no uncond conditioning was prepared");
        }
        float[] t = new float[rows];
        Arrays.fill(t, timestep);
        calls++;
        return models.unet(xc, rows, h, w, t, withUncond ? bothContext : condContext, tokens,
                withUncond ? bothAdm : condAdm);
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
