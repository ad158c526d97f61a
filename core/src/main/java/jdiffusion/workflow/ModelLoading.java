package jdiffusion.workflow;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.Checkpoint;
import jdiffusion.io.OpenClipWeights;
import jdiffusion.io.Weights;
import jdiffusion.lora.LoraSpec;
import jdiffusion.lora.LoraStack;
import jdiffusion.lora.ModelComponents;
import jdiffusion.model.ModelConfig;
import jdiffusion.model.Family;
import jdiffusion.model.TextConditioner;
import jdiffusion.model.UNet;
import jdiffusion.model.Vae;
import jdiffusion.sampling.PredictionType;
import jdiffusion.workflow.Values.ClipRef;
import jdiffusion.workflow.Values.LoraUse;
import jdiffusion.workflow.Values.ModelRef;
import jdiffusion.workflow.Values.VaeRef;

/**
 * Turns the loaders' descriptions into loaded models through the {@link ModelCache}. LoRAs are applied as the
 * weights are packed (the {@code LoraWeights} decorator over the mapped base file), so another LoRA or strength
 * re-packs from the same mapping and never writes to the file.
 */
final class ModelLoading {
    private ModelLoading() {
    }

    private record UnetKey(Path file, boolean unetOnly, List<LoraUse> loras) {
    }

    private record ClipKey(Path file, List<LoraUse> loras) {
    }

    private record VaeKey(Path file) {
    }

    /** The UNet a MODEL describes, with the prediction type its sampling override (or the file) says. */
    static LoadedUnet unet(ModelCache cache, ModelRef ref) {
        LoadedUnet base = cache.get(new UnetKey(ref.checkpoint(), ref.unetOnly(), ref.loras()), () -> loadUnet(ref));
        PredictionType prediction = switch (ref.sampling() == null ? "auto" : ref.sampling()) {
            case "auto" -> base.detectedPrediction();
            case "eps" -> PredictionType.EPS;
            case "v_prediction" -> PredictionType.V;
            case "x0" -> PredictionType.X0;
            default -> throw new WorkflowException("ModelSamplingDiscrete: sampling '" + ref.sampling()
                    + "' is not supported (supported: eps, v_prediction, x0)");
        };
        return prediction == base.detectedPrediction() ? base : base.withPrediction(prediction);
    }

    /** The text encoders a CLIP describes (clip skip applied by the caller; it costs nothing). */
    static TextConditioner clip(ModelCache cache, ClipRef ref) {
        TextConditioner base = cache.get(new ClipKey(ref.checkpoint(), ref.loras()), () -> loadClip(ref));
        if (ref.clipSkip() == 1) {
            return base;
        }
        try {
            return base.withClipSkip(ref.clipSkip());
        } catch (IllegalArgumentException e) {
            throw new WorkflowException("CLIPSetLastLayer: " + e.getMessage());
        }
    }

    static Vae vae(ModelCache cache, VaeRef ref) {
        return cache.get(new VaeKey(ref.file()), () -> loadVae(ref));
    }

    private static ModelCache.Entry<LoadedUnet> loadUnet(ModelRef ref) {
        List<AutoCloseable> open = new ArrayList<>();
        try {
            Weights weights;
            String family;
            PredictionType prediction;
            List<Weights> rawText = List.of();
            if (ref.unetOnly()) {
                SafeTensors file = open(ref.checkpoint(), open);
                weights = Checkpoint.unetWeights(file); // original or diffusers layout, under LDM names
                family = unetFamily(weights);
                prediction = detectPrediction(file);
            } else {
                Checkpoint ckpt = Checkpoint.open(ref.checkpoint());
                open.add(ckpt);
                weights = ckpt.unet();
                family = ckpt.family().name();
                prediction = ckpt.config().prediction() == ModelConfig.Prediction.V ? PredictionType.V
                        : detectPrediction(ckpt.file());
                rawText = rawTextEncoders(ckpt.textEncoders());
            }
            if (!ref.loras().isEmpty()) {
                List<LoraSpec> specs = new ArrayList<>();
                for (LoraUse l : ref.loras()) {
                    specs.add(new LoraSpec(l.file(), (float) l.strength(), 0f));
                }
                weights = applyLoras(new ModelComponents(weights, rawText.isEmpty() ? null : rawText.get(0),
                        rawText.size() > 1 ? rawText.get(1) : null), specs, open).unet();
            }
            UNet unet = UNet.load(weights);
            return loaded(new LoadedUnet(unet, family, prediction), floatBytes(weights), open);
        } catch (ModelFormatException | RuntimeException e) {
            ModelCache.closeAll(open);
            throw failure(ref.checkpoint(), e);
        }
    }

