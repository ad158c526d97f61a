package jdiffusion.pipeline;

/**
 * One prompt's conditioning as the UNet takes it: context [tokens x dim] (one row) and, for SDXL, the pooled
 * embedding (null otherwise).
 */
public record TextCond(float[] context, int tokens, int dim, float[] pooled) {
    /** The same shape, all zeros: diffusers' SDXL uncond when no negative prompt is given. */
    public TextCond zeros() {
        return new TextCond(new float[context.length], tokens, dim, pooled == null ? null : new float[pooled.length]);
    }

    /** The context repeated along the token axis to {@code tokens} (a multiple of this one's), as ComfyUI pads. */
    public float[] contextRepeatedTo(int targetTokens) {
        if (targetTokens == tokens) {
            return context;
        }
        float[] out = new float[targetTokens * dim];
        for (int t = 0; t < targetTokens; t += tokens) {
            System.arraycopy(context, 0, out, t * dim, tokens * dim);
        }
        return out;
    }
}
