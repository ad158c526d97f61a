package jdiffusion.server;

import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import javax.imageio.ImageIO;
import jdiffusion.io.PngImage;

/**
 * ComfyUI's binary preview frames: the engine's latent-to-RGB preview ({@link jdiffusion.workflow.LatentPreview},
 * costs nothing next to a UNet step) as a JPEG behind an 8-byte header, sent every step on the websocket.
 */
public final class PreviewFrames {
    /** websocket binary event type of a preview image (ComfyUI's BinaryEventTypes.PREVIEW_IMAGE). */
    public static final int PREVIEW_IMAGE = 1;
    public static final int JPEG = 1;
    public static final int PNG = 2;

    private PreviewFrames() {
    }

    /** A JPEG of the preview, at least 64 pixels on its short side (tiny latents are scaled up to be seen). */
    public static byte[] jpeg(PngImage rgb) {
        int w = rgb.width();
        int h = rgb.height();
        int scale = Math.max(1, 64 / Math.max(1, Math.min(w, h)));
        BufferedImage img = new BufferedImage(w * scale, h * scale, BufferedImage.TYPE_INT_RGB);
        byte[] px = rgb.rgb();
        for (int y = 0; y < h * scale; y++) {
            for (int x = 0; x < w * scale; x++) {
                int p = ((y / scale) * w + x / scale) * 3;
                img.setRGB(x, y, (px[p] & 255) << 16 | (px[p + 1] & 255) << 8 | (px[p + 2] & 255));
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
