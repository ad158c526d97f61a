package jdiffusion.server;

import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import javax.imageio.ImageIO;

/**
 * ComfyUI's cheap preview (Latent2RGBPreviewer): each latent pixel's 4 channels times a 4x3 matrix (plus a bias for
 * SDXL) gives RGB in [-1, 1], mapped to bytes with truncation. It runs on the model-space denoised latent of item 0,
 * costs nothing next to a UNet step, and is sent every step as a binary websocket frame.
 */
public final class LatentPreview {
    /** A latent format's projection: factors[channel][rgb] and an optional rgb bias. */
    public record Format(String name, float[][] factors, float[] bias) {
    }

    public static final Format SD15 = new Format("SD15", new float[][] {
        {0.3512f, 0.2297f, 0.3227f},
        {0.3250f, 0.4974f, 0.2350f},
        {-0.2829f, 0.1762f, 0.2721f},
        {-0.2120f, -0.2616f, -0.7177f}}, null);

    public static final Format SDXL = new Format("SDXL", new float[][] {
        {0.3651f, 0.4232f, 0.4341f},
        {-0.2533f, -0.0042f, 0.1068f},
        {0.1076f, 0.1111f, -0.0362f},
        {-0.3165f, -0.2492f, -0.2188f}}, new float[] {0.1084f, -0.0175f, -0.0011f});

    /** websocket binary event type of a preview image (ComfyUI's BinaryEventTypes.PREVIEW_IMAGE). */
    public static final int PREVIEW_IMAGE = 1;
    public static final int JPEG = 1;
    public static final int PNG = 2;

    private LatentPreview() {
    }

    /**
     * RGB bytes [h][w][3] of batch item 0 of a latent [B,C,h,w] (NCHW, as the sampler hands it over).
     */
    public static byte[] rgb(Format format, float[] latent, int[] shape) {
        int channels = shape[1];
        int h = shape[2];
        int w = shape[3];
        if (channels != format.factors().length) {
            throw new IllegalArgumentException("latent has " + channels + " channels; the " + format.name()
                    + " preview takes " + format.factors().length);
        }
        int plane = h * w;
        byte[] out = new byte[plane * 3];
        for (int p = 0; p < plane; p++) {
            for (int c = 0; c < 3; c++) {
                float v = format.bias() == null ? 0f : format.bias()[c];
                for (int k = 0; k < channels; k++) {
                    v += latent[k * plane + p] * format.factors()[k][c];
                }
                out[p * 3 + c] = (byte) toByte(v);
            }
        }
        return out;
    }

    /** ((v + 1) / 2) clamped to [0, 1], times 255, truncated (torch's float-to-uint8 cast). */
    static int toByte(float v) {
        float x = (v + 1f) / 2f;
        x = Math.max(0f, Math.min(1f, x));
        return (int) (x * 255f);
    }

    /** A JPEG of the preview, at least 64 pixels wide (tiny latents are scaled up so the page can see them). */
    public static byte[] jpeg(Format format, float[] latent, int[] shape) {
        int h = shape[2];
        int w = shape[3];
        byte[] rgb = rgb(format, latent, shape);
        int scale = Math.max(1, 64 / Math.max(1, Math.min(w, h)));
        BufferedImage img = new BufferedImage(w * scale, h * scale, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < h * scale; y++) {
            for (int x = 0; x < w * scale; x++) {
                int p = ((y / scale) * w + x / scale) * 3;
                img.setRGB(x, y, (rgb[p] & 255) << 16 | (rgb[p + 1] & 255) << 8 | (rgb[p + 2] & 255));
            }
        }
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try {
            ImageIO.write(img, "jpeg", bytes);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return bytes.toByteArray();
    }

    /** The websocket frame: 4-byte big-endian event type, 4-byte image type, then the image. */
    public static byte[] frame(int imageType, byte[] image) {
        return ByteBuffer.allocate(8 + image.length).putInt(PREVIEW_IMAGE).putInt(imageType).put(image).array();
    }
}
