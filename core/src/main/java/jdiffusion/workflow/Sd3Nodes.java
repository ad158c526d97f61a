package jdiffusion.workflow;

import static jdiffusion.workflow.InputSpec.combo;
import static jdiffusion.workflow.InputSpec.files;
import static jdiffusion.workflow.InputSpec.integer;
import static jdiffusion.workflow.InputSpec.link;
import static jdiffusion.workflow.InputSpec.number;
import static jdiffusion.workflow.InputSpec.text;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import jdiffusion.model.Conditioning;
import jdiffusion.model.Family;
import jdiffusion.model.Sd3TextConditioner;
import jdiffusion.model.mmdit.MMDiT;
import jdiffusion.model.mmdit.Sd3Config;
import jdiffusion.model.t5.T5Encoder;
import jdiffusion.pipeline.Sd3Models;
import jdiffusion.pipeline.TextCond;
import jdiffusion.pipeline.UnetNetworks;
import jdiffusion.sampling.DiscreteModel;
import jdiffusion.sampling.KSampler;
import jdiffusion.sampling.ModelSamplingDiscrete;
import jdiffusion.sampling.NoiseSource;
import jdiffusion.sampling.PredictionType;
import jdiffusion.sampling.SamplerInfo;
import jdiffusion.sampling.Samplers;
import jdiffusion.sampling.StepCallback;
import jdiffusion.workflow.SamplerNodes.Job;
import jdiffusion.workflow.Values.Cond;
import jdiffusion.workflow.Values.Latent;

/**
 * ComfyUI's SD3 / SD3.5 nodes: {@code TripleCLIPLoader}, {@code CLIPTextEncodeSD3}, {@code EmptySD3LatentImage},
 * {@code ModelSamplingSD3}, and {@code CheckpointLoaderSimple} / {@code CLIPTextEncode} / {@code KSampler} on SD3
 * files (an MMDiT with rectified-flow sampling, 16-channel latents in SD3's latent format). MODEL and CLIP of an SD3
 * file are this class's {@link Sd3Model} and {@link Sd3Clip}; VAE is the usual {@link Values.VaeRef}.
 */
public final class Sd3Nodes {
    /** ComfyUI's default shift of SD3 (its sampling_settings and the ModelSamplingSD3 node's default). */
    public static final double DEFAULT_SHIFT = 3.0;

    /** CLIP head counts for CLIPs whose heads are not 64 wide (small test models); 0 = width / 64. */
    private static volatile int clipLHeads;
    private static volatile int clipGHeads;

    private Sd3Nodes() {
    }

    /** MODEL of an SD3 file: the MMDiT and the flow shift ModelSamplingSD3 set. */
    public record Sd3Model(Path file, double shift) {
    }

    /**
     * CLIP of SD3: CLIP-L, CLIP-G and T5 from the checkpoint (file) or separate files (TripleCLIPLoader; t5 null
     * means none).
     */
    public record Sd3Clip(Path checkpoint, Path clipL, Path clipG, Path t5) {
    }

    static void register() {
        Nodes.add("TripleCLIPLoader", "TripleCLIPLoader", "advanced/loaders", false,
                List.of(files("clip_name1", "text_encoders"), files("clip_name2", "text_encoders"),
                        files("clip_name3", "text_encoders")),
                List.of("CLIP"), Sd3Nodes::tripleClipLoader);
        Nodes.add("CLIPTextEncodeSD3", "CLIPTextEncodeSD3", "advanced/conditioning", false,
                List.of(link("clip", "CLIP"), text("clip_l", null, true), text("clip_g", null, true),
                        text("t5xxl", null, true), combo("empty_padding", List.of("none", "empty_prompt"))),
                List.of("CONDITIONING"), Sd3Nodes::clipTextEncodeSd3);
        Nodes.add("EmptySD3LatentImage", "EmptySD3LatentImage", "latent/sd3", false,
                List.of(integer("width", 1024, 16, 16384, 16), integer("height", 1024, 16, 16384, 16),
                        integer("batch_size", 1, 1, 4096, 1)),
                List.of("LATENT"), Sd3Nodes::emptySd3Latent);
        Nodes.add("ModelSamplingSD3", "ModelSamplingSD3", "advanced/model", false,
                List.of(link("model", "MODEL"), number("shift", DEFAULT_SHIFT, 0.0, 100.0, 0.01, null)),
                List.of("MODEL"), Sd3Nodes::modelSamplingSd3);
    }

