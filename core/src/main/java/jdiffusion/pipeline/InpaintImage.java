package jdiffusion.pipeline;

import java.io.IOException;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;

/**
 * The init image of an inpaint / outpaint request, prepared: pixels NCHW [3][H][W] in [0, 1] (padded with grey for
 * outpainting) and the mask [H][W] (1 = repaint; inverted when asked, the outpaint border and its feathering added)
 * before growing and blurring, which depend on the path ({@link #mask(int, double)}).
 */
record InpaintImage(float[] pixels, float[] baseMask, int width, int height, GenerateRequest.Inpaint spec) {

    /** Reads the mask (file or the init image's alpha) and pads for outpainting. */
    static InpaintImage prepare(GenerateRequest r, PngImage init) {
        GenerateRequest.Inpaint spec = r.inpaint();
        int w = init.width();
        int h = init.height();
        int plane = w * h;
        float[] pixels = new float[3 * plane];
        for (int p = 0; p < plane; p++) {
            for (int c = 0; c < 3; c++) {
                pixels[c * plane + p] = (init.rgb()[p * 3 + c] & 0xFF) / 255f;
            }
        }
        float[] mask;
        if (spec.maskFromAlpha()) {
            byte[] alpha = read(r.initImage(), "init image").alpha();
            if (alpha == null) {
                throw new GenerateException("--mask alpha: init image " + r.initImage() + " has no transparency"
                        + " (alpha channel)");
            }
            mask = new float[plane];
            for (int i = 0; i < plane; i++) {
                mask[i] = 1f - (alpha[i] & 0xFF) / 255f;
            }
        } else if (spec.mask() != null) {
            PngImage m = read(spec.mask(), "mask").rgb();
            float[] lum = luminance(m);
            mask = m.width() == w && m.height() == h ? lum : MaskOps.bilinear(lum, 1, m.height(), m.width(), h, w);
        } else {
            mask = new float[plane]; // outpainting alone: only the border is repainted
        }
        if (spec.invert()) {
            mask = MaskOps.invert(mask);
        }
        GenerateRequest.Outpaint o = spec.outpaint();
        if (o == null) {
            return new InpaintImage(pixels, mask, w, h, spec);
        }
        MaskOps.Padded padded = MaskOps.padForOutpaint(pixels, 1, 3, h, w, o.left(), o.top(), o.right(),
                o.bottom(), o.feather());
        float[] m = padded.mask();
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int at = (y + o.top()) * padded.width() + x + o.left();
                m[at] = Math.max(m[at], mask[y * w + x]);
            }
        }
        return new InpaintImage(padded.image(), m, padded.width(), padded.height(), spec);
    }

    /** The mask grown by {@code grow} pixels (GrowMask, tapered corners) and blurred ({@code blur} pixels). */
    float[] mask(int grow, double blur) {
        float[] m = grow != 0 ? MaskOps.growMask(baseMask, 1, height, width, grow, true) : baseMask;
        return blur > 0 ? MaskOps.gaussianBlur(m, 1, height, width, blur) : m;
    }

    /** The mask with the request's own growth and blur. */
    float[] mask() {
        return mask(spec.grow(), spec.blur());
    }

    /** The pixels in [-1, 1], the VAE's input. */
    float[] signedPixels() {
        float[] out = new float[pixels.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = pixels[i] * 2f - 1f;
        }
        return out;
    }

    /** A1111's overlay: original * (1 - m) + generated * m per batch item, m the blurred mask. */
    float[] pasteOver(float[] generated01, int batch) {
        float[] m = mask();
        int plane = width * height;
        float[] out = new float[generated01.length];
        for (int b = 0; b < batch; b++) {
            for (int c = 0; c < 3; c++) {
                for (int p = 0; p < plane; p++) {
                    int i = (b * 3 + c) * plane + p;
                    float k = Math.min(1f, Math.max(0f, m[p]));
                    out[i] = pixels[c * plane + p] * (1f - k) + generated01[i] * k;
                }
            }
        }
        return out;
    }

    /**
     * A1111's overlay on the saved 8-bit image: PIL's Image.composite(generated, original, mask) with the blurred
     * mask as 8 bits, so unmasked pixels are exactly the original's.
     */
    PngImage pasteOver(PngImage generated) {
        float[] m = mask();
        int plane = width * height;
        byte[] out = new byte[plane * 3];
        byte[] gen = generated.rgb();
        for (int p = 0; p < plane; p++) {
            int k = Math.round(Math.min(1f, Math.max(0f, m[p])) * 255f);
            for (int c = 0; c < 3; c++) {
                int orig = Math.round(pixels[c * plane + p] * 255f);
                int tmp = (gen[p * 3 + c] & 0xFF) * k + orig * (255 - k) + 128;
                out[p * 3 + c] = (byte) ((tmp + (tmp >> 8)) >> 8);
            }
        }
        return new PngImage(width, height, out);
    }

    /** PIL's convert("L"): (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16, then / 255. */
    static float[] luminance(PngImage m) {
        int plane = m.width() * m.height();
        float[] out = new float[plane];
        byte[] rgb = m.rgb();
        for (int p = 0; p < plane; p++) {
            int l = ((rgb[p * 3] & 0xFF) * 19595 + (rgb[p * 3 + 1] & 0xFF) * 38470 + (rgb[p * 3 + 2] & 0xFF) * 7471
                    + 0x8000) >> 16;
            out[p] = l / 255f;
        }
        return out;
    }

    private static PngReader.Rgba read(java.nio.file.Path file, String what) {
        try {
            return PngReader.readRgba(file);
        } catch (IOException e) {
            throw new GenerateException(what + " " + e.getMessage());
        }
    }
}
