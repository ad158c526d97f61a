package jdiffusion.model;

/**
 * What a prompt becomes for the UNet: the cross-attention context [tokens][dim] (tokens = 77 x chunks) and, for
 * SDXL, the pooled text embedding [proj] that feeds the ADM (label_emb) input; pooled is null for SD1 and SD2.
 */
public record Conditioning(float[] context, int tokens, int dim, float[] pooled) {
    public Conditioning {
        if (context.length != tokens * dim) {
            throw new IllegalArgumentException("context has " + context.length + " values, expected " + tokens + " x " + dim);
        }
    }

    /**
     * All zeros of the same shape: diffusers' SDXL uncond when no negative prompt is given
     * ({@code force_zeros_for_empty_prompt}). ComfyUI never does this; it encodes "" instead.
     */
    public Conditioning zerosLike() {
        return new Conditioning(new float[context.length], tokens, dim, pooled == null ? null : new float[pooled.length]);
    }
}