    /**
     * Head counts of CLIP-L and CLIP-G for CLIPs whose heads are not 64 wide (they cannot be read from the weights;
     * every released CLIP has 64-wide heads, so only small test models need this). 0 = width / 64.
     */
    public static void setClipHeads(int l, int g) {
        clipLHeads = l;
        clipGHeads = g;
    }

    /** A UNet MODEL for a node that has no SD3 form (LoRAs, ModelSamplingDiscrete): an SD3 MODEL fails clearly. */
    static Values.ModelRef unetModel(Object v, String node) {
        if (v instanceof Sd3Model) {
            throw new WorkflowException(node + " does not support SD3 / SD3.5 models (use ModelSamplingSD3)");
        }
        return (Values.ModelRef) v;
    }

    /** A UNet checkpoint's CLIP for a node that has no SD3 form: an SD3 CLIP fails clearly. */
    static Values.ClipRef unetClip(Object v, String node) {
        if (v instanceof Sd3Clip) {
            throw new WorkflowException(node + " does not support SD3's CLIP-L / CLIP-G / T5 text encoders");
        }
        return (Values.ClipRef) v;
    }

    /** Whether a file is an SD3 / SD3.5 single file (header only). */
    static boolean isSd3File(Path file) {
        return Sd3Models.isSd3File(file);
    }

    /** CheckpointLoaderSimple on an SD3 file. */
    static NodeResult checkpoint(Path file) {
        return NodeResult.of(new Sd3Model(file, DEFAULT_SHIFT), new Sd3Clip(file, null, null, null),
                new Values.VaeRef(file));
    }

    static NodeResult modelSamplingSd3(Map<String, Object> in, NodeContext ctx) {
        if (!(in.get("model") instanceof Sd3Model m)) {
            throw new WorkflowException("ModelSamplingSD3: the model is not an SD3 / SD3.5 model");
        }
        double shift = (Double) in.get("shift");
        if (!(shift > 0)) {
            throw new WorkflowException("ModelSamplingSD3: shift must be positive, got " + shift);
        }
        return NodeResult.of(new Sd3Model(m.file(), shift));
    }

    static NodeResult emptySd3Latent(Map<String, Object> in, NodeContext ctx) {
        int w = SamplerNodes.intOf(in, "width") / 8;
        int h = SamplerNodes.intOf(in, "height") / 8;
        int b = SamplerNodes.intOf(in, "batch_size");
        long n = (long) b * 16 * h * w;
        if (n > Integer.MAX_VALUE - 8) {
            throw new WorkflowException("EmptySD3LatentImage: " + b + " x " + (w * 8) + "x" + (h * 8)
                    + " is too large for one latent");
        }
        return NodeResult.of(new Latent(new float[(int) n], b, 16, h, w));
    }

    /** TripleCLIPLoader: which file is T5 and which CLIP is L or G is read from the files (the wider CLIP is G). */
    static NodeResult tripleClipLoader(Map<String, Object> in, NodeContext ctx) {
        Path t5 = null;
        List<Path> clips = new ArrayList<>();
        List<Integer> widths = new ArrayList<>();
        for (String key : List.of("clip_name1", "clip_name2", "clip_name3")) {
            Path p = ctx.paths().resolve("text_encoders", (String) in.get(key));
            try (SafeTensors f = SafeTensors.open(p)) {
                if (T5Encoder.prefixIn(f) != null) {
                    if (t5 != null) {
                        throw new WorkflowException("TripleCLIPLoader: two T5 files (" + t5.getFileName() + ", "
                                + p.getFileName() + ")");
                    }
                    t5 = p;
                    continue;
                }
                Weights w = clipIn(f);
                if (w == null) {
                    throw new WorkflowException("TripleCLIPLoader: " + p.getFileName() + " is neither a CLIP nor a T5"
                            + " text encoder");
                }
                clips.add(p);
                widths.add(w.shape("text_model.embeddings.token_embedding.weight")[1]);
            } catch (ModelFormatException e) {
                throw new WorkflowException("TripleCLIPLoader: " + e.getMessage(), e);
            }
        }
        if (clips.size() != 2) {
            throw new WorkflowException("TripleCLIPLoader: expected CLIP-L, CLIP-G and T5-XXL, got " + clips.size()
                    + " CLIP files");
        }
        boolean firstIsG = widths.get(0) > widths.get(1);
        return NodeResult.of(new Sd3Clip(null, clips.get(firstIsG ? 1 : 0), clips.get(firstIsG ? 0 : 1), t5));
    }

