package jdiffusion.model;

import java.util.Optional;
import jdiffusion.io.Weights;

/** The Stable Diffusion model families jdiffusion reads, with the numbers that follow from the family alone. */
public enum Family {
    /** SD 1.x: CLIP-L text encoder, conv proj_in, 8 attention heads per transformer. */
    SD1(0.18215),
    /** SD 2.x: OpenCLIP-H text encoder (penultimate layer), linear proj_in, head size 64. */
    SD2(0.18215),
    /** SDXL: CLIP-L + OpenCLIP-bigG, size conditioning (label_emb), linear proj_in, head size 64. */
    SDXL(0.13025),
    /**
     * SD3 / SD3.5: an MMDiT (not a UNet) on 16-channel latents, rectified-flow sampling (shift 3), CLIP-L + CLIP-G
     * + T5-XXL text encoders under {@code text_encoders.*}; the latents are shifted before scaling.
     */
    SD3(1.5305, 0.0609);

    private final double latentScale;
    private final double latentShift;

    Family(double latentScale) {
        this(latentScale, 0.0);
    }

    Family(double latentScale, double latentShift) {
        this.latentScale = latentScale;
        this.latentShift = latentShift;
    }

    /** The latent format: model latent = (VAE latent - shift) * scale. */
    public LatentFormat latentFormat() {
        return new LatentFormat(latentScale, latentShift);
    }

    /** The VAE latent scaling factor the family was trained with (not stored in checkpoints). */
    public double latentScale() {
        return latentScale;
    }

    /**
     * The family a UNet's own weights (LDM names) say: SDXL has the ADM label embedding, SD1 conv 1x1 proj_in, SD2
     * linear proj_in; empty when no proj_in says either.
     */
    public static Optional<Family> ofUnet(Weights unet) {
        if (unet.has("label_emb.0.0.weight")) {
            return Optional.of(SDXL);
        }
        for (String n : unet.names()) {
            if (n.endsWith(".proj_in.weight")) {
                return Optional.of(unet.shape(n).length == 4 ? SD1 : SD2);
            }
        }
        return Optional.empty();
    }
}
