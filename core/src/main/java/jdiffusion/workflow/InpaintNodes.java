package jdiffusion.workflow;

import static jdiffusion.workflow.InputSpec.MAX_RESOLUTION;
import static jdiffusion.workflow.InputSpec.bool;
import static jdiffusion.workflow.InputSpec.combo;
import static jdiffusion.workflow.InputSpec.integer;
import static jdiffusion.workflow.InputSpec.link;
import static jdiffusion.workflow.InputSpec.number;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import jdiffusion.io.PngImage;
import jdiffusion.io.PngReader;
import jdiffusion.model.Vae;
import jdiffusion.pipeline.Inpainting;
import jdiffusion.pipeline.MaskOps;
import jdiffusion.sampling.ConcatNetwork;
import jdiffusion.sampling.DiscreteModel;
import jdiffusion.sampling.KSampler;
import jdiffusion.workflow.Values.Cond;
import jdiffusion.workflow.Values.Image;
import jdiffusion.workflow.Values.InpaintConcat;
import jdiffusion.workflow.Values.Latent;
import jdiffusion.workflow.Values.Mask;
import jdiffusion.workflow.Values.VaeRef;

/**
 * ComfyUI's inpainting and mask nodes (nodes.py, comfy_extras/nodes_mask.py): LoadImageMask, SetLatentNoiseMask,
 * VAEEncodeForInpaint, InpaintModelConditioning, ImagePadForOutpaint, GrowMask, InvertMask, SolidMask, ImageToMask,
 * MaskToImage; and the sampler side (the denoise mask of a LATENT's noise_mask, the extra channels of a 9-channel
 * inpainting UNet). LoadImage's MASK output (1 - alpha) lives with LoadImage.
 */
final class InpaintNodes {
    private static final List<String> RGB_CHANNELS = List.of("red", "green", "blue", "alpha");

    private InpaintNodes() {
    }

    static void register() {
        Nodes.add("LoadImageMask", "Load Image (as Mask)", "mask", false,
                List.of(InputSpec.inputImages("image"), combo("channel", List.of("alpha", "red", "green", "blue"))),
                List.of("MASK"), InpaintNodes::loadImageMask);
        Nodes.add("SetLatentNoiseMask", "Set Latent Noise Mask", "latent/inpaint", false,
                List.of(link("samples", "LATENT"), link("mask", "MASK")), List.of("LATENT"),
                InpaintNodes::setLatentNoiseMask);
        Nodes.add("VAEEncodeForInpaint", "VAE Encode (for Inpainting)", "latent/inpaint", false,
                List.of(link("pixels", "IMAGE"), link("vae", "VAE"), link("mask", "MASK"),
                        integer("grow_mask_by", 6, 0, 64, 1)),
                List.of("LATENT"), InpaintNodes::vaeEncodeForInpaint);
        Nodes.add(new NodeDefinition("InpaintModelConditioning", "InpaintModelConditioning", "conditioning/inpaint",
                "", false,
                List.of(link("positive", "CONDITIONING"), link("negative", "CONDITIONING"), link("vae", "VAE"),
                        link("pixels", "IMAGE"), link("mask", "MASK"), bool("noise_mask", true)),
                List.of("CONDITIONING", "CONDITIONING", "LATENT"), List.of("positive", "negative", "latent"),
                Map.of(), InpaintNodes::inpaintModelConditioning));
        Nodes.add("ImagePadForOutpaint", "Pad Image for Outpainting", "image", false,
                List.of(link("image", "IMAGE"), integer("left", 0, 0, MAX_RESOLUTION, 8),
                        integer("top", 0, 0, MAX_RESOLUTION, 8), integer("right", 0, 0, MAX_RESOLUTION, 8),
                        integer("bottom", 0, 0, MAX_RESOLUTION, 8), integer("feathering", 40, 0, MAX_RESOLUTION, 1)),
                List.of("IMAGE", "MASK"), InpaintNodes::imagePadForOutpaint);
        Nodes.add("GrowMask", "GrowMask", "mask", false,
                List.of(link("mask", "MASK"), integer("expand", 0, -MAX_RESOLUTION, MAX_RESOLUTION, 1),
                        bool("tapered_corners", true)),
                List.of("MASK"), InpaintNodes::growMask);
        Nodes.add("InvertMask", "InvertMask", "mask", false, List.of(link("mask", "MASK")), List.of("MASK"),
                InpaintNodes::invertMask);
        Nodes.add("SolidMask", "SolidMask", "mask", false,
                List.of(number("value", 1.0, 0.0, 1.0, 0.01, null), integer("width", 512, 1, MAX_RESOLUTION, 1),
                        integer("height", 512, 1, MAX_RESOLUTION, 1)),
                List.of("MASK"), InpaintNodes::solidMask);
        Nodes.add("ImageToMask", "Convert Image to Mask", "mask", false,
                List.of(link("image", "IMAGE"), combo("channel", RGB_CHANNELS)), List.of("MASK"),
                InpaintNodes::imageToMask);
        Nodes.add("MaskToImage", "Convert Mask to Image", "mask", false, List.of(link("mask", "MASK")),
                List.of("IMAGE"), InpaintNodes::maskToImage);
        Nodes.add("ImageCompositeMasked", "ImageCompositeMasked", "image", false,
                List.of(link("destination", "IMAGE"), link("source", "IMAGE"),
                        integer("x", 0, 0, MAX_RESOLUTION, 1), integer("y", 0, 0, MAX_RESOLUTION, 1),
                        bool("resize_source", false),
                        new InputSpec("mask", "MASK", true, null, null, null, null, null, null, Map.of())),
                List.of("IMAGE"), InpaintNodes::imageCompositeMasked);
    }

