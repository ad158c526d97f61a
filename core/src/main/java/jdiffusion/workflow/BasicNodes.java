package jdiffusion.workflow;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import jdiffusion.model.Conditioning;
import jdiffusion.model.TextConditioner;
import jdiffusion.pipeline.TextCond;
import jdiffusion.workflow.Values.ClipRef;
import jdiffusion.workflow.Values.Cond;
import jdiffusion.workflow.Values.Latent;
import jdiffusion.workflow.Values.LoraUse;
import jdiffusion.workflow.Values.ModelRef;
import jdiffusion.workflow.Values.VaeRef;

/** Loaders, LoRA, model sampling, text encoding and latent nodes. */
final class BasicNodes {
    private BasicNodes() {
    }

    static NodeResult checkpointLoader(Map<String, Object> in, NodeContext ctx) {
        Path file = ctx.paths().resolve("checkpoints", (String) in.get("ckpt_name"));
        return NodeResult.of(new ModelRef(file, false, List.of(), null, false), new ClipRef(file, List.of(), 1),
                new VaeRef(file));
    }

    static NodeResult unetLoader(Map<String, Object> in, NodeContext ctx) {
        // weight_dtype: the fp8 choices are storage formats; this engine computes in float32 whatever is chosen
        Path file = ctx.paths().resolve("diffusion_models", (String) in.get("unet_name"));
        return NodeResult.of(new ModelRef(file, true, List.of(), null, false));
    }

    static NodeResult vaeLoader(Map<String, Object> in, NodeContext ctx) {
        return NodeResult.of(new VaeRef(ctx.paths().resolve("vae", (String) in.get("vae_name"))));
    }

    static NodeResult clipSetLastLayer(Map<String, Object> in, NodeContext ctx) {
        ClipRef clip = (ClipRef) in.get("clip");
        long stop = (Long) in.get("stop_at_clip_layer");
        return NodeResult.of(clip.withClipSkip((int) -stop));
    }

    static NodeResult clipTextEncode(Map<String, Object> in, NodeContext ctx) {
        TextConditioner text = ModelLoading.clip(ctx.models(), (ClipRef) in.get("clip"))
                .withEmbeddings(jdiffusion.text.Embeddings.folders(ctx.paths().folders("embeddings"))); // embedding:name
        Conditioning c = text.encode((String) in.get("text"));
        return NodeResult.of(new Cond(new TextCond(c.context(), c.tokens(), c.dim(), c.pooled())));
    }

    /** ComfyUI's LoraLoader: a zero strength leaves that side untouched. */
    static NodeResult loraLoader(Map<String, Object> in, NodeContext ctx) {
        Path file = ctx.paths().resolve("loras", (String) in.get("lora_name"));
        ModelRef model = (ModelRef) in.get("model");
        ClipRef clip = (ClipRef) in.get("clip");
        double sm = (Double) in.get("strength_model");
        double sc = (Double) in.get("strength_clip");
        return NodeResult.of(sm == 0 ? model : model.withLora(new LoraUse(file, sm)),
                sc == 0 ? clip : clip.withLora(new LoraUse(file, sc)));
    }

    static NodeResult loraLoaderModelOnly(Map<String, Object> in, NodeContext ctx) {
        Path file = ctx.paths().resolve("loras", (String) in.get("lora_name"));
        ModelRef model = (ModelRef) in.get("model");
        double sm = (Double) in.get("strength_model");
        return NodeResult.of(sm == 0 ? model : model.withLora(new LoraUse(file, sm)));
    }

    static NodeResult modelSamplingDiscrete(Map<String, Object> in, NodeContext ctx) {
        String sampling = (String) in.get("sampling");
        if (!List.of("eps", "v_prediction", "x0").contains(sampling)) {
            throw new WorkflowException("ModelSamplingDiscrete: sampling '" + sampling
                    + "' is not supported by this build (supported: eps, v_prediction, x0)");
        }
        ModelRef model = (ModelRef) in.get("model");
        return NodeResult.of(model.withSampling(sampling, (Boolean) in.get("zsnr")));
    }

    static NodeResult emptyLatent(Map<String, Object> in, NodeContext ctx) {
        int w = SamplerNodes.intOf(in, "width") / 8;
        int h = SamplerNodes.intOf(in, "height") / 8;
        int b = SamplerNodes.intOf(in, "batch_size");
        long n = (long) b * 4 * h * w;
        if (n > Integer.MAX_VALUE - 8) {
            throw new WorkflowException("EmptyLatentImage: " + b + " x " + (w * 8) + "x" + (h * 8)
                    + " is too large for one latent");
        }
        return NodeResult.of(new Latent(new float[(int) n], b, 4, h, w));
    }

    /** ComfyUI's LatentUpscale: a zero side keeps the aspect ratio, sides below 64 are raised to 64. */
    static NodeResult latentUpscale(Map<String, Object> in, NodeContext ctx) {
        Latent s = (Latent) in.get("samples");
        int width = SamplerNodes.intOf(in, "width");
        int height = SamplerNodes.intOf(in, "height");
        if (width == 0 && height == 0) {
            return NodeResult.of(s);
        }
        if (width == 0) {
            height = Math.max(64, height);
            width = Math.max(64, (int) Math.round((double) s.width() * height / s.height()));
        } else if (height == 0) {
            width = Math.max(64, width);
            height = Math.max(64, (int) Math.round((double) s.height() * width / s.width()));
        } else {
            width = Math.max(64, width);
            height = Math.max(64, height);
        }
        int nw = width / 8;
        int nh = height / 8;
        float[] out = Resample.upscale(s.samples(), s.batch() * s.channels(), s.height(), s.width(), nw, nh,
                (String) in.get("upscale_method"), (String) in.get("crop"));
        return NodeResult.of(new Latent(out, s.batch(), s.channels(), nh, nw));
    }
}
