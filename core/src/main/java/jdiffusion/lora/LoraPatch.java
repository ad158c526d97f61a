package jdiffusion.lora;

/** One module of a LoRA file matched to the model tensor (or fused slice of it) that it changes. */
public record LoraPatch(Component component, LoraTarget target, LoraModule module) {

    /** The canonical name of the tensor this patch changes. */
    public String tensor() {
        return target.tensor();
    }

    /** Adds strength x (alpha / rank) x delta into the tensor's values (its slice for a fused q/k/v). */
    public void addTo(float[] weight, float strength) {
        module.addTo(weight, target.rowOffset() * target.cols(), strength);
    }
}
