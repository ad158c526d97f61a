package jdiffusion.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.Javalin;
import io.javalin.http.Context;
import io.javalin.http.UploadedFile;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import javax.imageio.ImageIO;
import jdiffusion.pipeline.MaskOps;
import jdiffusion.workflow.ModelPaths;
import jdiffusion.workflow.WorkflowException;

/**
 * Inpainting at the server's edges: the mask fields of AUTOMATIC1111's {@code img2img} turned into workflow nodes
 * ({@link #a1111Mask}). ComfyUI's {@code POST /upload/mask} is served by {@link ComfyExtraRoutes}.
 */
final class InpaintRoutes {
    private InpaintRoutes() {
    }

    /** Decodes a base64 image field. */
    @FunctionalInterface
    interface Decoder {
        BufferedImage decode(String base64, String what) throws IOException;
    }

    /** Stores an image in input/ and returns its name. */
    @FunctionalInterface
    interface Saver {
        String save(BufferedImage image) throws IOException;
    }

    /**
     * A1111's img2img mask fields on the prompt {@link Workflows#prompt} built: {@code mask} (base64, white =
     * repaint, converted to L), {@code inpainting_mask_invert} (1 = repaint the rest), {@code mask_blur} (Gaussian,
     * default 4), {@code inpainting_fill} (1 "original": InpaintModelConditioning with the noise mask, which also
     * feeds an inpainting model; 0 / 2 / 3: VAEEncodeForInpaint, the masked pixels grey),
     * {@code inpaint_full_res} / {@code inpaint_full_res_padding} (accepted; the whole picture is inpainted). As
     * A1111 does, the result is pasted over the init image through the mask {@code clip(2 * blurred)}
     * (ImageCompositeMasked; batch 1). Does nothing without a mask.
     */
    static void a1111Mask(JsonNode r, ObjectNode prompt, Decoder decoder, Saver saver) throws IOException {
        JsonNode maskField = r.get("mask");
        if (maskField == null || maskField.isNull() || maskField.asText().isEmpty()) {
            return;
        }
        BufferedImage img = decoder.decode(maskField.asText(), "mask");
        int w = img.getWidth();
        int h = img.getHeight();
        float[] m = new float[w * h];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int rgb = img.getRGB(x, y);
                int l = (((rgb >> 16) & 255) * 19595 + ((rgb >> 8) & 255) * 38470 + (rgb & 255) * 7471 + 0x8000) >> 16;
                m[y * w + x] = l / 255f;
            }
        }
        if (r.path("inpainting_mask_invert").asInt(0) == 1) {
            m = MaskOps.invert(m);
        }
        double blur = r.path("mask_blur").asDouble(4);
        if (!Double.isFinite(blur) || blur < 0 || blur > 256) {
            throw ApiError.status(400, "mask_blur must be between 0 and 256, got " + r.path("mask_blur"));
        }
        float[] blurred = MaskOps.gaussianBlur(m, 1, h, w, blur);
        float[] overlay = new float[blurred.length];
        for (int i = 0; i < overlay.length; i++) {
            overlay[i] = Math.min(1f, blurred[i] * 2f);
        }
        String maskName = saver.save(grey(blurred, w, h));
        String overlayName = saver.save(grey(overlay, w, h));
        ObjectNode maskNode = node(prompt, "40", "LoadImageMask");
        maskNode.put("image", maskName);
        maskNode.put("channel", "red");
        ObjectNode overlayNode = node(prompt, "41", "LoadImageMask");
        overlayNode.put("image", overlayName);
        overlayNode.put("channel", "red");
        String pixels = prompt.has("12") ? "12" : "10";
        ObjectNode enc = node(prompt, "11", r.path("inpainting_fill").asInt(1) == 1 ? "InpaintModelConditioning"
                : "VAEEncodeForInpaint");
        link(enc, "pixels", pixels, 0);
        link(enc, "vae", "4", 2);
        link(enc, "mask", "40", 0);
        ObjectNode ks = (ObjectNode) prompt.path("3").path("inputs");
        if (prompt.path("11").path("class_type").asText().equals("InpaintModelConditioning")) {
            link(enc, "positive", "6", 0);
            link(enc, "negative", "7", 0);
            enc.put("noise_mask", true);
            link(ks, "positive", "11", 0);
            link(ks, "negative", "11", 1);
            link(ks, "latent_image", "11", 2);
        } else {
            enc.put("grow_mask_by", 0);
        }
        if (r.path("batch_size").asInt(1) == 1) {
            ObjectNode comp = node(prompt, "42", "ImageCompositeMasked");
            link(comp, "destination", pixels, 0);
            link(comp, "source", "8", 0);
            comp.put("x", 0);
            comp.put("y", 0);
            comp.put("resize_source", false);
            link(comp, "mask", "41", 0);
            link((ObjectNode) prompt.path(Workflows.SAVE_NODE).path("inputs"), "images", "42", 0);
        }
    }

    private static BufferedImage grey(float[] m, int w, int h) {
        BufferedImage out = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int v = Math.round(Math.min(1f, Math.max(0f, m[y * w + x])) * 255f);
                out.setRGB(x, y, v << 16 | v << 8 | v);
            }
        }
        return out;
    }

    private static ObjectNode node(ObjectNode prompt, String id, String classType) {
        ObjectNode n = prompt.putObject(id);
        n.put("class_type", classType);
        return n.putObject("inputs");
    }

    private static void link(ObjectNode inputs, String name, String source, int slot) {
        ArrayNode a = inputs.putArray(name);
        a.add(source).add(slot);
    }
}
