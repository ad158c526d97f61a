package jdiffusion.workflow;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import jdiffusion.io.ModelFormatException;
import jdiffusion.io.SafeTensors;
import jdiffusion.io.TensorInfo;
import jdiffusion.io.Weights;
import jdiffusion.lora.LoraSpec;
import jdiffusion.lora.LoraStack;
import jdiffusion.lora.ModelComponents;
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
    static final String UNET_PREFIX = "model.diffusion_model.";
    static final String VAE_PREFIX = "first_stage_model.";

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
            SafeTensors file = open(ref.checkpoint(), open);
            Weights weights = unetWeights(file, ref);
            String family = ref.unetOnly() ? unetFamily(weights) : TextConditioner.detect(file).name();
            List<LoraUse> loras = ref.loras();
            if (!loras.isEmpty()) {
                List<Weights> te = ref.unetOnly() ? List.of() : textEncoders(file);
                ModelComponents base = new ModelComponents(weights, te.isEmpty() ? null : te.get(0),
                        te.size() > 1 ? te.get(1) : null);
                List<LoraSpec> specs = new ArrayList<>();
                for (LoraUse l : loras) {
                    specs.add(new LoraSpec(l.file(), (float) l.strength(), 0f));
                }
                LoraStack stack = LoraStack.load(base, specs);
                open.add(stack);
                weights = stack.weights().unet();
            }
            UNet unet = UNet.load(weights);
            return new ModelCache.Entry<>(new LoadedUnet(unet, family, detectPrediction(file)),
                    floatBytes(file, ref.unetOnly() ? "" : UNET_PREFIX), open);
        } catch (ModelFormatException | RuntimeException e) {
            ModelCache.closeAll(open);
            throw failure(ref.checkpoint(), e);
        }
    }

    private static ModelCache.Entry<TextConditioner> loadClip(ClipRef ref) {
        List<AutoCloseable> open = new ArrayList<>();
        try {
            SafeTensors file = open(ref.checkpoint(), open);
            TextConditioner.Family family = TextConditioner.detect(file);
            List<Weights> te = TextConditioner.textEncoderWeights(file, family);
            if (!ref.loras().isEmpty()) {
                ModelComponents base = new ModelComponents(Weights.prefixed(file, UNET_PREFIX), te.get(0),
                        te.size() > 1 ? te.get(1) : null);
                List<LoraSpec> specs = new ArrayList<>();
                for (LoraUse l : ref.loras()) {
                    specs.add(new LoraSpec(l.file(), 0f, (float) l.strength()));
                }
                LoraStack stack = LoraStack.load(base, specs);
                open.add(stack);
                ModelComponents patched = stack.weights();
                te = te.size() == 1 ? List.of(patched.te1()) : List.of(patched.te1(), patched.te2());
            }
            TextConditioner text = TextConditioner.of(family, te);
            long bytes = floatBytes(file, "cond_stage_model.") + floatBytes(file, "conditioner.");
            return new ModelCache.Entry<>(text, bytes, open);
        } catch (ModelFormatException | RuntimeException e) {
            ModelCache.closeAll(open);
            throw failure(ref.checkpoint(), e);
        }
    }

    private static ModelCache.Entry<Vae> loadVae(VaeRef ref) {
        List<AutoCloseable> open = new ArrayList<>();
        try {
            SafeTensors file = open(ref.file(), open);
            boolean prefixed = file.names().stream().anyMatch(n -> n.startsWith(VAE_PREFIX));
            Weights w = Weights.prefixed(file, prefixed ? VAE_PREFIX : "");
            if (!w.has("post_quant_conv.weight") || w.names().stream().noneMatch(n -> n.startsWith("decoder.up."))) {
                throw new ModelFormatException(ref.file().getFileName() + ": not a VAE in the original (LDM) layout"
                        + " (expected post_quant_conv.* and decoder.up.*)");
            }
            return new ModelCache.Entry<>(Vae.load(w), floatBytes(file, prefixed ? VAE_PREFIX : ""), open);
        } catch (ModelFormatException | RuntimeException e) {
            ModelCache.closeAll(open);
            throw failure(ref.file(), e);
        }
    }

    private static Weights unetWeights(SafeTensors file, ModelRef ref) throws ModelFormatException {
        boolean prefixed = file.names().stream().anyMatch(n -> n.startsWith(UNET_PREFIX));
        if (!ref.unetOnly() && !prefixed) {
            throw new ModelFormatException(file.path().getFileName() + ": no UNet tensors (" + UNET_PREFIX + "*)");
        }
        Weights w = Weights.prefixed(file, prefixed ? UNET_PREFIX : "");
        if (!w.has("input_blocks.0.0.weight")) {
            throw new ModelFormatException(file.path().getFileName() + ": UNet in diffusers layout; this build reads"
                    + " only the original (LDM) layout");
        }
        return w;
    }

    private static List<Weights> textEncoders(SafeTensors file) throws ModelFormatException {
        return TextConditioner.textEncoderWeights(file, TextConditioner.detect(file));
    }

    /** Family of a UNet-only file: SDXL has the adm label embedding, SD2 linear projections, SD1 1x1 convolutions. */
    private static String unetFamily(Weights w) {
        if (w.has("label_emb.0.0.weight")) {
            return "SDXL";
        }
        for (String n : w.names()) {
            if (n.endsWith(".proj_in.weight")) {
                return w.shape(n).length == 4 ? "SD1" : "SD2";
            }
        }
        return "SD1";
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
    private static long floatBytes(SafeTensors file, String prefix) {
        long n = 0;
        for (TensorInfo t : file.tensors().values()) {
            if (t.name().startsWith(prefix)) {
                n += t.numel() * 4;
            }
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
