package jdiffusion.lora;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import jdiffusion.io.OpenClipWeights;
import jdiffusion.io.Weights;

/**
 * A component's weights with LoRA patches applied on the fly: {@link #get} returns base + strength x delta for a
 * patched tensor and the base values otherwise. The base (a memory-mapped file) is never written; stacking several
 * LoRAs is a decorator over a decorator; removing or switching a LoRA is building another decorator over the same
 * base, without reading the checkpoint again.
 */
public final class LoraWeights implements Weights {
    private final Weights base;
    private final Map<String, List<LoraPatch>> byTensor;
    private final float strength;

    private LoraWeights(Weights base, Map<String, List<LoraPatch>> byTensor, float strength) {
        this.base = base;
        this.byTensor = byTensor;
        this.strength = strength;
    }

    /**
     * Patches of one component (from {@link LoraMatch#patches}) over that component's weights, at strength. An
     * {@link OpenClipWeights} view is patched underneath, in its raw layout, and returned as a view again (the text
     * encoder tells OpenCLIP from CLIP-L by that type).
     *
     * @throws IllegalArgumentException when a patch names a tensor base lacks or does not fit it
     */
    public static Weights apply(Weights base, List<LoraPatch> patches, float strength) {
        if (base instanceof OpenClipWeights view) {
            return OpenClipWeights.of(over(view.raw(), patches, strength));
        }
        return over(base, patches, strength);
    }

    /** The decorator itself, over weights in the layout the patches were matched against. */
    public static LoraWeights over(Weights base, List<LoraPatch> patches, float strength) {
        Map<String, List<LoraPatch>> byTensor = new LinkedHashMap<>();
        for (LoraPatch p : patches) {
            checkFits(base, p);
            byTensor.computeIfAbsent(p.tensor(), k -> new ArrayList<>()).add(p);
        }
        return new LoraWeights(base, Collections.unmodifiableMap(byTensor), strength);
    }

    private static void checkFits(Weights base, LoraPatch p) {
        if (!base.has(p.tensor())) {
            throw new IllegalArgumentException("LoRA module '" + p.module().name() + "' targets '" + p.tensor()
                    + "', which these weights do not have");
        }
        int[] shape = base.shape(p.tensor());
        LoraTarget t = p.target();
        int rows = shape.length == 0 ? 1 : shape[0];
        int cols = shape.length == 0 ? 1 : Tensors.numel(shape, 1);
        if (t.cols() != cols || t.rowOffset() + t.rows() > rows || p.module().rows() != t.rows()
                || p.module().cols() != t.cols()) {
            throw new IllegalArgumentException("LoRA module '" + p.module().name() + "' does not fit '" + p.tensor()
                    + "' " + Arrays.toString(shape));
        }
    }

    /** The weights under the patches. */
    public Weights base() {
        return base;
    }

    public float strength() {
        return strength;
    }

    /** Names of the tensors this decorator changes (a model that caches packed weights repacks only these). */
    public Set<String> patchedNames() {
        return byTensor.keySet();
    }

    @Override
    public Set<String> names() {
        return base.names();
    }

    @Override
    public boolean has(String name) {
        return base.has(name);
    }

    @Override
    public int[] shape(String name) {
        return base.shape(name);
    }

    @Override
    public jdiffusion.io.DType dtype(String name) {
        // patched values are computed in float32; untouched tensors keep the base's storage type
        return byTensor.containsKey(name) && strength != 0f ? jdiffusion.io.DType.F32 : base.dtype(name);
    }

    @Override
    public float[] get(String name) {
        float[] w = base.get(name);
        List<LoraPatch> patches = byTensor.get(name);
        if (patches != null && strength != 0f) {
            for (LoraPatch p : patches) {
                p.addTo(w, strength);
            }
        }
        return w;
    }
}
