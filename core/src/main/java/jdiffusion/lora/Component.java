package jdiffusion.lora;

/** The model parts a LoRA patches. SD1/SD2 have one text encoder, which is {@link #TE1}. */
public enum Component {
    UNET("UNet"), TE1("te1"), TE2("te2");

    private final String label;

    Component(String label) {
        this.label = label;
    }

    public String label() {
        return label;
    }

    public boolean isTextEncoder() {
        return this != UNET;
    }
}