    // ---------------------------------------------------------------- nodes

    /**
     * LoadImageMask: one channel of the image as RGBA / 255; alpha is inverted (1 - alpha) and an image without
     * alpha gives zeros of its size (PIL's convert("RGBA") adds an opaque alpha).
     */
    static NodeResult loadImageMask(Map<String, Object> in, NodeContext ctx) {
        Path file = ctx.paths().resolveInput((String) in.get("image"));
        PngReader.Rgba rgba;
        try {
            rgba = PngReader.readRgba(file);
        } catch (IOException | RuntimeException e) {
            throw new WorkflowException("LoadImageMask: cannot read " + file.getFileName() + ": " + e.getMessage());
        }
        PngImage png = rgba.rgb();
        int plane = png.width() * png.height();
        String channel = (String) in.get("channel");
        float[] m;
        if (channel.equals("alpha")) {
            m = rgba.alpha() == null ? new float[plane] : oneMinus(rgba.alpha());
        } else {
            int c = RGB_CHANNELS.indexOf(channel);
            m = new float[plane];
            for (int p = 0; p < plane; p++) {
                m[p] = (png.rgb()[p * 3 + c] & 0xFF) / 255f;
            }
        }
        return NodeResult.of(new Mask(m, 1, png.height(), png.width()));
    }

    /** SetLatentNoiseMask: the mask rides with the latent, unchanged (resized at sampling). */
    static NodeResult setLatentNoiseMask(Map<String, Object> in, NodeContext ctx) {
        Latent s = (Latent) in.get("samples");
        return NodeResult.of(s.withNoiseMask((Mask) in.get("mask")));
    }

