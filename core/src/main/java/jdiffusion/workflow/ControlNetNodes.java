package jdiffusion.workflow;

import static jdiffusion.workflow.InputSpec.files;
import static jdiffusion.workflow.InputSpec.link;
import static jdiffusion.workflow.InputSpec.number;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import jdiffusion.io.Checkpoint;
import jdiffusion.io.ControlNetWeights;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Weights;
import jdiffusion.model.ControlNet;
import jdiffusion.pipeline.ControlHint;
import jdiffusion.pipeline.ControlStack;
import jdiffusion.pipeline.GenerateException;
import jdiffusion.pipeline.Preprocessors;
import jdiffusion.sampling.ModelSamplingDiscrete;
import jdiffusion.workflow.Values.Cond;
import jdiffusion.workflow.Values.ControlNetRef;
import jdiffusion.workflow.Values.ControlUse;
import jdiffusion.workflow.Values.Image;
import jdiffusion.workflow.Values.ModelRef;

/**
 * ComfyUI's ControlNet nodes: ControlNetLoader (folder {@code models/controlnet}), DiffControlNetLoader,
 * ControlNetApply, ControlNetApplyAdvanced, and the Canny preprocessor; and the KSampler's side of it, which turns the
 * conditionings' ControlNets into the {@link ControlStack}s of one sampling run.
 */
final class ControlNetNodes {
    private ControlNetNodes() {
    }

    static void register() {
        Nodes.add("ControlNetLoader", "Load ControlNet Model", "loaders", false,
                List.of(files("control_net_name", "controlnet")), List.of("CONTROL_NET"),
                ControlNetNodes::loader);
        Nodes.add("DiffControlNetLoader", "Load ControlNet Model (diff)", "loaders", false,
                List.of(link("model", "MODEL"), files("control_net_name", "controlnet")), List.of("CONTROL_NET"),
                ControlNetNodes::diffLoader);
        Nodes.add("ControlNetApply", "Apply ControlNet (OLD)", "conditioning/controlnet", false,
                List.of(link("conditioning", "CONDITIONING"), link("control_net", "CONTROL_NET"),
                        link("image", "IMAGE"), number("strength", 1.0, 0.0, 10.0, 0.01, null)),
                List.of("CONDITIONING"), ControlNetNodes::apply);
        Nodes.add(new NodeDefinition("ControlNetApplyAdvanced", "Apply ControlNet", "conditioning/controlnet", "",
                false, List.of(link("positive", "CONDITIONING"), link("negative", "CONDITIONING"),
                        link("control_net", "CONTROL_NET"), link("image", "IMAGE"),
                        number("strength", 1.0, 0.0, 10.0, 0.01, null),
                        number("start_percent", 0.0, 0.0, 1.0, 0.001, null),
                        number("end_percent", 1.0, 0.0, 1.0, 0.001, null),
                        new InputSpec("vae", "VAE", true, null, null, null, null, null, null, Map.of())),
                List.of("CONDITIONING", "CONDITIONING"), List.of("positive", "negative"), Map.of(),
                ControlNetNodes::applyAdvanced));
        Nodes.add("Canny", "Canny", "image/preprocessors", false,
                List.of(link("image", "IMAGE"), number("low_threshold", 0.4, 0.01, 0.99, 0.01, null),
                        number("high_threshold", 0.8, 0.01, 0.99, 0.01, null)),
                List.of("IMAGE"), ControlNetNodes::canny);
    }

    static NodeResult loader(Map<String, Object> in, NodeContext ctx) {
        return NodeResult.of(new ControlNetRef(ctx.paths().resolve("controlnet", (String) in.get("control_net_name")),
                null));
    }

    static NodeResult diffLoader(Map<String, Object> in, NodeContext ctx) {
        return NodeResult.of(new ControlNetRef(ctx.paths().resolve("controlnet", (String) in.get("control_net_name")),
                (ModelRef) in.get("model")));
    }

    /** The old node: the ControlNet on one conditioning over the whole schedule; strength 0 changes nothing. */
    static NodeResult apply(Map<String, Object> in, NodeContext ctx) {
        Cond c = (Cond) in.get("conditioning");
        double strength = (Double) in.get("strength");
        if (strength == 0) {
            return NodeResult.of(c);
        }
        return NodeResult.of(c.withControl(new ControlUse((ControlNetRef) in.get("control_net"),
                (Image) in.get("image"), strength, 0.0, 1.0)));
    }

    /**
     * One ControlNet (hint, strength, percent window) on positive AND negative, so the KSampler runs it once on the
     * [uncond, cond] batch; strength 0 returns both unchanged (nodes.py ControlNetApplyAdvanced).
     */
    static NodeResult applyAdvanced(Map<String, Object> in, NodeContext ctx) {
        Cond positive = (Cond) in.get("positive");
        Cond negative = (Cond) in.get("negative");
        double strength = (Double) in.get("strength");
        if (strength == 0) {
            return NodeResult.of(positive, negative);
        }
        ControlUse use = new ControlUse((ControlNetRef) in.get("control_net"), (Image) in.get("image"), strength,
                (Double) in.get("start_percent"), (Double) in.get("end_percent"));
        return NodeResult.of(positive.withControl(use), negative.withControl(use));
    }