    /** The HF CLIP under whatever prefix a file uses, or null. */
    private static Weights clipIn(SafeTensors f) {
        String marker = "text_model.embeddings.token_embedding.weight";
        for (String n : f.names()) {
            if (n.endsWith(marker)) {
                return Weights.prefixed(f, n.substring(0, n.length() - marker.length()));
            }
        }
        return null;
    }

    /** CLIPTextEncode with an SD3 CLIP: the same text for all three encoders. */
    static NodeResult clipTextEncode(Sd3Clip clip, String text, NodeContext ctx) {
        Conditioning c = conditioner(ctx, clip).encodeComfy(text);
        return NodeResult.of(new Cond(new TextCond(c.context(), c.tokens(), c.dim(), c.pooled())));
    }

    static NodeResult clipTextEncodeSd3(Map<String, Object> in, NodeContext ctx) {
        if (!(in.get("clip") instanceof Sd3Clip clip)) {
            throw new WorkflowException("CLIPTextEncodeSD3: the clip is not SD3's (CLIP-L, CLIP-G, T5)");
        }
        Conditioning c = conditioner(ctx, clip).encodeComfy((String) in.get("clip_l"), (String) in.get("clip_g"),
                (String) in.get("t5xxl"), "none".equals(in.get("empty_padding")));
        return NodeResult.of(new Cond(new TextCond(c.context(), c.tokens(), c.dim(), c.pooled())));
    }

    private record ClipKey(Sd3Clip clip, int lHeads, int gHeads) {
    }

    private record MmditKey(Path file) {
    }

    /** The text encoders of an SD3 CLIP, loaded through the model cache. */
    private static Sd3TextConditioner conditioner(NodeContext ctx, Sd3Clip clip) {
        int l = clipLHeads;
        int g = clipGHeads;
        return ctx.models().get(new ClipKey(clip, l, g), () -> {
            List<AutoCloseable> open = new ArrayList<>();
            try {
                SafeTensors lFile = open(clip.clipL() != null ? clip.clipL() : clip.checkpoint(), open);
                SafeTensors gFile = clip.clipG() != null ? open(clip.clipG(), open)
                        : clip.clipL() != null ? null : lFile;
                if (gFile == null) {
                    throw new WorkflowException("SD3 CLIP without a CLIP-G file");
                }
                SafeTensors t5File = clip.t5() != null ? open(clip.t5(), open)
                        : clip.checkpoint() != null && T5Encoder.prefixIn(lFile) != null ? lFile : null;
                Weights lw = clip.clipL() != null ? clipIn(lFile)
                        : Weights.prefixed(lFile, Sd3Config.TEXT_PREFIX + "clip_l.transformer.");
                Weights gw = clip.clipG() != null ? clipIn(gFile)
                        : Weights.prefixed(gFile, Sd3Config.TEXT_PREFIX + "clip_g.transformer.");
                if (lw == null || gw == null || lw.names().isEmpty() || gw.names().isEmpty()) {
                    throw new WorkflowException((clip.checkpoint() != null ? clip.checkpoint().getFileName()
                            : "TripleCLIPLoader") + ": no SD3 CLIP-L / CLIP-G text encoders (load them with"
                            + " TripleCLIPLoader)");
                }
                Sd3TextConditioner tc = Sd3TextConditioner.of(lw, gw, t5File == null ? null
                        : T5Encoder.weights(t5File), new Sd3TextConditioner.Options(l, g, 0));
                open.add(tc);
                return new ModelCache.Entry<>(tc, 0L, open);
            } catch (ModelFormatException | RuntimeException e) {
                ModelCache.closeAll(open);
                throw e instanceof WorkflowException w ? w : new WorkflowException("SD3 text encoders: "
                        + e.getMessage(), e);
            }
        });
    }

