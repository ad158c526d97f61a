package jdiffusion.pipeline;

/**
 * The inpainting steps shared by the pipeline and the workflow nodes, with ComfyUI's semantics: the pixel side of
 * VAEEncodeForInpaint / InpaintModelConditioning and the extra input channels of an inpainting UNet (BaseModel's
 * concat_cond). Images are NCHW in [0, 1], masks [B][H][W] with 1 = repaint.
 */
public final class Inpainting {
    /**
     * ComfyUI's "zero image" latent per channel (pixel value 0 seen by the SD VAE, in model space): what an inpaint
     * UNet gets as its masked image when no inpaint conditioning is given (with a mask of ones).
     */
    private static final float[] BLANK_LATENT = {0.8223f, -0.6876f, 0.6364f, 0.1380f};

    private Inpainting() {
    }

    /** VAEEncodeForInpaint before its VAE: the grey-masked cropped pixels and the grown, rounded noise mask. */
    public record EncodeForInpaint(MaskOps.MaskedPixels masked, float[] noiseMask) {
    }

    /**
     * VAEEncodeForInpaint's pixel side: mask bilinear to the image size, both centre-cropped to multiples of
     * {@code multiple}, masked pixels (round(mask)) to 0.5; the noise mask is round(mask) grown by a g x g box
     * (g = growMaskBy; 0 = not grown), exactly 0 / 1.
     */
    public static EncodeForInpaint encodeForInpaintPixels(float[] pixels, int batch, int h, int w, float[] mask,
            int mb, int mh, int mw, int growMaskBy, int multiple) {
        MaskOps.MaskedPixels mp = MaskOps.greyMasked(pixels, batch, h, w, mask, mb, mh, mw, multiple);
        float[] rounded = MaskOps.round(mp.mask());
        float[] noiseMask = growMaskBy == 0 ? rounded
                : MaskOps.round(MaskOps.growBox(rounded, mb, mp.height(), mp.width(), growMaskBy));
        return new EncodeForInpaint(mp, noiseMask);
    }

    /** VAE.encode's own crop: the centre part whose sides are multiples of {@code multiple} (mask null). */
    public static MaskOps.MaskedPixels centreCrop(float[] pixels, int batch, int h, int w, int multiple) {
        int ch = h / multiple * multiple;
        int cw = w / multiple * multiple;
        if (ch == 0 || cw == 0) {
            throw new IllegalArgumentException("image " + w + "x" + h + " is smaller than " + multiple + " pixels");
        }
        return new MaskOps.MaskedPixels(MaskOps.crop(pixels, batch * 3, h, w, (h % multiple) / 2, (w % multiple) / 2,
                ch, cw), null, ch, cw);
    }

    /**
     * The mask channel of an inpainting UNet: the mask [mb][mh][mw] bilinear to the latent size, rounded, resized
     * to the batch (ComfyUI's resize_to_batch_size) -> [batch][1][h][w].
     */
    public static float[] concatMask(float[] mask, int mb, int mh, int mw, int batch, int h, int w) {
        float[] m = MaskOps.round(MaskOps.bilinear(mask, mb, mh, mw, h, w));
        return resizeToBatch(m, mb, batch, h * w);
    }

    /** c_concat = cat([mask (1 channel), masked-image latent (C channels, model space)]) per row -> [B][1+C][h][w]. */
    public static float[] concatConditioning(float[] mask1, float[] maskedLatentIn, int batch, int channels, int h,
            int w) {
        int plane = h * w;
        float[] latent = resizeToBatch(maskedLatentIn, maskedLatentIn.length / (channels * plane), batch,
                channels * plane);
        float[] out = new float[batch * (1 + channels) * plane];
        for (int b = 0; b < batch; b++) {
            System.arraycopy(mask1, b * plane, out, b * (1 + channels) * plane, plane);
            System.arraycopy(latent, b * channels * plane, out, (b * (1 + channels) + 1) * plane, channels * plane);
        }
        return out;
    }

    /** What an inpaint UNet gets without any mask: mask ones and ComfyUI's blank-image latent. */
    public static float[] blankConcat(int batch, int h, int w) {
        int plane = h * w;
        float[] out = new float[batch * 5 * plane];
        for (int b = 0; b < batch; b++) {
            java.util.Arrays.fill(out, b * 5 * plane, (b * 5 + 1) * plane, 1f);
            for (int c = 0; c < 4; c++) {
                java.util.Arrays.fill(out, (b * 5 + 1 + c) * plane, (b * 5 + 2 + c) * plane, BLANK_LATENT[c]);
            }
        }
        return out;
    }

    /** comfy.utils.resize_to_batch_size over rows of rowSize values. */
    static float[] resizeToBatch(float[] rows, int in, int batch, int rowSize) {
        if (in == batch) {
            return rows;
        }
        float[] out = new float[batch * rowSize];
        for (int i = 0; i < batch; i++) {
            int src;
            if (batch <= 1) {
                src = 0;
            } else if (batch < in) {
                double scale = (double) (in - 1) / (batch - 1);
                src = (int) Math.min(Math.rint(i * scale), in - 1);
            } else {
                double scale = (double) in / batch;
                src = (int) Math.min(Math.floor((i + 0.5) * scale), in - 1);
            }
            System.arraycopy(rows, src * rowSize, out, i * rowSize, rowSize);
        }
        return out;
    }
}