    static NodeResult canny(Map<String, Object> in, NodeContext ctx) {
        Image image = (Image) in.get("image");
        int plane = 3 * image.height() * image.width();
        float[] out = new float[image.pixels().length];
        try {
            for (int b = 0; b < image.batch(); b++) {
                float[] one = java.util.Arrays.copyOfRange(image.pixels(), b * plane, (b + 1) * plane);
                float[] edges = Preprocessors.canny(one, image.height(), image.width(),
                        (Double) in.get("low_threshold"), (Double) in.get("high_threshold"));
                System.arraycopy(edges, 0, out, b * plane, plane);
            }
        } catch (GenerateException e) {
            throw new WorkflowException("Canny: " + e.getMessage());
        }
        return NodeResult.of(new Image(out, image.batch(), image.height(), image.width()));
    }

    // ------------------------------------------------------------------------------------------ sampling side

    /**
     * The ControlNets of a conditioning as one sampling run uses them: loaded (cached), hints brought to the
     * latent's pixel size (centre crop, nearest-exact), windows in the model's sigmas. Null when there are none.
     */
    static ControlStack stack(Cond cond, LoadedUnet unet, ModelSamplingDiscrete ms, int latentH, int latentW,
            ModelCache cache) {
        if (cond.controls().isEmpty()) {
            return null;
        }
        List<ControlStack.Entry> entries = new ArrayList<>();
        for (ControlUse use : cond.controls()) {
            ControlNet net = load(cache, use.net());
            if (!net.config().family().name().equals(unet.family())) {
                throw new WorkflowException("ControlNet " + use.net().file().getFileName() + " is for "
                        + net.config().family() + " but the MODEL is " + unet.family());
            }
            Image hint = use.hint();
            int h = latentH * 8;
            int w = latentW * 8;
            int plane = 3 * hint.height() * hint.width();
            float[] resized = new float[hint.batch() * 3 * h * w];
            for (int b = 0; b < hint.batch(); b++) {
                float[] one = java.util.Arrays.copyOfRange(hint.pixels(), b * plane, (b + 1) * plane);
                float[] r = ControlHint.comfyResize(one, 3, hint.height(), hint.width(), h, w);
                System.arraycopy(r, 0, resized, b * 3 * h * w, r.length);
            }
            entries.add(new ControlStack.Entry(net, resized, hint.batch(), h, w, (float) use.strength(),
                    ControlStack.Window.comfy(ms, use.startPercent(), use.endPercent())));
        }
        return new ControlStack(entries);
    }

    private record ControlNetKey(Path file, Path diffBase, boolean diffBaseUnetOnly) {
    }

    static ControlNet load(ModelCache cache, ControlNetRef ref) {
        ModelRef base = ref.diffBase();
        return cache.get(new ControlNetKey(ref.file(), base == null ? null : base.checkpoint(),
                base != null && base.unetOnly()), () -> loadNet(ref));
    }

    private static ModelCache.Entry<ControlNet> loadNet(ControlNetRef ref) {
        List<AutoCloseable> open = new ArrayList<>();
        try {
            SafeTensors file = SafeTensors.open(ref.file());
            open.add(file);
            Weights weights = ControlNetWeights.of(file);
            long bytes = 0;
            for (String n : weights.names()) {
                long count = 1;
                for (int d : weights.shape(n)) {
                    count *= d;
                }
                bytes += count * 4;
            }
            if (ref.diffBase() != null && file.contains("difference")) {
                weights = plusBase(weights, baseUnet(ref.diffBase(), open));
            }
            ControlNet net = ControlNet.load(weights);
            ModelCache.closeAll(open);
            return new ModelCache.Entry<>(net, bytes, List.of());
        } catch (ModelFormatException | RuntimeException e) {
            ModelCache.closeAll(open);
            throw new WorkflowException("cannot load ControlNet " + ref.file().getFileName() + ": " + e.getMessage());
        }
    }

    private static Weights baseUnet(ModelRef ref, List<AutoCloseable> open) throws ModelFormatException {
        if (ref.unetOnly()) {
            SafeTensors f = SafeTensors.open(ref.checkpoint());
            open.add(f);
            return Checkpoint.unetWeights(f);
        }
        Checkpoint ckpt = Checkpoint.open(ref.checkpoint());
        open.add(ckpt);
        return ckpt.unet();
    }

    /**
     * A "difference" ControlNet (ComfyUI's DiffControlNetLoader): each tensor the base UNet also has (same LDM name)
     * is the stored difference plus the base's weight.
     */
    static Weights plusBase(Weights diff, Weights base) {
        return new jdiffusion.io.BasicView(diff) {
            @Override
            public float[] get(String name) {
                float[] v = inner.get(name);
                if (base.has(name) && java.util.Arrays.equals(base.shape(name), inner.shape(name))) {
                    float[] b = base.get(name);
                    for (int i = 0; i < v.length; i++) {
                        v[i] += b[i];
                    }
                }
                return v;
            }
        };
    }
}