    /**
     * A loaded model's cache entry. The model copied (packed) its weights, so the mapped files' pages are dropped
     * from the resident set, and the heap's soft limit is fitted to the models now in memory (see
     * {@link jdiffusion.pipeline.HeapBudget}).
     */
    private static <T> ModelCache.Entry<T> loaded(T model, long bytes, List<AutoCloseable> open) {
        Checkpoint.releaseResidentPages(open);
        jdiffusion.pipeline.HeapBudget.fit();
        return new ModelCache.Entry<>(model, bytes, open);
    }

    private static ModelCache.Entry<TextConditioner> loadClip(ClipRef ref) {
        List<AutoCloseable> open = new ArrayList<>();
        try {
            Checkpoint ckpt = Checkpoint.open(ref.checkpoint());
            open.add(ckpt);
            Family family = ckpt.family();
            List<Weights> te = ckpt.textEncoders();
            if (!ref.loras().isEmpty()) {
                List<Weights> raw = rawTextEncoders(te);
                List<LoraSpec> specs = new ArrayList<>();
                for (LoraUse l : ref.loras()) {
                    specs.add(new LoraSpec(l.file(), 0f, (float) l.strength()));
                }
                ModelComponents patched = applyLoras(new ModelComponents(ckpt.unet(), raw.get(0),
                        raw.size() > 1 ? raw.get(1) : null), specs, open);
                List<Weights> out = new ArrayList<>();
                for (int i = 0; i < te.size(); i++) {
                    Weights w = i == 0 ? patched.te1() : patched.te2();
                    out.add(te.get(i) instanceof OpenClipWeights ? OpenClipWeights.of(w) : w);
                }
                te = out;
            }
            long bytes = 0;
            for (Weights w : te) {
                bytes += floatBytes(w);
            }
            return loaded(TextConditioner.of(family, te), bytes, open);
        } catch (ModelFormatException | RuntimeException e) {
            ModelCache.closeAll(open);
            throw failure(ref.checkpoint(), e);
        }
    }

    private static ModelCache.Entry<Vae> loadVae(VaeRef ref) {
        List<AutoCloseable> open = new ArrayList<>();
        try {
            SafeTensors file = open(ref.file(), open);
            Weights w = Checkpoint.vaeWeights(file); // checkpoint, standalone LDM or diffusers layout
            return loaded(Vae.load(w), floatBytes(w), open);
        } catch (ModelFormatException | RuntimeException e) {
            ModelCache.closeAll(open);
            throw failure(ref.file(), e);
        }
    }

    /**
     * LoRAs patch OpenCLIP towers in their raw (fused in_proj) layout; the patched tower is presented as OpenCLIP
     * again afterwards (which also tells the encoder to use exact GELU).
     */
    private static List<Weights> rawTextEncoders(List<Weights> te) {
        return te.stream().map(w -> w instanceof OpenClipWeights o ? o.raw() : w).toList();
    }

    private static ModelComponents applyLoras(ModelComponents base, List<LoraSpec> specs, List<AutoCloseable> open)
            throws ModelFormatException {
        LoraStack stack = LoraStack.load(base, specs);
        open.add(stack);
        return stack.weights();
    }

    /** Family of a UNet-only file by its own weights (SD1 when they do not say). */
    private static String unetFamily(Weights w) {
        return Family.ofUnet(w).map(Family::name).orElse("SD1");
    }

    /** v-prediction when the file says so (a {@code v_pred} key, prediction metadata), x0 likewise, else eps. */
    private static PredictionType detectPrediction(SafeTensors file) {
        if (file.contains("v_pred")) {
            return PredictionType.V;
        }
        for (var e : file.metadata().entrySet()) {
            String k = e.getKey().toLowerCase(Locale.ROOT);
            String v = e.getValue().toLowerCase(Locale.ROOT);
            if (k.contains("prediction")) {
                if (v.startsWith("v")) {
                    return PredictionType.V;
                }
                if (v.equals("x0") || v.equals("sample")) {
                    return PredictionType.X0;
                }
            }
        }
        return PredictionType.EPS;
    }

    /** Resident size once unpacked to float32: what the LRU budget counts. */
    private static long floatBytes(Weights w) {
        long n = 0;
        for (String name : w.names()) {
            long numel = 1;
            for (int d : w.shape(name)) {
                numel *= d;
            }
            n += numel * 4;
        }
        return n;
    }

    private static SafeTensors open(Path p, List<AutoCloseable> open) throws ModelFormatException {
        SafeTensors f = SafeTensors.open(p);
        open.add(f);
        return f;
    }

    private static WorkflowException failure(Path file, Exception e) {
        if (e instanceof WorkflowException w) {
            return w;
        }
        String msg = e.getMessage() == null ? e.toString() : e.getMessage();
        return new WorkflowException(msg.contains(file.getFileName().toString()) ? msg
                : file.getFileName() + ": " + msg, e);
    }
}
