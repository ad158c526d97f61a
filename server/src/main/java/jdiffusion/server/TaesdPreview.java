package jdiffusion.server;

import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import javax.imageio.ImageIO;
import jdiffusion.model.Taesd;
import jdiffusion.workflow.ModelPaths;

/**
 * {@code --preview-method taesd}: each step's model-space x0 (batch item 0) decoded by TAESD from
 * {@code models/vae_approx} ({@code taesd_decoder.safetensors} for SD1 latents, {@code taesdxl_decoder} for SDXL),
 * bytes = truncated clamp((x + 1) / 2, 0, 1) * 255 of the [-1, 1] image as ComfyUI's latent_preview does. When the
 * file is not there the caller falls back to latent2rgb.
 */
final class TaesdPreview {
    private final ModelPaths paths;
    private final Map<Path, Optional<Taesd>> loaded = new ConcurrentHashMap<>();

    TaesdPreview(ModelPaths paths) {
        this.paths = paths;
    }

    /** The method a prompt's previews use: its extra_data.preview_method unless absent or "default". */
    static String method(com.fasterxml.jackson.databind.JsonNode extraData, String serverMethod) {
        String m = extraData == null ? null : extraData.path("preview_method").asText(null);
        return m == null || m.isBlank() || m.equals("default") ? serverMethod : m;
    }

    /** The decoder for a latent format (SD15 -> taesd, SDXL -> taesdxl), or null when its file is missing/unreadable. */
    Taesd decoder(LatentPreview.Format format) {
        String file = (format == LatentPreview.SDXL ? "taesdxl" : "taesd") + "_decoder.safetensors";
        for (Path dir : paths.folders("vae_approx")) {
            Path f = dir.resolve(file);
            if (Files.isRegularFile(f)) {
                return loaded.computeIfAbsent(f, k -> {
                    try {
                        return Optional.of(Taesd.open(k));
                    } catch (Exception e) {
                        return Optional.empty();
                    }
                }).orElse(null);
            }
        }
        return null;
    }

    /** RGB bytes [8h][8w][3] of batch item 0 of a model-space latent [B,C,h,w]. */
    static byte[] rgb(Taesd taesd, float[] latent, int[] shape) {
        int c = shape[1];
        int h = shape[2];
        int w = shape[3];
        if (c != taesd.latentChannels()) {
            throw new IllegalArgumentException("latent has " + c + " channels; TAESD takes " + taesd.latentChannels());
        }
        float[] item = java.util.Arrays.copyOf(latent, c * h * w);
        float[] x = taesd.decode(item, 1, h, w);
        int oh = h * 8;
        int ow = w * 8;
        int plane = oh * ow;
        byte[] out = new byte[plane * 3];
        for (int p = 0; p < plane; p++) {
            for (int ch = 0; ch < 3; ch++) {
                float signed = x[ch * plane + p] * 2f - 1f;
                out[p * 3 + ch] = (byte) LatentPreview.toByte(signed);
            }
        }
        return out;
    }

    static byte[] jpeg(Taesd taesd, float[] latent, int[] shape) {
        int oh = shape[2] * 8;
        int ow = shape[3] * 8;
        byte[] rgb = rgb(taesd, latent, shape);
        BufferedImage img = new BufferedImage(ow, oh, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < oh; y++) {
            for (int x = 0; x < ow; x++) {
                int p = (y * ow + x) * 3;
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
}
