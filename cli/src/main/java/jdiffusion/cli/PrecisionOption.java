package jdiffusion.cli;

import jdiffusion.tensor.Precision;
import picocli.CommandLine.Option;

/** {@code --precision fp32|bf16}: the arithmetic of the models' GEMMs and convolutions (process-wide). */
final class PrecisionOption {
    @Option(names = "--precision", paramLabel = "fp32|bf16",
            description = "fp32 (default: exact, matches the references) or bf16 (the CPU's bf16 dot products"
                    + " through oneDNN, as PyTorch's CPU autocast: faster where the CPU has avx512_bf16, results"
                    + " within about 1-2%%; falls back to fp32 with a warning elsewhere)")
    String precision;

    /** Sets the process default from the flag (unset: fp32) and returns it; a bad name is a one-line error. */
    Precision apply() {
        Precision p;
        try {
            p = precision == null ? Precision.FP32 : Precision.parse(precision);
        } catch (IllegalArgumentException e) {
            throw new CliException("--" + e.getMessage());
        }
        Precision.setDefault(p);
        return p;
    }
}