    /**
     * VAEEncodeForInpaint: the latent of the image with the (rounded) masked pixels grey, and the mask rounded and
     * grown by grow_mask_by as its noise mask.
     */
    static NodeResult vaeEncodeForInpaint(Map<String, Object> in, NodeContext ctx) {
        Image img = (Image) in.get("pixels");
        Mask mask = (Mask) in.get("mask");
        Vae vae = encoder(ctx, (VaeRef) in.get("vae"), "VAEEncodeForInpaint");
        Inpainting.EncodeForInpaint r;
        try {
            r = Inpainting.encodeForInpaintPixels(img.pixels(), img.batch(), img.height(), img.width(),
                    mask.values(), mask.batch(), mask.height(), mask.width(),
                    SamplerNodes.intOf(in, "grow_mask_by"), vae.downscale());
        } catch (IllegalArgumentException e) {
            throw new WorkflowException("VAEEncodeForInpaint: " + e.getMessage());
        }
        MaskOps.MaskedPixels mp = r.masked();
        Latent latent = encode(vae, mp.pixels(), img.batch(), mp.height(), mp.width());
        return NodeResult.of(latent.withNoiseMask(new Mask(r.noiseMask(), mask.batch(), mp.height(), mp.width())));
    }

    /**
     * InpaintModelConditioning: both conditionings get the latent of the grey-masked pixels and the (unrounded)
     * mask for an inpainting UNet's extra channels; the LATENT is the original image's, with the mask as its noise
     * mask when noise_mask is set.
     */
    static NodeResult inpaintModelConditioning(Map<String, Object> in, NodeContext ctx) {
        Image img = (Image) in.get("pixels");
        Mask mask = (Mask) in.get("mask");
        Vae vae = encoder(ctx, (VaeRef) in.get("vae"), "InpaintModelConditioning");
        MaskOps.MaskedPixels mp;
        MaskOps.MaskedPixels whole;
        try {
            // ComfyUI crops to multiples of 8 here whatever the VAE's factor
            mp = MaskOps.greyMasked(img.pixels(), img.batch(), img.height(), img.width(), mask.values(),
                    mask.batch(), mask.height(), mask.width(), 8);
            whole = Inpainting.centreCrop(img.pixels(), img.batch(), img.height(), img.width(), vae.downscale());
        } catch (IllegalArgumentException e) {
            throw new WorkflowException("InpaintModelConditioning: " + e.getMessage());
        }
        Latent concat = encode(vae, mp.pixels(), img.batch(), mp.height(), mp.width());
        Latent orig = encode(vae, whole.pixels(), img.batch(), whole.height(), whole.width());
        Mask cropped = new Mask(mp.mask(), mask.batch(), mp.height(), mp.width());
        InpaintConcat c = new InpaintConcat(concat, cropped);
        Cond positive = (Cond) in.get("positive");
        Cond negative = (Cond) in.get("negative");
        boolean noiseMask = (Boolean) in.get("noise_mask");
        return NodeResult.of(positive.withConcat(c), negative.withConcat(c),
                noiseMask ? orig.withNoiseMask(cropped) : orig);
    }

    /** ImagePadForOutpaint: grey border and the (feathered) outpaint mask. */
    static NodeResult imagePadForOutpaint(Map<String, Object> in, NodeContext ctx) {
        Image img = (Image) in.get("image");
        MaskOps.Padded p = MaskOps.padForOutpaint(img.pixels(), img.batch(), 3, img.height(), img.width(),
                SamplerNodes.intOf(in, "left"), SamplerNodes.intOf(in, "top"), SamplerNodes.intOf(in, "right"),
                SamplerNodes.intOf(in, "bottom"), SamplerNodes.intOf(in, "feathering"));
        return NodeResult.of(new Image(p.image(), img.batch(), p.height(), p.width()),
                new Mask(p.mask(), 1, p.height(), p.width()));
    }

    static NodeResult growMask(Map<String, Object> in, NodeContext ctx) {
        Mask m = (Mask) in.get("mask");
        return NodeResult.of(new Mask(MaskOps.growMask(m.values(), m.batch(), m.height(), m.width(),
                SamplerNodes.intOf(in, "expand"), (Boolean) in.get("tapered_corners")), m.batch(), m.height(),
                m.width()));
    }

