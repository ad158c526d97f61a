package jdiffusion.lora;

/** Model families a LoRA can be made for. SD1_OR_SD2: the file's structure says "not SDXL" but not which one. */
public enum Family {
    SD1("SD1"), SD2("SD2"), SD1_OR_SD2("SD1/SD2"), SDXL("SDXL"), UNKNOWN("unknown");

    private final String label;

    Family(String label) {
        this.label = label;
    }

    public String label() {
        return label;
    }

    /** False only when both families are known and certainly different. */
    public boolean compatibleWith(Family model) {
        if (this == UNKNOWN || model == UNKNOWN || this == model) {
            return true;
        }
        if (this == SDXL || model == SDXL) {
            return false;
        }
        return this == SD1_OR_SD2 || model == SD1_OR_SD2;
    }
}
