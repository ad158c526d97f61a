package jdiffusion.cli;

import java.nio.file.Path;
import jdiffusion.pipeline.GenerateRequest;
import picocli.CommandLine.Option;

/** {@code generate}'s SD3 / SD3.5 flags (a picocli mixin): text encoder files and the flow settings. */
final class Sd3Flags {
    @Option(names = "--t5", paramLabel = "FILE",
            description = "SD3: T5-XXL text encoder file (t5xxl_fp16.safetensors, t5xxl_fp8_e4m3fn.safetensors)")
    Path t5;

    @Option(names = "--no-t5", description = "SD3: run without T5 (zeros in its place) even when one is available")
    boolean noT5;

    @Option(names = "--clip-l", paramLabel = "FILE", description = "SD3: CLIP-L file when the checkpoint has none")
    Path clipL;

    @Option(names = "--clip-g", paramLabel = "FILE", description = "SD3: CLIP-G file when the checkpoint has none")
    Path clipG;

    @Option(names = "--shift", paramLabel = "S", description = "SD3: flow shift (ModelSamplingSD3; default 3)")
    Double shift;

    @Option(names = "--max-sequence-length", paramLabel = "N",
            description = "SD3: T5 tokens with a diffusers scheduler (linspace...; default 256)")
    Integer maxSequenceLength;

    @Option(names = "--clip-heads", paramLabel = "L,G",
            description = "SD3: attention heads of CLIP-L and CLIP-G (default: width / 64, as every real CLIP)")
    String clipHeads;

    GenerateRequest.Sd3Options options() {
        int l = 0;
        int g = 0;
        if (clipHeads != null) {
            String[] parts = clipHeads.split(",");
            try {
                if (parts.length != 2) {
                    throw new NumberFormatException();
                }
                l = Integer.parseInt(parts[0].trim());
                g = Integer.parseInt(parts[1].trim());
            } catch (NumberFormatException e) {
                throw new CliException("--clip-heads: expected two numbers L,G, got '" + clipHeads + "'");
            }
        }
        try {
            return new GenerateRequest.Sd3Options(t5, noT5, clipL, clipG, shift, maxSequenceLength, l, g);
        } catch (IllegalArgumentException e) {
            throw new CliException(e.getMessage());
        }
    }
}