    static NodeResult invertMask(Map<String, Object> in, NodeContext ctx) {
        Mask m = (Mask) in.get("mask");
        return NodeResult.of(new Mask(MaskOps.invert(m.values()), m.batch(), m.height(), m.width()));
    }

    static NodeResult solidMask(Map<String, Object> in, NodeContext ctx) {
        int w = SamplerNodes.intOf(in, "width");
        int h = SamplerNodes.intOf(in, "height");
        if ((long) w * h > Integer.MAX_VALUE / 4) {
            throw new WorkflowException("SolidMask: " + w + "x" + h + " is too large");
        }
        float[] v = new float[w * h];
        java.util.Arrays.fill(v, (float) (double) (Double) in.get("value"));
        return NodeResult.of(new Mask(v, 1, h, w));
    }

    /** ImageToMask: one colour channel as the mask (an IMAGE here has no alpha channel). */
    static NodeResult imageToMask(Map<String, Object> in, NodeContext ctx) {
        Image img = (Image) in.get("image");
        int c = RGB_CHANNELS.indexOf((String) in.get("channel"));
        if (c > 2) {
            throw new WorkflowException("ImageToMask: the image has no alpha channel (IMAGE values are RGB)");
        }
        int plane = img.height() * img.width();
        float[] m = new float[img.batch() * plane];
        for (int b = 0; b < img.batch(); b++) {
            System.arraycopy(img.pixels(), (b * 3 + c) * plane, m, b * plane, plane);
        }
        return NodeResult.of(new Mask(m, img.batch(), img.height(), img.width()));
    }

    /** MaskToImage: the mask in all three channels. */
    static NodeResult maskToImage(Map<String, Object> in, NodeContext ctx) {
        Mask m = (Mask) in.get("mask");
        int plane = m.height() * m.width();
        float[] px = new float[m.batch() * 3 * plane];
        for (int b = 0; b < m.batch(); b++) {
            for (int c = 0; c < 3; c++) {
                System.arraycopy(m.values(), b * plane, px, (b * 3 + c) * plane, plane);
            }
        }
        return NodeResult.of(new Image(px, m.batch(), m.height(), m.width()));
    }

    /**
     * ImageCompositeMasked (multiplier 1): source pasted into destination at (x, y) through the mask (bilinear to the
     * source's size; ones when none): {@code dest = m * source + (1 - m) * dest} over the visible part. The source
     * is repeated / cut to the destination's batch, as ComfyUI does.
     */
    static NodeResult imageCompositeMasked(Map<String, Object> in, NodeContext ctx) {
        Image dst = (Image) in.get("destination");
        Image src = (Image) in.get("source");
        Mask mask = (Mask) in.get("mask");
        int sh = src.height();
        int sw = src.width();
        float[] sp = src.pixels();
        if ((Boolean) in.get("resize_source")) {
            sp = MaskOps.bilinear(sp, src.batch() * 3, sh, sw, dst.height(), dst.width());
            sh = dst.height();
            sw = dst.width();
        }
        int x = Math.min(SamplerNodes.intOf(in, "x"), dst.width());
        int y = Math.min(SamplerNodes.intOf(in, "y"), dst.height());
        float[] m = mask == null ? null : MaskOps.bilinear(mask.values(), mask.batch(), mask.height(), mask.width(),
                sh, sw);
        int visibleW = Math.min(sw, dst.width() - x);
        int visibleH = Math.min(sh, dst.height() - y);
        float[] out = dst.pixels().clone();
        int dPlane = dst.height() * dst.width();
        int sPlane = sh * sw;
        for (int b = 0; b < dst.batch(); b++) {
            int sb = b % src.batch();
            int mb = mask == null ? 0 : b % mask.batch();
            for (int c = 0; c < 3; c++) {
                for (int yy = 0; yy < visibleH; yy++) {
                    for (int xx = 0; xx < visibleW; xx++) {
                        float k = m == null ? 1f : m[mb * sPlane + yy * sw + xx];
                        int d = (b * 3 + c) * dPlane + (yy + y) * dst.width() + xx + x;
                        float s = sp[(sb * 3 + c) * sPlane + yy * sw + xx];
                        out[d] = k * s + (1f - k) * out[d];
                    }
                }
            }
        }
        return NodeResult.of(new Image(out, dst.batch(), dst.height(), dst.width()));
    }

