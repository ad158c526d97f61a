package jdiffusion.lora;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import jdiffusion.io.OpenClipWeights;
import jdiffusion.io.Weights;

/**
 * A LoRA file matched against a model: the patches per component and a report. Matching only reads names and
 * shapes; nothing is computed until patched weights are read.
 */
public final class LoraMatch {
    private final LoraFile lora;
    private final Map<Component, List<LoraPatch>> patches;
    private final LoraReport report;

    private LoraMatch(LoraFile lora, Map<Component, List<LoraPatch>> patches, LoraReport report) {
        this.lora = lora;
        this.patches = patches;
        this.report = report;
    }

    /**
     * Matches every module of the file to the model's tensors. Errors: a LoRA made for another family (SD1 LoRA on
     * SDXL and the reverse, told by module names and shapes), a LoRA whose UNet modules fit no UNet layer, a LoRA
     * that matches nothing at all.
     */
    public static LoraMatch of(LoraFile lora, ModelComponents model) throws LoraException {
        Family loraFamily = lora.family();
        Family modelFamily = model.family();
        if (!loraFamily.compatibleWith(modelFamily)) {
            throw new LoraException(lora.path() + ": this LoRA is for " + loraFamily.label() + " (by its module names and shapes)"
                    + " and cannot be applied to an " + modelFamily.label() + " model");
        }
        Map<Component, Map<String, LoraTarget>> tables = new EnumMap<>(Component.class);
        Map<Component, List<LoraPatch>> patches = new EnumMap<>(Component.class);
        Map<Component, Integer> applied = new EnumMap<>(Component.class);
        Map<Component, Integer> present = new EnumMap<>(Component.class);
        for (Component c : Component.values()) {
            patches.put(c, new ArrayList<>());
            applied.put(c, 0);
            present.put(c, 0);
        }
        List<String> unused = new ArrayList<>(lora.unrecognizedKeys());
        List<String> problems = new ArrayList<>();
        for (LoraModule m : lora.modules()) {
            present.merge(m.component(), 1, Integer::sum);
            String problem = matchOne(m, model, tables, patches);
            if (problem == null) {
                applied.merge(m.component(), 1, Integer::sum);
            } else {
                problems.add(m.name() + ": " + problem);
                unused.addAll(m.keys());
            }
        }
        checkSomethingFits(lora, model, modelFamily, applied, present, problems);
        Map<Component, List<LoraPatch>> frozen = new EnumMap<>(Component.class);
        patches.forEach((c, l) -> frozen.put(c, List.copyOf(l)));
        LoraReport report = new LoraReport(lora.fileName(), loraFamily, lora.keyCount(),
                Collections.unmodifiableMap(applied), List.copyOf(unused), List.copyOf(problems));
        return new LoraMatch(lora, frozen, report);
    }

    /** Adds the module's patch, or returns why it cannot be applied. */
    private static String matchOne(LoraModule m, ModelComponents model, Map<Component, Map<String, LoraTarget>> tables,
                                   Map<Component, List<LoraPatch>> patches) {
        Weights w = patchable(model.get(m.component()));
        if (w == null) {
            return "the model has no " + m.component().label();
        }
        Map<String, LoraTarget> table = tables.computeIfAbsent(m.component(), c -> TargetTable.forComponent(c, w));
        LoraTarget t = table.get(TargetTable.flat(m.path()));
        if (t == null) {
            return "no such layer in the model's " + m.component().label();
        }
        if (t.rows() != m.rows() || t.cols() != m.cols()) {
            return "changes a " + m.rows() + "x" + m.cols() + " weight but '" + t.tensor() + "' is "
                    + Arrays.toString(w.shape(t.tensor())) + (t.rows() != w.shape(t.tensor())[0] ? " (slice of " + t.rows() + " rows)" : "");
        }
        patches.get(m.component()).add(new LoraPatch(m.component(), t, m));
        return null;
    }

    private static void checkSomethingFits(LoraFile lora, ModelComponents model, Family modelFamily,
                                           Map<Component, Integer> applied, Map<Component, Integer> present,
                                           List<String> problems) throws LoraException {
        int total = applied.values().stream().mapToInt(Integer::intValue).sum();
        String first = problems.isEmpty() ? "" : " (first: " + problems.getFirst() + ")";
        if (total == 0) {
            throw new LoraException(lora.path() + ": none of its " + lora.modules().size() + " modules matches a layer of this "
                    + modelFamily.label() + " model; a LoRA for another model family?" + first);
        }
        if (model.unet() != null && present.get(Component.UNET) > 0 && applied.get(Component.UNET) == 0) {
            throw new LoraException(lora.path() + ": none of its " + present.get(Component.UNET)
                    + " UNet modules fits this " + modelFamily.label() + " UNet; a LoRA for another model family?" + first);
        }
    }

    /**
     * The tensors patches are computed against: an OpenCLIP tower shown under HF names is patched in its raw layout
     * (q/k/v into thirds of in_proj_weight) and shown again, so the text encoder still sees an OpenClipWeights.
     */
    static Weights patchable(Weights w) {
        return w instanceof OpenClipWeights view ? view.raw() : w;
    }

    public LoraFile lora() {
        return lora;
    }

    /** The patches for one component (empty when the LoRA does not touch it). */
    public List<LoraPatch> patches(Component c) {
        return patches.get(c);
    }

    public LoraReport report() {
        return report;
    }

    /**
     * The model with this LoRA applied on top: the UNet at unetStrength, the text encoders at clipStrength
     * (ComfyUI's LoraLoader semantics). Components the LoRA does not touch are returned as they are.
     */
    public ModelComponents applyTo(ModelComponents model, float unetStrength, float clipStrength) {
        ModelComponents out = model;
        for (Component c : Component.values()) {
            Weights w = model.get(c);
            if (w != null && !patches.get(c).isEmpty()) {
                out = out.with(c, LoraWeights.apply(w, patches.get(c), c == Component.UNET ? unetStrength : clipStrength));
            }
        }
        return out;
    }
}
