package jdiffusion.lora;

import jdiffusion.io.Weights;

/**
 * The weights of one model's patchable parts by canonical name (see {@link Weights}): the UNet in LDM/SGM names, the
 * text encoders in HuggingFace CLIP names (or an OpenCLIP tower in its raw layout). te2 is null for SD1/SD2; te1 may
 * be null when only the UNet is patched.
 */
public record ModelComponents(Weights unet, Weights te1, Weights te2) {

    public Weights get(Component c) {
        return switch (c) {
            case UNET -> unet;
            case TE1 -> te1;
            case TE2 -> te2;
        };
    }

    public ModelComponents with(Component c, Weights w) {
        return switch (c) {
            case UNET -> new ModelComponents(w, te1, te2);
            case TE1 -> new ModelComponents(unet, w, te2);
            case TE2 -> new ModelComponents(unet, te1, w);
        };
    }

    /**
     * The model family as far as LoRA compatibility goes: SDXL has an ADM label embedding (or a second text encoder),
     * SD1 has conv 1x1 proj_in, SD2 linear proj_in.
     */
    public Family family() {
        if (te2 != null) {
            return Family.SDXL;
        }
        if (unet == null) {
            return Family.UNKNOWN;
        }
        return jdiffusion.model.Family.ofUnet(unet).map(f -> Family.valueOf(f.name())).orElse(Family.UNKNOWN);
    }
}