    private static SafeTensors open(Path p, List<AutoCloseable> open) throws ModelFormatException {
        SafeTensors f = SafeTensors.open(p);
        open.add(f);
        return f;
    }

    private static MMDiT mmdit(NodeContext ctx, Path file) {
        return ctx.models().get(new MmditKey(file), () -> {
            List<AutoCloseable> open = new ArrayList<>();
            try {
                SafeTensors f = open(file, open);
                MMDiT m = MMDiT.load(Weights.prefixed(f, Sd3Config.MMDIT_PREFIX));
                f.releaseResidentPages();
                return new ModelCache.Entry<>(m, m.weightBytes(), open);
            } catch (ModelFormatException | RuntimeException e) {
                ModelCache.closeAll(open);
                throw new WorkflowException(file.getFileName() + ": " + e.getMessage(), e);
            }
        });
    }

    /** KSampler / KSamplerAdvanced on an SD3 MODEL: ModelSamplingDiscreteFlow + CONST, SD3's latent format. */
    static Latent sample(Sd3Model model, Job job, NodeContext ctx) {
        ctx.interrupt().check();
        Latent latent = job.latent().withChannelsIfEmpty(16);
        if (latent.channels() != 16) {
            throw new WorkflowException("latent_image has " + latent.channels() + " channels; an SD3 model takes 16"
                    + " (use EmptySD3LatentImage)");
        }
        if (job.denoise() <= 0) {
            return latent;
        }
        MMDiT mmdit = mmdit(ctx, model.file());
        for (Cond c : List.of(job.positive(), job.negative())) {
            TextCond t = c.text();
            if (t.dim() != mmdit.config().contextIn() || t.pooled() == null
                    || t.pooled().length != mmdit.config().admIn()) {
                throw new WorkflowException("the conditioning (width " + t.dim() + ", pooled "
                        + (t.pooled() == null ? "none" : t.pooled().length) + ") does not fit this SD3 model (context "
                        + mmdit.config().contextIn() + ", pooled " + mmdit.config().admIn() + ")");
            }
        }
        ModelSamplingDiscrete ms = ModelSamplingDiscrete.flow(model.shift());
        SamplerInfo info;
        try {
            info = Samplers.get(job.sampler());
        } catch (IllegalArgumentException e) {
            throw new WorkflowException(e.getMessage());
        }
        double[] sigmas = SamplerNodes.slice(KSampler.sigmas(ms, job.scheduler(), info, job.steps(), job.denoise()),
                job);
        if (sigmas == null) {
            return latent;
        }
        int n = latent.samples().length;
        float[] noise = job.disableNoise() ? new float[n] : KSampler.initialNoise(job.seed(), n);
        boolean uncondNeeded = job.cfg() != 1.0 || info.needsUncond();
        Sd3Models models = new Sd3Models(mmdit, null, null, null);
        var network = UnetNetworks.of(models, job.positive().text(), uncondNeeded ? job.negative().text() : null,
                latent.batch(), latent.height() * 8, latent.width() * 8);
        DiscreteModel dm = new DiscreteModel(network, ms, PredictionType.FLOW);
        NoiseSource noiseSource = info.noise().create(job.seed(), n, sigmas);
        int total = Math.max(1, sigmas.length - 1);
        int[] shape = {latent.batch(), latent.channels(), latent.height(), latent.width()};
        StepCallback callback = (i, x, denoised) -> {
            ctx.progress(Math.min(i + 1, total), total, denoised, shape);
            ctx.interrupt().check();
        };
        var format = Family.SD3.latentFormat();
        float[] out = KSampler.sample(dm, ms, info, job.cfg(), latent.samples(), format.scale(), format.shift(),
                noise, sigmas, noiseSource, callback);
        return new Latent(out, latent.batch(), latent.channels(), latent.height(), latent.width());
    }
}