    // ---------------------------------------------------------------- sampler side

    /** The KSampler's denoise mask of a latent with a noise mask (prepare_mask), null without one. */
    static float[] denoiseMask(Latent latent) {
        Mask nm = latent.noiseMask();
        if (nm == null) {
            return null;
        }
        return MaskOps.prepareDenoiseMask(nm.values(), nm.batch(), nm.height(), nm.width(), latent.batch(),
                latent.channels(), latent.height(), latent.width());
    }

    /**
     * BaseModel.concat_cond for an inpainting UNet: the mask channel from InpaintModelConditioning's concat_mask,
     * else from the denoise mask (rounded), else ones; the masked-image latent from its concat_latent_image, else the
     * latent being sampled, else ComfyUI's blank-image latent (the positive conditioning's concat serves both rows).
     */
    static DiscreteModel.Network withConcat(DiscreteModel.Network network, LoadedUnet unet, Cond positive,
            Latent latent, float[] denoiseMask) {
        int b = latent.batch();
        int c = latent.channels();
        int h = latent.height();
        int w = latent.width();
        int extra = unet.inChannels() - c;
        if (extra != c + 1) {
            throw new WorkflowException("the model takes " + unet.inChannels() + " input channels; only inpainting"
                    + " UNets with latent + mask + masked-image latent (" + (2 * c + 1) + ") are supported");
        }
        InpaintConcat ic = positive.concat();
        float[] concat;
        if (ic == null && denoiseMask == null) {
            concat = Inpainting.blankConcat(b, h, w);
        } else {
            float[] mask;
            if (ic != null) {
                Mask m = ic.mask();
                mask = Inpainting.concatMask(m.values(), m.batch(), m.height(), m.width(), b, h, w);
            } else {
                mask = new float[b * h * w];
                for (int i = 0; i < b; i++) {
                    for (int p = 0; p < h * w; p++) {
                        mask[i * h * w + p] = (float) Math.rint(denoiseMask[i * c * h * w + p]);
                    }
                }
            }
            Latent source = ic != null ? ic.latent() : latent;
            if (source.height() != h || source.width() != w || source.channels() != c) {
                throw new WorkflowException("the inpaint conditioning's latent is " + source.width() + "x"
                        + source.height() + " but the sampled latent is " + w + "x" + h);
            }
            concat = Inpainting.concatConditioning(mask, KSampler.processLatentIn(source.samples(),
                    unet.latentScale()), b, c, h, w);
        }
        return new ConcatNetwork(network, concat, b, c * h * w);
    }

    // ---------------------------------------------------------------- helpers

    static float[] oneMinus(byte[] alpha) {
        float[] m = new float[alpha.length];
        for (int i = 0; i < m.length; i++) {
            m[i] = 1f - (alpha[i] & 0xFF) / 255f;
        }
        return m;
    }

    private static Vae encoder(NodeContext ctx, VaeRef ref, String node) {
        Vae vae = ModelLoading.vae(ctx.models(), ref);
        if (!vae.canEncode()) {
            throw new WorkflowException(node + ": the VAE has no encoder weights");
        }
        return vae;
    }

    /** VAE posterior mean (raw) of NCHW pixels in [0, 1]. */
    private static Latent encode(Vae vae, float[] unit, int batch, int h, int w) {
        float[] signed = new float[unit.length];
        for (int i = 0; i < signed.length; i++) {
            signed[i] = unit[i] * 2f - 1f;
        }
        Vae.Posterior p = vae.encode(signed, batch, h, w);
        return new Latent(p.mean(), batch, p.channels(), p.h(), p.w());
    }
}
