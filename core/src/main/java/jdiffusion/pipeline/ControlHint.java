package jdiffusion.pipeline;

import jdiffusion.io.PngImage;

/** Hint images as the ControlNet takes them: RGB in [0, 1] (uint8 / 255, not [-1, 1]), NCHW. */
public final class ControlHint {
    private ControlHint() {
    }

    /** One image as NCHW [1][3][H][W] floats {@code v / 255} (diffusers' do_normalize=False, ComfyUI's LoadImage). */
    public static float[] unitFloats(PngImage image) {
        int plane = image.width() * image.height();
        float[] out = new float[3 * plane];
        byte[] rgb = image.rgb();
        for (int p = 0; p < plane; p++) {
            for (int c = 0; c < 3; c++) {
                out[c * plane + p] = (rgb[p * 3 + c] & 0xFF) / 255f;
            }
        }
        return out;
    }
}
