package jdiffusion.workflow;

import jdiffusion.io.PngImage;

/**
 * The sampler's current denoised latent at one step, and ComfyUI's cheap preview of it (Latent2RGBPreviewer): each
 * latent pixel projected to RGB by the latent format's 4x3 factors (and bias), then (v + 1) / 2 clamped, as 8 bits.
 * The preview has the latent's size (1/8 of the image); the first batch item is shown.
 *
 * @param latent model-space latent [B,4,h,w]; a copy, the listener may keep it
 */
public record LatentPreview(float[] latent, int batch, int channels, int height, int width, boolean sdxl) {
    private static final float[][] SD15_FACTORS = {
        {0.3512f, 0.2297f, 0.3227f}, {0.3250f, 0.4974f, 0.2350f}, {-0.2829f, 0.1762f, 0.2721f},
        {-0.2120f, -0.2616f, -0.7177f}};
    private static final float[] SD15_BIAS = {0f, 0f, 0f};
    private static final float[][] SDXL_FACTORS = {
        {0.3651f, 0.4232f, 0.4341f}, {-0.2533f, -0.0042f, 0.1068f}, {0.1076f, 0.1111f, -0.0362f},
        {-0.3165f, -0.2492f, -0.2188f}};
    private static final float[] SDXL_BIAS = {0.1084f, -0.0175f, -0.0011f};

    /** The first batch item as an RGB image of the latent's size. */
    public PngImage rgb() {
        float[][] factors = sdxl ? SDXL_FACTORS : SD15_FACTORS;
        float[] bias = sdxl ? SDXL_BIAS : SD15_BIAS;
        int plane = height * width;
        byte[] rgb = new byte[plane * 3];
        for (int p = 0; p < plane; p++) {
            for (int c = 0; c < 3; c++) {
                float v = bias[c];
                for (int k = 0; k < Math.min(4, channels); k++) {
                    v += latent[k * plane + p] * factors[k][c];
                }
                float unit = Math.min(1f, Math.max(0f, (v + 1f) / 2f));
                rgb[p * 3 + c] = (byte) (int) (unit * 255f);
            }
        }
        return new PngImage(width, height, rgb);
    }
}
