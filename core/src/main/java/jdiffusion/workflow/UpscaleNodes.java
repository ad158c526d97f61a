package jdiffusion.workflow;

import static jdiffusion.workflow.InputSpec.combo;
import static jdiffusion.workflow.InputSpec.files;
import static jdiffusion.workflow.InputSpec.link;
import static jdiffusion.workflow.InputSpec.number;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import jdiffusion.io.ModelFormatException;
import jdiffusion.model.upscale.UpscaleModel;
import jdiffusion.workflow.Values.Image;
import jdiffusion.workflow.Values.Latent;

/**
 * Scaling nodes: {@code LatentUpscaleBy}, {@code ImageScaleBy}, and upscale models ({@code UpscaleModelLoader} from
 * {@code models/upscale_models}, {@code ImageUpscaleWithModel} with ComfyUI's fixed 512-pixel tiles and 32-pixel
 * overlap). {@code LatentUpscale} and {@code ImageScale} live with the basic nodes and share the sizes here.
 */
final class UpscaleNodes {
    /** ImageUpscaleWithModel's tile and overlap (hard-coded in ComfyUI; it halves the tile only on out-of-memory). */
    static final int TILE = 512;
    static final int OVERLAP = 32;

    private UpscaleNodes() {
    }

    /** UPSCALE_MODEL: a model file, loaded on first use through the model cache. */
    record UpscaleModelRef(Path file) {
    }

    private record UpscaleKey(Path file) {
    }

    static void register() {
        Nodes.add("LatentUpscaleBy", "Upscale Latent By", "latent", false,
                List.of(link("samples", "LATENT"), combo("upscale_method", Nodes.LATENT_UPSCALE_METHODS),
                        number("scale_by", 1.5, 0.01, 8.0, 0.01, null)),
                List.of("LATENT"), UpscaleNodes::latentUpscaleBy);
        Nodes.add("ImageScaleBy", "Upscale Image By", "image/upscaling", false,
                List.of(link("image", "IMAGE"), combo("upscale_method", Nodes.IMAGE_UPSCALE_METHODS),
                        number("scale_by", 1.0, 0.01, 8.0, 0.01, null)),
                List.of("IMAGE"), UpscaleNodes::imageScaleBy);
        Nodes.add("UpscaleModelLoader", "Load Upscale Model", "loaders", false,
                List.of(files("model_name", "upscale_models")),
                List.of("UPSCALE_MODEL"), UpscaleNodes::upscaleModelLoader);
        Nodes.add("ImageUpscaleWithModel", "Upscale Image (using Model)", "image/upscaling", false,
                List.of(link("upscale_model", "UPSCALE_MODEL"), link("image", "IMAGE")),
                List.of("IMAGE"), UpscaleNodes::imageUpscaleWithModel);
    }

    /** Python's round(): half to even. */
    static int round(double v) {
        return (int) Math.rint(v);
    }

    static NodeResult latentUpscaleBy(Map<String, Object> in, NodeContext ctx) {
        Latent s = (Latent) in.get("samples");
        double by = (Double) in.get("scale_by");
        int nw = round(s.width() * by);
        int nh = round(s.height() * by);
        float[] out = Resample.upscale(s.samples(), s.batch(), s.channels(), s.height(), s.width(), nw, nh,
                (String) in.get("upscale_method"), "disabled");
        return NodeResult.of(new Latent(out, s.batch(), s.channels(), nh, nw));
    }

    static NodeResult imageScaleBy(Map<String, Object> in, NodeContext ctx) {
        Image img = (Image) in.get("image");
        double by = (Double) in.get("scale_by");
        int nw = round(img.width() * by);
        int nh = round(img.height() * by);
        float[] out = Resample.upscale(img.pixels(), img.batch(), 3, img.height(), img.width(), nw, nh,
                (String) in.get("upscale_method"), "disabled");
        return NodeResult.of(new Image(out, img.batch(), nh, nw));
    }

    static NodeResult upscaleModelLoader(Map<String, Object> in, NodeContext ctx) {
        return NodeResult.of(new UpscaleModelRef(ctx.paths().resolve("upscale_models", (String) in.get("model_name"))));
    }

    static NodeResult imageUpscaleWithModel(Map<String, Object> in, NodeContext ctx) {
        UpscaleModelRef ref = (UpscaleModelRef) in.get("upscale_model");
        Image img = (Image) in.get("image");
        UpscaleModel model = ctx.models().get(new UpscaleKey(ref.file()), () -> load(ref.file()));
        if (model.inChannels() != 3 || model.outChannels() != 3) {
            throw new WorkflowException("ImageUpscaleWithModel: the model maps " + model.inChannels() + " to "
                    + model.outChannels() + " channels; IMAGE has 3");
        }
        int s = model.scale();
        float[] out;
        try {
            out = model.upscaleTiled(img.pixels(), img.batch(), img.height(), img.width(), TILE, TILE, OVERLAP);
        } catch (IllegalArgumentException e) {
            throw new WorkflowException("ImageUpscaleWithModel: " + e.getMessage());
        }
        for (int i = 0; i < out.length; i++) {
            out[i] = Math.min(1f, Math.max(0f, out[i]));
        }
        return NodeResult.of(new Image(out, img.batch(), img.height() * s, img.width() * s));
    }

    private static ModelCache.Entry<UpscaleModel> load(Path file) {
        try {
            UpscaleModel m = UpscaleModel.open(file);
            return new ModelCache.Entry<>(m, Files.size(file), List.of());
        } catch (ModelFormatException e) {
            throw new WorkflowException(e.getMessage(), e);
        } catch (IOException e) {
            throw new WorkflowException(file + ": " + e.getMessage(), e);
        }
    }
}
