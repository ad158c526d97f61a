package jdiffusion.cli;

import picocli.CommandLine.Option;

/** {@code --vae-decoder taesd|FILE}: decode the final latents with TAESD (fast, approximate) instead of the VAE. */
final class VaeDecoderOption {
    @Option(names = "--vae-decoder", paramLabel = "taesd|FILE",
            description = "decode with TAESD, the tiny autoencoder (much faster, a little softer): 'taesd' finds the"
                    + " family's taesd/taesdxl/taesd3_decoder.safetensors in vae_approx beside the model or its folder;"
                    + " or a TAESD file (ComfyUI vae_approx or diffusers AutoencoderTiny)")
    String decoder;
}
